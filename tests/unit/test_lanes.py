"""Lanes: per-webhook limits inside the global bound, overtaking, and parking of slow backlogs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookstream.core.lanes import Lanes


def _keys(started: list[tuple[str, int]]) -> list[str]:
    return [key for key, _ in started]


def test_a_webhook_never_exceeds_its_limit_and_others_overtake_it() -> None:
    lanes: Lanes[int] = Lanes(limit=2, concurrency=10, max_wait_s=60)
    for n in range(5):
        lanes.add("slow", n)
    assert lanes.ready(0.0) == [("slow", 0), ("slow", 1)]
    lanes.add("fast", 100)
    lanes.add("fast", 101)
    # The slow webhook's three waiting jobs hold no slot: the fast ones start at once.
    assert lanes.ready(0.1) == [("fast", 100), ("fast", 101)]
    assert lanes.in_flight("slow") == 2 and lanes.waiting("slow") == 3
    assert lanes.in_flight() == 4 and lanes.waiting() == 3
    assert lanes.at_limit() == 1


def test_finishing_frees_the_slot_for_the_next_job_in_order() -> None:
    lanes: Lanes[int] = Lanes(limit=1, concurrency=10, max_wait_s=60)
    for n in range(3):
        lanes.add("a", n)
    assert lanes.ready(0.0) == [("a", 0)]
    assert lanes.ready(0.5) == []
    lanes.finished("a", 0.0, 1.0)
    assert lanes.ready(1.0) == [("a", 1)]


def test_the_global_bound_is_shared_round_robin() -> None:
    lanes: Lanes[int] = Lanes(limit=8, concurrency=4, max_wait_s=60)
    for n in range(8):
        lanes.add("a", n)
        lanes.add("b", 100 + n)
    started = lanes.ready(0.0)
    assert len(started) == 4
    assert sorted(_keys(started)) == ["a", "a", "b", "b"]
    assert lanes.ready(0.0) == []


def test_the_limit_never_exceeds_the_global_bound() -> None:
    assert Lanes[int](limit=100, concurrency=4, max_wait_s=1).limit == 4
    with pytest.raises(ValueError, match="at least 1"):
        Lanes[int](limit=0, concurrency=4, max_wait_s=1)


def test_a_gate_lowers_a_webhooks_limit() -> None:
    gates = {"dead": 0, "probing": 1}
    lanes: Lanes[int] = Lanes(
        limit=8, concurrency=64, max_wait_s=60, gate=lambda key: gates.get(key, 8)
    )
    for n in range(3):
        lanes.add("dead", n)
        lanes.add("probing", 10 + n)
        lanes.add("fine", 20 + n)
    assert sorted(_keys(lanes.ready(0.0))) == ["fine"] * 3 + ["probing"]
    assert lanes.allowed("dead") == 0
    assert lanes.take_waiting("dead") == [0, 1, 2]
    assert lanes.waiting("dead") == 0
    assert lanes.waiting() == 2


def test_a_slow_lane_keeps_only_what_starts_within_the_wait_bound() -> None:
    lanes: Lanes[int] = Lanes(limit=2, concurrency=64, max_wait_s=2.0)
    for n in range(10):
        lanes.add("slow", n)
    lanes.ready(0.0)
    # Nothing finished and nothing ran long yet: no evidence of slowness, nothing parked.
    assert lanes.overdue(0.0) == []
    # After 1 s with both requests still running, a request is known to take at least 1 s:
    # of the 8 waiting, positions 0-1 start in about 1 s, 2-3 in 2 s: the rest leave, oldest
    # first, each booked half a request duration (1 s / 2 slots) after the one before.
    overdue = lanes.overdue(1.0)
    assert [(entry.item, entry.delay_s) for entry in overdue] == [
        (6, 3.0),
        (7, 3.5),
        (8, 4.0),
        (9, 4.5),
    ]
    assert lanes.booked_until("slow") == 1.0 + 5.0
    assert lanes.waiting("slow") == 4
    assert all(entry.key == "slow" for entry in overdue)


def test_a_fast_lane_with_a_long_backlog_is_not_parked() -> None:
    lanes: Lanes[int] = Lanes(limit=8, concurrency=64, max_wait_s=2.0)
    for n in range(200):
        lanes.add("fast", n)
    now = 0.0
    for _ in range(3):
        for key, _item in lanes.ready(now):
            lanes.finished(key, now, now + 0.005)
        now += 0.005
    lanes.ready(now)
    assert lanes.overdue(now + 0.001) == []
    assert lanes.waiting("fast") == 200 - 32


def test_a_slow_webhook_is_remembered_when_its_jobs_come_back() -> None:
    lanes: Lanes[int] = Lanes(limit=1, concurrency=64, max_wait_s=2.0)
    lanes.add("slow", 0)
    lanes.ready(0.0)
    lanes.finished("slow", 0.0, 5.0)
    assert lanes.in_flight() == 0 and lanes.waiting() == 0
    lanes.add("slow", 1)
    lanes.add("slow", 2)
    lanes.ready(10.0)
    # The average of 5 s is known at once: job 2 would start in 5 s, it is parked.
    [entry] = lanes.overdue(10.0)
    assert (entry.item, entry.delay_s) == (2, 5.0)


def test_a_job_with_a_free_slot_is_never_parked() -> None:
    lanes: Lanes[int] = Lanes(limit=2, concurrency=64, max_wait_s=0.5)
    lanes.add("slow", 0)
    lanes.ready(0.0)
    lanes.finished("slow", 0.0, 5.0)
    for n in range(1, 5):
        lanes.add("slow", n)
    # Two slots are free: jobs 1 and 2 start now, 3 and 4 after about 5 s and 7.5 s.
    assert [(entry.item, entry.delay_s) for entry in lanes.overdue(6.0)] == [(3, 5.0), (4, 7.5)]
    assert lanes.ready(6.0) == [("slow", 1), ("slow", 2)]


def test_jobs_parked_later_are_booked_after_those_parked_before() -> None:
    lanes: Lanes[int] = Lanes(limit=1, concurrency=64, max_wait_s=2.0)
    lanes.add("slow", 0)
    lanes.ready(0.0)
    lanes.finished("slow", 0.0, 5.0)
    for n in range(1, 4):
        lanes.add("slow", n)
    lanes.ready(5.0)
    assert [(e.item, e.delay_s) for e in lanes.overdue(5.0)] == [(2, 5.0), (3, 10.0)]
    # A job arriving a second later waits behind the two booked ones, not beside them.
    lanes.add("slow", 4)
    assert [(e.item, e.delay_s) for e in lanes.overdue(6.0)] == [(4, 14.0)]
    assert lanes.booked_until("slow") == 25.0


def test_parked_jobs_come_back_when_there_is_room_and_are_not_parked_again() -> None:
    """A fake clock: 40 jobs of a 5 s receiver with 4 slots; every parked job starts when it
    comes back, so each job is parked at most once (no churn)."""
    lanes: Lanes[int] = Lanes(limit=4, concurrency=64, max_wait_s=2.0)
    lanes.add("slow", 0)
    lanes.ready(0.0)
    lanes.finished("slow", 0.0, 5.0)
    for n in range(1, 41):
        lanes.add("slow", n)
    now = 5.0
    returning: list[tuple[float, int]] = []
    running: list[tuple[float, int]] = []
    parked: dict[int, int] = {}
    done: list[int] = []
    while len(done) < 40:
        for entry in lanes.overdue(now):
            parked[entry.item] = parked.get(entry.item, 0) + 1
            returning.append((now + entry.delay_s, entry.item))
        running.extend((now, item) for _, item in lanes.ready(now))
        now = round(now + 0.125, 3)
        for started, item in [job for job in running if now - job[0] >= 5.0]:
            lanes.finished("slow", started, now)
            running.remove((started, item))
            done.append(item)
        for due, item in sorted(job for job in returning if job[0] <= now):
            returning.remove((due, item))
            lanes.add("slow", item)
        assert now < 200, "the jobs should all be done in about 50 s"
    assert sorted(done) == list(range(1, 41))
    assert parked and max(parked.values()) == 1
    # The slots stayed busy: 40 jobs at 4 at a time take about 10 rounds of 5 s.
    assert now <= 5.0 + 12 * 5.0


def test_slow_webhooks_cannot_take_the_reserved_slots() -> None:
    lanes: Lanes[int] = Lanes(limit=4, concurrency=10, max_wait_s=60, reserve=3)
    for key in ("slow-a", "slow-b", "fast"):
        lanes.add(key, 0)
    for _, _item in lanes.ready(0.0):
        pass
    for key in ("slow-a", "slow-b"):
        lanes.finished(key, 0.0, 5.0)
    lanes.finished("fast", 0.0, 0.01)
    for n in range(1, 9):
        lanes.add("slow-a", n)
        lanes.add("slow-b", 10 + n)
    started = lanes.ready(6.0)
    # Only the 7 general slots go to the slow webhooks; the 3 reserved ones stay free.
    assert len(started) == 7 and lanes.in_flight() == 7
    for n in range(1, 5):
        lanes.add("fast", n)
    assert _keys(lanes.ready(6.1)) == ["fast", "fast", "fast"]
    assert lanes.in_flight() == 10


def test_the_reserve_leaves_at_least_one_general_slot() -> None:
    lanes: Lanes[int] = Lanes(limit=1, concurrency=1, max_wait_s=60, reserve=5)
    assert lanes.reserve == 0
    with pytest.raises(ValueError, match="reserve"):
        Lanes[int](limit=1, concurrency=1, max_wait_s=60, reserve=-1)


def test_drop_forgets_waiting_jobs_of_revoked_partitions() -> None:
    lanes: Lanes[int] = Lanes(limit=1, concurrency=64, max_wait_s=2.0)
    for n in range(6):
        lanes.add("a" if n % 2 else "b", n)
    lanes.ready(0.0)
    assert lanes.drop(lambda item: item >= 4) == 2
    assert lanes.waiting() == 2
    assert sorted(lanes.waiting_keys()) == ["a", "b"]


def test_finishing_an_unknown_job_is_an_error() -> None:
    lanes: Lanes[int] = Lanes(limit=1, concurrency=1, max_wait_s=2.0)
    with pytest.raises(ValueError, match="no job"):
        lanes.finished("a", 0.0, 1.0)


@settings(deadline=None, max_examples=200)
@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "ready", "finish", "overdue"]), st.sampled_from("abc")),
        max_size=120,
    ),
    st.integers(1, 4),
    st.integers(1, 6),
    st.integers(0, 3),
)
def test_bounds_hold_and_no_job_is_lost_or_doubled(
    steps: list[tuple[str, str]], limit: int, concurrency: int, reserve: int
) -> None:
    lanes: Lanes[int] = Lanes(
        limit=limit, concurrency=concurrency, max_wait_s=0.5, reserve=reserve, quick_s=0.25
    )
    running: dict[str, list[tuple[float, int]]] = {}
    added: list[int] = []
    out: list[int] = []
    now = 0.0
    for n, (step, key) in enumerate(steps):
        now += 0.1
        if step == "add":
            lanes.add(key, n)
            added.append(n)
        elif step == "ready":
            for started_key, item in lanes.ready(now):
                running.setdefault(started_key, []).append((now, item))
        elif step == "finish" and running.get(key):
            started, item = running[key].pop(0)
            lanes.finished(key, started, now)
            out.append(item)
        elif step == "overdue":
            out.extend(entry.item for entry in lanes.overdue(now))
        assert lanes.in_flight() <= min(concurrency, 6)
        for lane_key in "abc":
            assert lanes.in_flight(lane_key) <= min(limit, concurrency)
        waiting = lanes.waiting()
        assert waiting == sum(lanes.waiting(lane_key) for lane_key in "abc")
    still_running = [item for jobs in running.values() for _, item in jobs]
    still_waiting = []
    for lane_key in "abc":
        still_waiting.extend(lanes.take_waiting(lane_key))
    assert sorted(out + still_running + still_waiting) == sorted(added)
