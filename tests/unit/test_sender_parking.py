"""Parking: keyed by delivery id, one held-status record per circuit opening, bounds apart."""

from __future__ import annotations

from aiokafka import TopicPartition

from hookstream.records.codec import decode
from hookstream.records.models import DeliveryJob, DeliveryStatus, DomainEvent, Outcome
from hookstream.sender.parking import (
    HELD_HEADER,
    PARKED_HEADER,
    Item,
    Schedule,
    held_status,
    park,
)

NOW = 1_700_000_000_000
TP = TopicPartition("jobs", 0)


def _job(n: int, due_at: int = NOW, webhook_id: str = "wh-1") -> DeliveryJob:
    event = DomainEvent(event_id=f"e-{n}", source="items", operation="update", occurred_at=NOW)
    return DeliveryJob(
        delivery_id=f"d-{n}",
        webhook_id=webhook_id,
        trigger="/items/update",
        events=[event],
        due_at=due_at,
        triggered_at=NOW,
        attempt=2,
    )


def test_a_parked_job_keeps_its_id_and_attempt_and_is_keyed_by_delivery_id() -> None:
    outputs, headers = park(Item(TP, 7, _job(1)), NOW + 5000, "retries", "status")
    [(topic, key, value)] = outputs
    copy = decode(value, DeliveryJob)
    assert (topic, key) == ("retries", b"d-1")
    assert (copy.delivery_id, copy.attempt, copy.due_at) == ("d-1", 2, NOW + 5000)
    assert headers == [(PARKED_HEADER, b"backlog")]


def test_a_held_job_is_reported_once_per_circuit_opening() -> None:
    job = _job(1)
    status = held_status(job, "One", 3, NOW + 10_000, failures=5)
    outputs, headers = park(Item(TP, 7, job), NOW + 10_000, "retries", "status", ("s-1", status))
    assert [(topic, key) for topic, key, _ in outputs] == [("retries", b"d-1"), ("status", b"wh-1")]
    reported = decode(outputs[1][2], DeliveryStatus)
    assert reported.outcome is Outcome.HELD and not reported.final
    assert "circuit is open after 5" in (reported.error or "")
    assert (HELD_HEADER, b"s-1") in headers

    # The copy comes back (its headers say which opening it was reported to) and the circuit
    # is still in that opening: parked again, no second status record.
    back = Item.read(TP, 9, job, headers)
    assert back.parked and back.held == "s-1"
    again, _ = park(back, NOW + 20_000, "retries", "status", ("s-1", status))
    assert [topic for topic, _, _ in again] == ["retries"]
    # A new opening reports it again.
    later, _ = park(back, NOW + 90_000, "retries", "status", ("s-2", status))
    assert [topic for topic, _, _ in later] == ["retries", "status"]


def test_the_schedule_hands_out_due_jobs_in_order_and_counts_parked_apart() -> None:
    schedule = Schedule(max_retries=10, max_parked=4)
    for n, due_at in enumerate((NOW + 300, NOW + 100, NOW + 200)):
        schedule.push(Item(TP, n, _job(n, due_at)))
    for n in range(3, 7):
        schedule.push(Item(TP, n, _job(n, NOW + 150), parked=True))
    assert (schedule.retries, schedule.parked) == (3, 4)
    # The parked bound is reached; the retries' bound is not.
    assert schedule.full()
    due = schedule.pop_due(NOW + 200)
    assert [item.job.due_at for item in due] == [NOW + 100] + [NOW + 150] * 4 + [NOW + 200]
    assert (schedule.retries, schedule.parked) == (1, 0)
    assert not schedule.full() and schedule.roomy()


def test_parked_jobs_do_not_use_up_the_room_of_retries() -> None:
    schedule = Schedule(max_retries=10, max_parked=100)
    for n in range(50):
        schedule.push(Item(TP, n, _job(n, NOW + 1000), parked=True))
    for n in range(50, 59):
        schedule.push(Item(TP, n, _job(n, NOW + 1000)))
    assert len(schedule) == 59 and not schedule.full()
    schedule.push(Item(TP, 59, _job(59, NOW + 1000)))
    assert schedule.full()


def test_revoked_partitions_are_forgotten_with_their_counts() -> None:
    other = TopicPartition("jobs", 1)
    schedule = Schedule(max_retries=10, max_parked=10)
    schedule.push(Item(TP, 0, _job(0, NOW + 5), parked=True))
    schedule.push(Item(other, 0, _job(1, NOW + 5), parked=True))
    schedule.push(Item(other, 1, _job(2, NOW + 5)))
    schedule.drop(lambda item: item.tp == other)
    assert (len(schedule), schedule.parked, schedule.retries) == (1, 1, 0)


def test_parked_jobs_of_a_webhook_are_taken_early_earliest_first() -> None:
    schedule = Schedule(max_retries=10, max_parked=10)
    for n, due_at in enumerate((NOW + 300_000, NOW + 100_000, NOW + 200_000)):
        schedule.push(Item(TP, n, _job(n, due_at), parked=True))
    schedule.push(Item(TP, 3, _job(3, NOW + 50_000, webhook_id="wh-2"), parked=True))
    schedule.push(Item(TP, 4, _job(4, NOW + 1000)))  # a retry: never taken early
    assert sorted(schedule.parked_webhooks()) == ["wh-1", "wh-2"]

    taken = schedule.take_parked("wh-1", 2)
    assert [item.job.due_at for item in taken] == [NOW + 100_000, NOW + 200_000]
    assert (len(schedule), schedule.parked, schedule.retries) == (3, 2, 1)
    # What was taken is not handed out again when its due time comes.
    due = schedule.pop_due(NOW + 300_000)
    assert [item.job.delivery_id for item in due] == ["d-4", "d-3", "d-0"]
    assert (len(schedule), schedule.parked, schedule.retries) == (0, 0, 0)
    assert schedule.parked_webhooks() == [] and schedule.take_parked("wh-1", 5) == []


def test_a_revoked_partition_takes_its_parked_jobs_out_of_early_taking() -> None:
    other = TopicPartition("jobs", 1)
    schedule = Schedule(max_retries=10, max_parked=10)
    schedule.push(Item(TP, 0, _job(0, NOW + 5000), parked=True))
    schedule.push(Item(other, 0, _job(1, NOW + 1000), parked=True))
    schedule.drop(lambda item: item.tp == other)
    assert [item.job.delivery_id for item in schedule.take_parked("wh-1", 5)] == ["d-0"]
    assert (len(schedule), schedule.parked) == (0, 0)
