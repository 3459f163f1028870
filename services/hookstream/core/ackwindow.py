"""Acknowledge consumed records in offset order, each only once Kafka has what it caused.

The matcher turns one event into several writes. Waiting for the broker after each event would
cap the matcher at one producer round trip (and linger) per event; not waiting lets an offset be
committed before its writes are safe. The window does neither: the agent goes on to the next
events while writes are under way, and a record is acked once its writes and those of every
earlier record of its partition are acknowledged. Acks must be in order because Faust commits
past a gap in the acked offsets (it only refuses a gap at the head, and not even that before a
partition's first commit), so an out-of-order ack could commit past a record whose jobs are
still in flight. A write that fails is never acked past: the window reports it and the caller
stops the process, so everything after the last commit is read again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Ackable(Protocol):
    """What the window needs of a consumed record (Faust's ``EventT`` has it)."""

    def ack(self) -> bool: ...


class WriteFailedError(RuntimeError):
    """A record's write was not acknowledged by Kafka; its offset is not committed."""


@dataclass(eq=False)
class _Entry:
    record: Ackable
    remaining: int


@dataclass(eq=False)
class _Partition:
    """The records of one partition not acked yet, oldest first; replaced when the partition is
    read again from an earlier offset (a rebalance or a restart of the agent)."""

    entries: deque[_Entry] = field(default_factory=deque)
    last_offset: int = -1
    #: Replaced by a newer reading: its records are never acked.
    stale: bool = False


class AckWindow:
    """Acks records in offset order when their writes are done, with at most ``limit`` waiting.

    ``on_failure`` is called once, with the first write error: the caller stops the process (a
    Faust agent that merely raised would be restarted and read on past the failed record).
    """

    def __init__(self, limit: int, on_failure: Callable[[BaseException], None]) -> None:
        if limit < 1:
            raise ValueError("the window needs room for at least one record")
        self.limit = limit
        self.waiting = 0
        self.failure: BaseException | None = None
        self._on_failure = on_failure
        self._partitions: dict[Hashable, _Partition] = {}
        self._room = asyncio.Event()
        self._room.set()

    def check(self) -> None:
        """Raise the first write failure seen, so the agent stops instead of acking past it."""
        if self.failure is not None:
            raise WriteFailedError(
                f"a write to Kafka failed ({type(self.failure).__name__}: {self.failure}); "
                "the records after the last committed offset will be read again"
            ) from self.failure

    async def track(
        self, record: Ackable, partition: Hashable, offset: int, sent: Sequence[Awaitable[Any]]
    ) -> None:
        """Ack ``record`` (at ``offset`` of ``partition``) once every write in ``sent`` and every
        earlier record of its partition is done; wait while the window is full."""
        self.check()
        state = self._partitions.get(partition)
        if state is None or offset <= state.last_offset:
            # Read again from an earlier offset: what was waiting belongs to an earlier reading,
            # whose offsets Faust has forgotten; acking them now could skip a record.
            if state is not None:
                state.stale = True
                self.waiting -= len(state.entries)
            state = self._partitions[partition] = _Partition()
        state.last_offset = offset
        writes = [asyncio.ensure_future(write) for write in sent]
        entry = _Entry(record, remaining=len(writes))
        state.entries.append(entry)
        self.waiting += 1
        for write in writes:
            write.add_done_callback(functools.partial(self._settled, state, entry))
        self._release(state)
        if self.waiting >= self.limit:
            self._room.clear()
        await self._room.wait()
        self.check()

    def _settled(self, state: _Partition, entry: _Entry, write: asyncio.Future[Any]) -> None:
        if write.cancelled() or write.exception() is not None:
            self._fail(write)
        entry.remaining -= 1
        self._release(state)

    def _release(self, state: _Partition) -> None:
        """Ack the done records at the head of a partition, in order, unless a write failed."""
        if self.failure is not None:
            return
        entries = state.entries
        while entries and entries[0].remaining == 0:
            entry = entries.popleft()
            if not state.stale:
                self.waiting -= 1
                entry.record.ack()
        if self.waiting < self.limit:
            self._room.set()

    def _fail(self, write: asyncio.Future[Any]) -> None:
        if self.failure is not None:
            return
        failure = write.exception() if not write.cancelled() else None
        self.failure = failure or asyncio.CancelledError("the write was cancelled")
        log.error("a write to Kafka failed; no consumed offset after it will be committed")
        self._room.set()  # wake a waiting agent so it raises now
        self._on_failure(self.failure)
