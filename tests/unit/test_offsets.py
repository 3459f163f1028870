"""OffsetTracker: commits never pass a record that is still in flight."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hookstream.core.offsets import OffsetTracker

P0 = ("events", 0)
P1 = ("events", 1)


def test_in_order_completion_commits_past_the_last() -> None:
    tracker = OffsetTracker()
    for offset in range(3):
        tracker.begin(P0, offset)
    for offset in range(3):
        assert tracker.done(P0, offset) is True
    assert tracker.committable() == {P0: 3}


def test_out_of_order_completion_stops_at_the_oldest_pending() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12, 13):
        tracker.begin(P0, offset)
    tracker.done(P0, 12)
    tracker.done(P0, 13)
    assert tracker.committable() == {P0: 10}
    tracker.done(P0, 11)
    assert tracker.committable() == {P0: 10}
    tracker.done(P0, 10)
    assert tracker.committable() == {P0: 14}
    assert tracker.in_flight() == 0


def test_committable_returns_only_moved_partitions() -> None:
    tracker = OffsetTracker()
    tracker.begin(P0, 0)
    tracker.begin(P1, 0)
    tracker.done(P0, 0)
    tracker.done(P1, 0)
    first = tracker.committable()
    assert first == {P0: 1, P1: 1}
    tracker.committed(first)
    assert tracker.committable() == {}
    tracker.begin(P1, 1)
    tracker.done(P1, 1)
    assert tracker.committable() == {P1: 2}


def test_committable_without_commit_repeats() -> None:
    tracker = OffsetTracker()
    tracker.begin(P0, 5)
    tracker.done(P0, 5)
    assert tracker.committable() == {P0: 6}
    assert tracker.committable() == {P0: 6}


def test_in_flight_and_tracks() -> None:
    tracker = OffsetTracker()
    assert tracker.in_flight() == 0
    assert not tracker.tracks(P0)
    tracker.begin(P0, 1)
    tracker.begin(P0, 2)
    tracker.begin(P1, 7)
    assert tracker.in_flight() == 3
    assert tracker.tracks(P0) and tracker.tracks(P1)
    tracker.done(P0, 2)
    assert tracker.in_flight() == 2


def test_forget() -> None:
    tracker = OffsetTracker()
    tracker.begin(P0, 0)
    tracker.begin(P1, 0)
    tracker.committed({P0: 0})
    tracker.forget(P0)
    assert not tracker.tracks(P0)
    assert tracker.in_flight() == 1
    assert P0 not in tracker.committable()
    assert tracker.done(P0, 0) is False
    tracker.forget(("never", 9))  # forgetting an unknown partition is harmless


def test_done_on_unknown_partition_is_false() -> None:
    assert OffsetTracker().done(P0, 0) is False


def test_reassigned_partition_starts_fresh() -> None:
    tracker = OffsetTracker()
    tracker.begin(P0, 5)
    tracker.done(P0, 5)
    tracker.committed(tracker.committable())
    tracker.forget(P0)
    tracker.begin(P0, 3)
    tracker.done(P0, 3)
    assert tracker.committable() == {P0: 4}


@settings(deadline=None)
@given(st.permutations(list(range(12))), st.integers(0, 12))
def test_commit_never_passes_an_unfinished_record(order: list[int], finished: int) -> None:
    tracker = OffsetTracker()
    for offset in range(12):
        tracker.begin(P0, offset)
    done = set(order[:finished])
    for offset in order[:finished]:
        assert tracker.done(P0, offset)
    commit = tracker.committable()[P0]
    # Everything below the commit point is done; the commit point itself is not (unless at end).
    assert all(offset in done for offset in range(commit))
    assert commit == 12 or commit not in done
