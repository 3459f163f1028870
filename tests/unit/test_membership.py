"""Two processes under one group instance id are stopped, not left to fence each other."""

from __future__ import annotations

import pytest

from hookstream.kafka.membership import AssignmentChurn, DuplicateInstanceError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _churn(instance_id: str | None, clock: Clock) -> AssignmentChurn:
    return AssignmentChurn("hookstream-sender", instance_id, limit=5, window_s=30, clock=clock)


def test_a_new_member_id_at_every_assignment_under_a_static_id_stops_the_process() -> None:
    """The fencing loop: each join under the shared name gets a new member id, once a second."""
    clock = Clock()
    churn = _churn("sender-0", clock)
    churn.assigned("member-0")
    for number in range(1, 5):
        clock.now += 1.0
        churn.assigned(f"member-{number}")
    assert churn.recent == 4
    clock.now += 1.0
    with pytest.raises(DuplicateInstanceError, match="HOOKSTREAM_GROUP_INSTANCE_ID=sender-0"):
        churn.assigned("member-5")


def test_rebalances_keep_the_member_id_and_do_not_count() -> None:
    """A rolling update rebalances often; this member keeps its id through all of them."""
    clock = Clock()
    churn = _churn("sender-0", clock)
    for _ in range(100):
        churn.assigned("member-0")
        clock.now += 0.5
    assert churn.recent == 0


def test_new_member_ids_spread_over_time_are_normal() -> None:
    """A lost session now and then (a long pause) gives a new member id: far below the limit."""
    clock = Clock()
    churn = _churn("sender-0", clock)
    for number in range(20):
        churn.assigned(f"member-{number}")
        clock.now += 10.0
    assert churn.recent == 4  # within the last 30 s, both ends counted


def test_without_a_static_id_nothing_is_counted() -> None:
    churn = _churn(None, Clock())
    for number in range(50):
        churn.assigned(f"member-{number}")
    assert churn.recent == 0
