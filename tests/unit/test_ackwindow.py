"""The matcher's ack window: records acked in offset order, each after all its writes, never
past a failed write, and never from an earlier reading of a partition."""

from __future__ import annotations

import asyncio

import pytest

from hookstream.core.ackwindow import AckWindow, WriteFailedError

TP = ("events", 0)


class Record:
    def __init__(self, name: str, acked: list[str]) -> None:
        self.name = name
        self._acked = acked

    def ack(self) -> bool:
        self._acked.append(self.name)
        return True


class Failures:
    def __init__(self) -> None:
        self.seen: list[BaseException] = []

    def __call__(self, exc: BaseException) -> None:
        self.seen.append(exc)


def _futures(count: int) -> list[asyncio.Future[object]]:
    loop = asyncio.get_running_loop()
    return [loop.create_future() for _ in range(count)]


async def _settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_a_record_is_acked_only_once_every_write_succeeded() -> None:
    async def scenario() -> None:
        acked: list[str] = []
        window = AckWindow(limit=10, on_failure=Failures())
        writes = _futures(3)
        await window.track(Record("a", acked), TP, 0, writes)
        writes[0].set_result("x")
        writes[1].set_result("y")
        await _settle()
        assert acked == []
        writes[2].set_result("z")
        await _settle()
        assert acked == ["a"]
        assert window.waiting == 0

    asyncio.run(scenario())


def test_acks_follow_offset_order_even_when_later_records_finish_first() -> None:
    """Faust commits past a gap in acked offsets, so a record with nothing to write (or whose
    writes finished first) must not be acked before an earlier record still in flight."""

    async def scenario() -> None:
        acked: list[str] = []
        window = AckWindow(limit=10, on_failure=Failures())
        first = _futures(1)
        third = _futures(1)
        await window.track(Record("first", acked), TP, 10, first)
        await window.track(Record("no jobs", acked), TP, 11, [])
        await window.track(Record("third", acked), TP, 12, third)
        await window.track(Record("other partition", acked), ("events", 1), 5, [])
        third[0].set_result("ok")
        await _settle()
        assert acked == ["other partition"]
        first[0].set_result("ok")
        await _settle()
        assert acked == ["other partition", "first", "no jobs", "third"]

    asyncio.run(scenario())


def test_a_full_window_waits_for_room() -> None:
    async def scenario() -> None:
        acked: list[str] = []
        window = AckWindow(limit=2, on_failure=Failures())
        first_writes, second_writes = _futures(1), _futures(1)
        await window.track(Record("first", acked), TP, 0, first_writes)
        tracking = asyncio.create_task(window.track(Record("second", acked), TP, 1, second_writes))
        await _settle()
        assert not tracking.done(), "the second record fills the window and must wait"
        first_writes[0].set_result("ok")
        await asyncio.wait_for(tracking, timeout=5)
        assert acked == ["first"]
        second_writes[0].set_result("ok")
        await _settle()
        assert acked == ["first", "second"]

    asyncio.run(scenario())


def test_a_failed_write_is_never_acked_past_and_stops_the_process() -> None:
    async def scenario() -> None:
        acked: list[str] = []
        failures = Failures()
        window = AckWindow(limit=10, on_failure=failures)
        before, failing, later = _futures(1), _futures(2), _futures(1)
        await window.track(Record("before", acked), TP, 0, before)
        await window.track(Record("failing", acked), TP, 1, failing)
        await window.track(Record("later", acked), TP, 2, later)
        before[0].set_result("ok")
        later[0].set_result("ok")
        failing[1].set_result("ok")
        failing[0].set_exception(TimeoutError("no answer from the leader"))
        await _settle()
        assert acked == ["before"]
        assert len(failures.seen) == 1 and isinstance(failures.seen[0], TimeoutError)
        with pytest.raises(WriteFailedError, match="TimeoutError: no answer from the leader"):
            await window.track(Record("next", acked), TP, 3, [])
        assert acked == ["before"]

    asyncio.run(scenario())


def test_a_waiting_agent_is_woken_by_a_failure() -> None:
    async def scenario() -> None:
        window = AckWindow(limit=1, on_failure=Failures())
        writes = _futures(1)
        tracking = asyncio.create_task(window.track(Record("a", []), TP, 0, writes))
        await _settle()
        writes[0].set_exception(OSError("broker gone"))
        with pytest.raises(WriteFailedError):
            await asyncio.wait_for(tracking, timeout=5)

    asyncio.run(scenario())


def test_records_of_an_earlier_reading_are_never_acked() -> None:
    """After a rebalance the partition is read again from its committed offset; an ack of the
    earlier reading's record arriving late could let Faust commit past the re-read one."""

    async def scenario() -> None:
        acked: list[str] = []
        window = AckWindow(limit=10, on_failure=Failures())
        old = _futures(1)
        await window.track(Record("old 7", acked), TP, 7, old)
        await window.track(Record("old 8", acked), TP, 8, [])
        new = _futures(1)
        await window.track(Record("new 7", acked), TP, 7, new)
        old[0].set_result("ok")
        await _settle()
        assert acked == []
        assert window.waiting == 1
        new[0].set_result("ok")
        await _settle()
        assert acked == ["new 7"]
        assert window.waiting == 0

    asyncio.run(scenario())


def test_the_window_needs_room() -> None:
    with pytest.raises(ValueError, match="at least one record"):
        AckWindow(limit=0, on_failure=Failures())
