"""The matcher's ack window: an event is acked only after all its writes, never past a failure."""

from __future__ import annotations

import asyncio

import pytest

from hookstream.ackwindow import AckWindow, WriteFailedError


class Record:
    def __init__(self) -> None:
        self.acks = 0

    def ack(self) -> bool:
        self.acks += 1
        return True


def _futures(count: int) -> list[asyncio.Future[object]]:
    loop = asyncio.get_running_loop()
    return [loop.create_future() for _ in range(count)]


async def _settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_a_record_is_acked_only_once_every_write_succeeded() -> None:
    async def scenario() -> None:
        window = AckWindow(limit=10)
        record = Record()
        writes = _futures(3)
        await window.track(record, writes)
        writes[0].set_result("a")
        writes[1].set_result("b")
        await _settle()
        assert record.acks == 0
        writes[2].set_result("c")
        await _settle()
        assert record.acks == 1
        assert window.waiting == 0

    asyncio.run(scenario())


def test_records_without_pending_writes_are_acked_at_once() -> None:
    async def scenario() -> None:
        window = AckWindow(limit=1)
        record = Record()
        done = _futures(1)
        done[0].set_result("ok")
        await window.track(record, done)
        assert record.acks == 1
        await window.track(Record(), [])
        assert window.waiting == 0

    asyncio.run(scenario())


def test_a_full_window_waits_for_room() -> None:
    async def scenario() -> None:
        window = AckWindow(limit=2)
        first, second = Record(), Record()
        first_writes, second_writes = _futures(1), _futures(1)
        await window.track(first, first_writes)
        tracking = asyncio.create_task(window.track(second, second_writes))
        await _settle()
        assert not tracking.done(), "the second record fills the window and must wait"
        first_writes[0].set_result("ok")
        await asyncio.wait_for(tracking, timeout=5)
        assert first.acks == 1 and second.acks == 0
        second_writes[0].set_result("ok")
        await _settle()
        assert second.acks == 1

    asyncio.run(scenario())


def test_a_failed_write_is_never_acked_past_and_stops_the_agent() -> None:
    async def scenario() -> None:
        window = AckWindow(limit=10)
        failing, later = Record(), Record()
        failing_writes, later_writes = _futures(2), _futures(1)
        await window.track(failing, failing_writes)
        await window.track(later, later_writes)
        failing_writes[0].set_exception(TimeoutError("no answer from the leader"))
        failing_writes[1].set_result("ok")
        later_writes[0].set_result("ok")
        await _settle()
        assert failing.acks == 0 and later.acks == 0
        with pytest.raises(WriteFailedError, match="TimeoutError: no answer from the leader"):
            await window.track(Record(), [])

    asyncio.run(scenario())


def test_a_waiting_agent_is_woken_by_a_failure() -> None:
    async def scenario() -> None:
        window = AckWindow(limit=1)
        writes = _futures(1)
        tracking = asyncio.create_task(window.track(Record(), writes))
        await _settle()
        writes[0].set_exception(OSError("broker gone"))
        with pytest.raises(WriteFailedError):
            await asyncio.wait_for(tracking, timeout=5)

    asyncio.run(scenario())


def test_the_window_needs_room() -> None:
    with pytest.raises(ValueError, match="at least one record"):
        AckWindow(limit=0)
