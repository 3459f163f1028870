"""Merging jobs and attempt statuses into one delivery row: outcome, fired time, expiry."""

from __future__ import annotations

import itertools

from hookstream.history.rows import DeliveryRow
from hookstream.history.schemas import DeliveryOutcome
from hookstream.records.models import DeliveryJob, DeliveryStatus, DomainEvent, Outcome

T0 = 1_700_000_000_000
DAY_MS = 24 * 3600 * 1000


def _job(at: int = T0, redelivery: bool = False) -> DeliveryJob:
    event = DomainEvent(event_id="e", source="items", operation="add", occurred_at=at)
    return DeliveryJob(
        delivery_id="d",
        webhook_id="w",
        trigger="/items",
        events=[event],
        due_at=at,
        triggered_at=at,
        redelivery=redelivery,
    )


def _status(at: int, outcome: Outcome, final: bool, attempt: int) -> DeliveryStatus:
    return DeliveryStatus(
        delivery_id="d",
        webhook_id="w",
        webhook_name="W",
        event_ids=["e"],
        attempt=attempt,
        attempted_at=at,
        outcome=outcome,
        final=final,
        payload=f"body {attempt}",
    )


def _apply(row: DeliveryRow, record: DeliveryJob | DeliveryStatus) -> None:
    if isinstance(record, DeliveryJob):
        row.apply_job(record)
    else:
        row.apply_status(record)


def test_the_order_records_arrive_in_does_not_change_the_row() -> None:
    records: list[DeliveryJob | DeliveryStatus] = [
        _job(),
        _status(T0 + 10, Outcome.FAILED, final=False, attempt=1),
        _status(T0 + 20, Outcome.DELIVERED, final=True, attempt=2),
    ]
    rows = []
    for order in itertools.permutations(records):
        row = DeliveryRow("w", "d")
        for record in (*order, *order):  # every record twice: applying again changes nothing
            _apply(row, record)
        rows.append(row)
    assert all(row == rows[0] for row in rows)
    row = rows[0]
    assert row.outcome() is DeliveryOutcome.DELIVERED and row.payload == "body 2"
    assert row.fired_at() == T0 and [e.event_id for e in row.events()] == ["e"]


def test_expiry_by_outcome() -> None:
    row = DeliveryRow("w", "d")
    row.apply_job(_job())
    assert row.outcome() is DeliveryOutcome.PENDING
    assert row.expires_at(DAY_MS, 7 * DAY_MS) == T0 + 7 * DAY_MS
    row.apply_status(_status(T0 + 5, Outcome.FAILED, final=True, attempt=1))
    assert row.outcome() is DeliveryOutcome.FAILED
    assert row.expires_at(DAY_MS, 7 * DAY_MS) == T0 + 5 + 7 * DAY_MS
    row.apply_job(_job(at=T0 + 50, redelivery=True))
    assert row.outcome() is DeliveryOutcome.PENDING and row.fired_at() == T0
    row.apply_status(_status(T0 + 60, Outcome.DELIVERED, final=True, attempt=1))
    assert row.outcome() is DeliveryOutcome.DELIVERED
    assert row.expires_at(DAY_MS, 7 * DAY_MS) == T0 + 60 + DAY_MS
