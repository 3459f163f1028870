"""The notification-status store: outcomes, retention by the injected clock, pruning."""

from __future__ import annotations

from hookstream.admin.schemas import DeliveryOutcome
from hookstream.admin.store import DeliveryStore
from hookstream.models import DeliveryJob, DeliveryStatus, DomainEvent, Outcome

DAY_MS = 24 * 3600 * 1000
T0 = 1_700_000_000_000


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def _store(clock: Clock) -> DeliveryStore:
    return DeliveryStore(
        success_retention_s=24 * 3600, failure_retention_s=7 * 24 * 3600, clock=clock
    )


def _job(delivery_id: str, at: int = T0, redelivery: bool = False) -> DeliveryJob:
    event = DomainEvent(
        event_id=f"e-{delivery_id}", source="items", operation="add", occurred_at=at
    )
    return DeliveryJob(
        delivery_id=delivery_id,
        webhook_id="w",
        trigger="/items",
        events=[event],
        due_at=at,
        triggered_at=at,
        redelivery=redelivery,
    )


def _status(
    delivery_id: str, at: int, outcome: Outcome, final: bool, attempt: int = 1
) -> DeliveryStatus:
    return DeliveryStatus(
        delivery_id=delivery_id,
        webhook_id="w",
        webhook_name="W",
        event_ids=[f"e-{delivery_id}"],
        trigger="/items",
        attempt=attempt,
        max_attempts=3,
        attempted_at=at,
        outcome=outcome,
        final=final,
        http_status=200 if outcome is Outcome.DELIVERED else 500,
        payload=f"body {attempt}",
    )


def test_outcome_follows_the_attempts() -> None:
    store = _store(Clock())
    store.add_job(_job("d"))
    [entry] = store.list("w")
    assert entry.outcome() is DeliveryOutcome.PENDING
    store.add_status(_status("d", T0 + 10, Outcome.FAILED, final=False))
    assert entry.outcome() is DeliveryOutcome.PENDING
    store.add_status(_status("d", T0 + 20, Outcome.FAILED, final=True, attempt=2))
    assert entry.outcome() is DeliveryOutcome.FAILED
    assert entry.payload == "body 2"
    # A redelivery makes it pending again until an attempt after it.
    store.add_job(_job("d", at=T0 + 30, redelivery=True))
    assert entry.outcome() is DeliveryOutcome.PENDING and entry.triggered_at == T0
    store.add_status(_status("d", T0 + 40, Outcome.DELIVERED, final=True))
    assert entry.outcome() is DeliveryOutcome.DELIVERED
    assert [a.attempt for a in entry.to_api().attempts] == [1, 2, 1]
    assert entry.to_api().redelivered


def test_a_status_read_twice_counts_once_and_state_records_are_not_deliveries() -> None:
    store = _store(Clock())
    status = _status("d", T0, Outcome.DELIVERED, final=True)
    store.add_status(status)
    store.add_status(status)
    store.add_status(
        DeliveryStatus(webhook_id="w", webhook_name="W", outcome=Outcome.DEACTIVATED, final=True)
    )
    [entry] = store.list("w")
    assert len(entry.attempts) == 1
    # Seen before its job: the first attempt stands in for when it fired.
    assert entry.fired_at() == T0 and entry.events == []
    store.add_job(_job("d", at=T0 - 5))
    assert entry.fired_at() == T0 - 5 and entry.events[0].event_id == "e-d"


def test_delivered_entries_are_listed_one_day_and_failed_ones_seven() -> None:
    clock = Clock()
    store = _store(clock)
    store.add_job(_job("ok"))
    store.add_status(_status("ok", T0, Outcome.DELIVERED, final=True))
    store.add_job(_job("bad"))
    store.add_status(_status("bad", T0, Outcome.FAILED, final=True))
    store.add_job(_job("waiting"))

    def listed() -> set[str]:
        return {entry.delivery_id for entry in store.list("w")}

    clock.now = T0 + DAY_MS - 1
    assert listed() == {"ok", "bad", "waiting"}
    clock.now = T0 + DAY_MS
    assert listed() == {"bad", "waiting"}
    assert store.get("w", "ok") is None and store.get("w", "bad") is not None
    clock.now = T0 + 7 * DAY_MS - 1
    assert listed() == {"bad", "waiting"}
    assert store.prune() == 1  # only the delivered one has expired
    clock.now = T0 + 7 * DAY_MS
    assert listed() == set()
    assert store.prune() == 2 and len(store) == 0


def test_filters_and_order() -> None:
    store = _store(Clock(T0 + 100))
    for n in range(5):
        store.add_job(_job(f"d{n}", at=T0 + n))
        outcome = Outcome.DELIVERED if n % 2 else Outcome.FAILED
        store.add_status(_status(f"d{n}", T0 + n + 1, outcome, final=True))
    assert [e.delivery_id for e in store.list("w")] == ["d4", "d3", "d2", "d1", "d0"]
    assert [e.delivery_id for e in store.list("w", DeliveryOutcome.DELIVERED)] == ["d3", "d1"]
    assert [e.delivery_id for e in store.list("w", since=T0 + 1, until=T0 + 3)] == ["d2", "d1"]
    assert store.list("other") == []
