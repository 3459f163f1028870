"""Which offsets may be committed when records of a partition finish out of order."""

from __future__ import annotations

from collections.abc import Hashable


class OffsetTracker:
    """Per partition, the records begun and not yet done; commit stops below the oldest of them.

    A record is done only once every output it caused is acknowledged by Kafka, so committing
    the offset this class returns never loses work: a crash repeats at most what was in flight.
    """

    def __init__(self) -> None:
        self._pending: dict[Hashable, set[int]] = {}
        self._next: dict[Hashable, int] = {}
        self._committed: dict[Hashable, int] = {}

    def begin(self, partition: Hashable, offset: int) -> None:
        self._pending.setdefault(partition, set()).add(offset)
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def done(self, partition: Hashable, offset: int) -> bool:
        """Mark a record done; False when its partition was revoked meanwhile."""
        pending = self._pending.get(partition)
        if pending is None:
            return False
        pending.discard(offset)
        return True

    def tracks(self, partition: Hashable) -> bool:
        return partition in self._pending

    def in_flight(self) -> int:
        return sum(len(offsets) for offsets in self._pending.values())

    def committable(self) -> dict[Hashable, int]:
        """Offsets to commit (the next record to read) that moved since the last call."""
        moved: dict[Hashable, int] = {}
        for partition, pending in self._pending.items():
            offset = min(pending) if pending else self._next[partition]
            if self._committed.get(partition) != offset:
                moved[partition] = offset
        return moved

    def committed(self, offsets: dict[Hashable, int]) -> None:
        self._committed.update(offsets)

    def forget(self, partition: Hashable) -> None:
        """Drop a revoked partition; its unfinished records will be read again by its new owner."""
        self._pending.pop(partition, None)
        self._next.pop(partition, None)
        self._committed.pop(partition, None)
