"""The lag figure of a view: end offsets minus positions, read again at most every
LAG_REFRESH_S, and only when asked (a fake end-offsets client counts the reads)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from hookstream.kafka import follower
from hookstream.kafka.follower import CompactedFeed, ViewLag

TOPIC = "views.lag"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


class FakeEnds:
    """Answers end offsets as set; counts how often it is asked."""

    def __init__(self, ends: dict[TopicPartition, int]) -> None:
        self.ends = ends
        self.reads = 0

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.reads += 1
        return {tp: self.ends[tp] for tp in partitions}


def _view(ends: FakeEnds, clock: list[float], monkeypatch: pytest.MonkeyPatch) -> CompactedFeed:
    # The follower's clock only (the event loop keeps its own).
    monkeypatch.setattr(follower, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    view = CompactedFeed("127.0.0.1:1", TOPIC, "test-lag")
    view._ends = ends
    view._assignment = [P0, P1]
    return view


async def _measured(view: CompactedFeed) -> ViewLag:
    """The figure after the read this call starts (if any) has ended."""
    view.lag()
    if view._measuring is not None:
        await view._measuring
    return view.lag()


def test_the_figure_is_end_offsets_minus_positions_and_reads_at_most_every_refresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    ends = FakeEnds({P0: 10, P1: 5})
    view = _view(ends, clock, monkeypatch)

    async def scenario() -> None:
        assert view.lag() == ViewLag(records=None, fresh_age_s=None)  # nothing read yet
        view._positions = {P0: 4, P1: 5}
        assert await _measured(view) == ViewLag(records=6, fresh_age_s=None)
        assert ends.reads == 1
        # Asked again within LAG_REFRESH_S: no new read, the positions count at once.
        clock[0] += follower.LAG_REFRESH_S / 2
        view._positions = {P0: 10, P1: 5}
        ends.ends = {P0: 12, P1: 5}
        lag = await _measured(view)
        assert ends.reads == 1
        assert lag.records == 0 and lag.fresh_age_s == pytest.approx(follower.LAG_REFRESH_S / 2)
        # Later: read again; two new records, fresh as of the read before.
        clock[0] += follower.LAG_REFRESH_S
        lag = await _measured(view)
        assert ends.reads == 2
        assert lag.records == 2
        assert lag.fresh_age_s == pytest.approx(follower.LAG_REFRESH_S * 1.5)

    asyncio.run(scenario())


def test_a_failed_read_keeps_the_last_figure_and_waits_its_turn(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [1000.0]
    ends = FakeEnds({P0: 3, P1: 0})
    view = _view(ends, clock, monkeypatch)

    async def broken(partitions: Any) -> Any:
        ends.reads += 1
        raise ConnectionError("broker gone")

    async def scenario() -> None:
        view._positions = {P0: 1, P1: 0}
        assert (await _measured(view)).records == 2
        monkeypatch.setattr(ends, "end_offsets", broken)
        clock[0] += follower.LAG_REFRESH_S
        assert (await _measured(view)).records == 2
        assert (await _measured(view)).records == 2
        assert ends.reads == 2  # the failed read held its place
        assert "could not read the end offsets of views.lag" in caplog.text

    asyncio.run(scenario())
