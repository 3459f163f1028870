"""The delivery history's store on both backends (SQLite and a real PostgreSQL server): merging,
retention and pruning, offsets kept with the data, search and cursor paging."""

from __future__ import annotations

import pytest

from history_support import DAY_S, HistoryDatabase
from hookstream.history.query import DeliveryQuery, HistoryQueryError
from hookstream.history.schemas import DeliveryOutcome
from hookstream.history.store import HistoryStore
from hookstream.records.models import DeliveryJob, DeliveryStatus, DomainEvent, Outcome

pytestmark = pytest.mark.integration

DAY_MS = DAY_S * 1000
T0 = 1_700_000_000_000
DELIVERIES, STATUS = "t.deliveries", "t.status"


def _job(
    delivery_id: str,
    at: int = T0,
    redelivery: bool = False,
    webhook_id: str = "w",
    trigger: str = "/items",
) -> DeliveryJob:
    event = DomainEvent(
        event_id=f"e-{delivery_id}", source="items", operation="add", occurred_at=at
    )
    return DeliveryJob(
        delivery_id=delivery_id,
        webhook_id=webhook_id,
        trigger=trigger,
        events=[event],
        due_at=at,
        triggered_at=at,
        redelivery=redelivery,
    )


def _status(
    delivery_id: str,
    at: int,
    outcome: Outcome,
    final: bool,
    attempt: int = 1,
    webhook_id: str = "w",
    http_status: int | None = None,
) -> DeliveryStatus:
    code = http_status or (200 if outcome is Outcome.DELIVERED else 500)
    return DeliveryStatus(
        delivery_id=delivery_id,
        webhook_id=webhook_id,
        webhook_name="W",
        event_ids=[f"e-{delivery_id}"],
        trigger="/items",
        attempt=attempt,
        max_attempts=3,
        attempted_at=at,
        outcome=outcome,
        final=final,
        http_status=code,
        response_excerpt=f"answer {attempt}",
        payload=f"body {attempt}",
    )


def _ids(store: HistoryStore, now: int = T0, **query: object) -> list[str]:
    found = store.search(DeliveryQuery(**query), now, limit=100)  # type: ignore[arg-type]
    assert found.total == len(found.deliveries)
    return [delivery.delivery_id for delivery in found.deliveries]


def test_outcome_follows_the_attempts_and_redeliveries(history_db: HistoryDatabase) -> None:
    store = history_db.open()
    store.ingest([_job("d")], {(DELIVERIES, 0): 1})
    assert store.get("d", T0).outcome is DeliveryOutcome.PENDING  # type: ignore[union-attr]
    store.ingest([_status("d", T0 + 10, Outcome.FAILED, final=False)], {(STATUS, 0): 1})
    store.ingest([_status("d", T0 + 20, Outcome.FAILED, True, attempt=2)], {(STATUS, 0): 2})
    failed = store.get("d", T0, webhook_id="w")
    assert failed is not None and failed.outcome is DeliveryOutcome.FAILED
    assert failed.payload == "body 2" and failed.events[0].event_id == "e-d"
    assert [(a.attempt, a.http_status, a.response_excerpt) for a in failed.attempts] == [
        (1, 500, "answer 1"),
        (2, 500, "answer 2"),
    ]
    # A redelivery makes it pending again until an attempt after it.
    store.ingest([_job("d", at=T0 + 30, redelivery=True)], {(DELIVERIES, 0): 2})
    again = store.get("d", T0)
    assert again is not None and again.outcome is DeliveryOutcome.PENDING
    assert again.triggered_at == T0 and again.redelivered
    store.ingest([_status("d", T0 + 40, Outcome.DELIVERED, final=True)], {(STATUS, 0): 3})
    done = store.get("d", T0)
    assert done is not None and done.outcome is DeliveryOutcome.DELIVERED
    assert [a.attempt for a in done.attempts] == [1, 2, 1]
    assert store.get("d", T0, webhook_id="other") is None


def test_a_record_applied_twice_counts_once_and_state_records_are_not_deliveries(
    history_db: HistoryDatabase,
) -> None:
    store = history_db.open()
    status = _status("d", T0, Outcome.DELIVERED, final=True)
    state = DeliveryStatus(
        webhook_id="w", webhook_name="W", outcome=Outcome.DEACTIVATED, final=True
    )
    store.ingest([status, status, state], {(STATUS, 0): 3})
    store.ingest([status], {(STATUS, 1): 1})
    [delivery] = store.search(DeliveryQuery(webhook_id="w"), T0, limit=10).deliveries
    assert len(delivery.attempts) == 1 and store.count() == 1
    # Seen before its job: the first attempt stands in for when it fired.
    assert delivery.triggered_at == T0 and delivery.events == []
    store.ingest([_job("d", at=T0 - 5)], {(DELIVERIES, 0): 1})
    found = store.get("d", T0)
    assert found is not None and found.triggered_at == T0 - 5
    assert found.events[0].event_id == "e-d" and found.outcome is DeliveryOutcome.DELIVERED


def test_offsets_are_stored_with_the_data_and_survive_a_restart(
    history_db: HistoryDatabase,
) -> None:
    store = history_db.open()
    assert store.stored_offsets() == {}
    store.ingest([_job("a")], {(DELIVERIES, 0): 5, (DELIVERIES, 2): 1})
    store.ingest([_status("a", T0, Outcome.DELIVERED, True)], {(DELIVERIES, 0): 7, (STATUS, 1): 3})
    store.close()
    reopened = history_db.open()
    assert reopened.stored_offsets() == {(DELIVERIES, 0): 7, (DELIVERIES, 2): 1, (STATUS, 1): 3}
    assert _ids(reopened) == ["a"]


def test_delivered_entries_are_kept_one_day_failed_ones_seven(history_db: HistoryDatabase) -> None:
    store = history_db.open()
    store.ingest(
        [
            _job("ok"),
            _status("ok", T0, Outcome.DELIVERED, final=True),
            _job("bad"),
            _status("bad", T0, Outcome.FAILED, final=True),
            _job("waiting"),
        ],
        {(DELIVERIES, 0): 3, (STATUS, 0): 2},
    )
    assert sorted(_ids(store, T0 + DAY_MS - 1)) == ["bad", "ok", "waiting"]
    assert sorted(_ids(store, T0 + DAY_MS)) == ["bad", "waiting"]
    assert store.get("ok", T0 + DAY_MS) is None and store.get("bad", T0 + DAY_MS) is not None
    assert store.prune(T0 + 7 * DAY_MS - 1) == 1  # only the delivered one has expired
    assert store.count() == 2
    assert _ids(store, T0 + 7 * DAY_MS) == []
    assert store.prune(T0 + 7 * DAY_MS, batch=1) == 2 and store.count() == 0
    assert store.search(DeliveryQuery(event_id="e-bad"), T0, limit=10).total == 0


def test_a_changed_retention_applies_to_stored_rows(history_db: HistoryDatabase) -> None:
    store = history_db.open()
    store.ingest([_job("ok"), _status("ok", T0, Outcome.DELIVERED, True)], {(STATUS, 0): 1})
    store.close()
    shorter = history_db.open(success_s=3600)
    assert _ids(shorter, T0 + 3600 * 1000 - 1) == ["ok"]
    assert _ids(shorter, T0 + 3600 * 1000) == []


def test_search_filters_and_order(history_db: HistoryDatabase) -> None:
    store = history_db.open()
    records: list[DeliveryJob | DeliveryStatus] = []
    for n in range(6):
        webhook = "w" if n < 4 else "v"
        records.append(_job(f"d{n}", at=T0 + n, webhook_id=webhook, trigger=f"/items/{n % 2}"))
        outcome = Outcome.DELIVERED if n % 2 else Outcome.FAILED
        code = 410 if n == 2 else None
        records.append(
            _status(f"d{n}", T0 + n + 1, outcome, True, webhook_id=webhook, http_status=code)
        )
    store.ingest(records, {(DELIVERIES, 0): 6, (STATUS, 0): 6})
    assert _ids(store, webhook_id="w") == ["d3", "d2", "d1", "d0"]
    assert _ids(store) == ["d5", "d4", "d3", "d2", "d1", "d0"]
    assert _ids(store, webhook_id="w", outcome=DeliveryOutcome.DELIVERED) == ["d3", "d1"]
    assert _ids(store, outcome=DeliveryOutcome.FAILED) == ["d4", "d2", "d0"]
    assert _ids(store, since=T0 + 1, until=T0 + 3) == ["d2", "d1"]
    assert _ids(store, http_status=410) == ["d2"]
    assert _ids(store, http_status=500) == ["d4", "d0"]
    assert _ids(store, event_id="e-d4") == ["d4"]
    assert _ids(store, event_id="e-d4", webhook_id="w") == []
    assert _ids(store, trigger="/items/1") == ["d5", "d3", "d1"]
    assert _ids(store, webhook_id="other") == []


def test_cursor_pages_stay_stable_while_deliveries_arrive(history_db: HistoryDatabase) -> None:
    store = history_db.open()
    store.ingest([_job(f"d{n:02d}", at=T0 + n // 2) for n in range(25)], {(DELIVERIES, 0): 25})
    first = store.search(DeliveryQuery(webhook_id="w"), T0, limit=10)
    assert first.total == 25 and first.next_cursor is not None
    # New deliveries arrive between two pages: they are newer, so no page shifts.
    store.ingest([_job(f"new{n}", at=T0 + 100) for n in range(3)], {(DELIVERIES, 0): 28})
    seen = [d.delivery_id for d in first.deliveries]
    cursor: str | None = first.next_cursor
    while cursor is not None:
        page = store.search(DeliveryQuery(webhook_id="w"), T0, limit=10, cursor=cursor)
        seen += [d.delivery_id for d in page.deliveries]
        cursor = page.next_cursor
    expected = sorted((f"d{n:02d}" for n in range(25)), key=lambda d: (int(d[1:]) // 2, d))
    assert seen == expected[::-1]
    by_offset = store.search(DeliveryQuery(webhook_id="w"), T0, limit=10, offset=20)
    assert [d.delivery_id for d in by_offset.deliveries] == _ids(store, webhook_id="w")[20:]
    assert by_offset.total == 28 and by_offset.next_cursor is None  # the last page
    with pytest.raises(HistoryQueryError, match="next_cursor"):
        store.search(DeliveryQuery(), T0, limit=10, cursor="not-a-cursor")
