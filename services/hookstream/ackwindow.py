"""Acknowledge a consumed record only once the broker has every record it caused.

The matcher turns one event into several writes. Waiting for the broker after each event would
cap the matcher at one producer round trip (and linger) per event; not waiting at all lets Faust
commit an offset whose writes later fail. The window does neither: an event's offset is acked as
soon as its writes are, while the agent goes on to the next events, and Faust commits only the
contiguous run of acked offsets. A write that fails is never acked past, and the agent stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Ackable(Protocol):
    """What the window needs of a consumed record (Faust's ``EventT`` has it)."""

    def ack(self) -> bool: ...


class WriteFailedError(RuntimeError):
    """A record's write was not acknowledged by Kafka; its offset is not committed."""


class AckWindow:
    """Acks records when their writes are done, with at most ``limit`` records waiting."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the window needs room for at least one record")
        self.limit = limit
        self.waiting = 0
        self._room = asyncio.Event()
        self._room.set()
        self.failure: BaseException | None = None

    def check(self) -> None:
        """Raise the first write failure seen, so the agent stops instead of acking past it."""
        if self.failure is not None:
            raise WriteFailedError(
                f"a write to Kafka failed ({type(self.failure).__name__}: {self.failure}); "
                "the records after the last committed offset will be read again"
            ) from self.failure

    async def track(self, record: Ackable, sent: Sequence[Awaitable[Any]]) -> None:
        """Ack ``record`` once every write in ``sent`` has succeeded; wait while full."""
        self.check()
        writes = [asyncio.ensure_future(write) for write in sent]
        pending = [write for write in writes if not write.done()]
        failed = [write for write in writes if write.done() and not _succeeded(write)]
        if failed:
            self._fail(failed[0])
            self.check()
        if not pending:
            record.ack()
            return
        self.waiting += 1
        if self.waiting >= self.limit:
            self._room.clear()
        remaining = len(pending)

        def settled(write: asyncio.Future[Any]) -> None:
            nonlocal remaining
            if not _succeeded(write):
                self._fail(write)
            remaining -= 1
            if remaining:
                return
            self.waiting -= 1
            if self.failure is None:
                record.ack()
            if self.waiting < self.limit:
                self._room.set()

        for write in pending:
            write.add_done_callback(settled)
        await self._room.wait()
        self.check()

    def _fail(self, write: asyncio.Future[Any]) -> None:
        if self.failure is not None:
            return
        self.failure = write.exception() if not write.cancelled() else asyncio.CancelledError()
        log.error("a write to Kafka failed; the consumed offsets after it will not be committed")
        # Wake a waiting agent so it raises now rather than when the window has room.
        self._room.set()


def _succeeded(write: asyncio.Future[Any]) -> bool:
    return not write.cancelled() and write.exception() is None
