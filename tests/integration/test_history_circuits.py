"""A webhook's open circuit, as the notification status shows it (both history backends).

A sender reports each job it holds back behind an open circuit as a ``held`` status record (not
an attempt, not final). The circuit shows as open from the latest such record until an attempt
gets an answer from the receiver again.
"""

from __future__ import annotations

import pytest

from history_support import HistoryDatabase
from hookstream.history.store import HeldBack, HistoryStore
from hookstream.records.models import DeliveryStatus, Outcome

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
REASON = "held back, not attempted: the receiver's circuit is open"


def _status(
    webhook_id: str,
    delivery_id: str,
    at: int,
    outcome: Outcome,
    http_status: int | None = None,
    next_attempt_at: int | None = None,
) -> DeliveryStatus:
    return DeliveryStatus(
        delivery_id=delivery_id,
        webhook_id=webhook_id,
        webhook_name="W",
        event_ids=[f"e-{delivery_id}"],
        trigger="/items",
        attempt=1,
        max_attempts=3,
        attempted_at=at,
        outcome=outcome,
        final=False,
        http_status=http_status,
        next_attempt_at=next_attempt_at,
        error=REASON if outcome is Outcome.HELD else "connection refused",
    )


def _ingest(store: HistoryStore, *records: DeliveryStatus) -> None:
    store.ingest(list(records), {})


def test_a_circuit_is_open_from_a_held_record_until_the_receiver_answers(
    history_db: HistoryDatabase,
) -> None:
    store = history_db.open()
    _ingest(
        store,
        _status("dead", "d1", T0, Outcome.FAILED),
        _status("dead", "d2", T0 + 10, Outcome.HELD, next_attempt_at=T0 + 10_000),
        _status("dead", "d3", T0 + 20, Outcome.HELD, next_attempt_at=T0 + 10_000),
        _status("fine", "f1", T0, Outcome.DELIVERED, http_status=200),
    )
    assert store.open_circuits(["dead", "fine", "unknown"]) == {
        "dead": HeldBack(T0 + 20, T0 + 10_000, REASON)
    }
    assert store.open_circuits([]) == {}

    # A probe that fails to connect leaves it open; the next holds move it on.
    _ingest(
        store,
        _status("dead", "d2", T0 + 10_000, Outcome.FAILED),
        _status("dead", "d4", T0 + 10_050, Outcome.HELD, next_attempt_at=T0 + 30_000),
    )
    assert store.open_circuits(["dead"]) == {"dead": HeldBack(T0 + 10_050, T0 + 30_000, REASON)}

    # Any answer of the receiver closes it, even an error status.
    _ingest(store, _status("dead", "d2", T0 + 30_000, Outcome.FAILED, http_status=503))
    assert store.open_circuits(["dead"]) == {}
