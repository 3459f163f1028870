"""Bulk recoveries in the delivery history's database: which failed deliveries of a webhook a
job redelivers, and how far it got, so a restarted admin resumes it where it stopped.

(SQL text is composed here from constant fragments only; every value is a bound parameter.)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from hookstream.history.backends import Connection
from hookstream.history.rows import DeliveryRow
from hookstream.history.tables import FAILED_SINCE, RECOVERY_COLUMNS, ROW_COLUMNS, row_of


@dataclass(frozen=True)
class Recovery:
    """A bulk recovery: redeliver every failed delivery of a webhook fired from ``since`` until
    ``created_at``, oldest first; ``after_*`` is the last delivery queued."""

    job_id: str
    webhook_id: str
    since: int
    created_at: int
    state: str
    total: int
    queued: int
    skipped: int
    after_fired: int
    after_id: str
    finished_at: int | None
    error: str | None


class RecoveryJobs:
    """The table of recoveries; shares the history store's connections and locks (every method
    blocks: the admin calls them through ``asyncio.to_thread``)."""

    def __init__(
        self,
        writer: Connection,
        reader: Connection,
        write_lock: threading.Lock,
        read_lock: threading.Lock,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._write_lock = write_lock
        self._read_lock = read_lock

    def create(self, job_id: str, webhook_id: str, since: int, now: int) -> Recovery:
        """The recovery ``job_id``, created (counting what it will redeliver) unless it exists."""
        with self._write_lock, self._writer.transaction():
            [(total,)] = self._writer.rows(
                f"SELECT COUNT(*) FROM hs_deliveries WHERE {FAILED_SINCE}",  # noqa: S608
                (webhook_id, now, now, since, ""),
            )
            self._writer.run(
                f"INSERT INTO hs_recoveries ({RECOVERY_COLUMNS}) "  # noqa: S608
                "VALUES (?, ?, ?, ?, 'running', ?, 0, 0, ?, '', NULL, NULL) "
                "ON CONFLICT (job_id) DO NOTHING",
                (job_id, webhook_id, since, now, int(total), since),
            )
            [found] = self._writer.rows(
                f"SELECT {RECOVERY_COLUMNS} FROM hs_recoveries WHERE job_id = ?",  # noqa: S608
                (job_id,),
            )
        return Recovery(*found)

    def get(self, job_id: str) -> Recovery | None:
        """One recovery as stored, or None."""
        with self._read_lock:
            found = self._reader.rows(
                f"SELECT {RECOVERY_COLUMNS} FROM hs_recoveries WHERE job_id = ?",  # noqa: S608
                (job_id,),
            )
        return Recovery(*found[0]) if found else None

    def running(self) -> list[str]:
        """Ids of the recoveries not finished (to resume after a restart)."""
        with self._read_lock:
            rows = self._reader.rows("SELECT job_id FROM hs_recoveries WHERE state = 'running'")
        return [str(job_id) for (job_id,) in rows]

    def batch(self, job: Recovery, now: int, limit: int) -> list[DeliveryRow]:
        """The next failed deliveries ``job`` has to queue, oldest first."""
        with self._read_lock:
            found = self._reader.rows(
                f"SELECT {ROW_COLUMNS} FROM hs_deliveries WHERE {FAILED_SINCE} "  # noqa: S608
                "ORDER BY fired_at, delivery_id LIMIT ?",
                (job.webhook_id, job.created_at, now, job.after_fired, job.after_id, limit),
            )
        return [row_of(values) for values in found]

    def advance(
        self,
        job_id: str,
        after: tuple[int, str],
        queued: int,
        skipped: int,
    ) -> None:
        """Record that ``queued`` more deliveries were queued (``skipped`` could not be: their
        events are gone), up to the delivery ``after``."""
        with self._write_lock, self._writer.transaction():
            self._writer.run(
                "UPDATE hs_recoveries SET queued = queued + ?, skipped = skipped + ?, "
                "after_fired = ?, after_id = ? WHERE job_id = ?",
                (queued, skipped, after[0], after[1], job_id),
            )

    def finish(self, job_id: str, now: int, error: str | None = None) -> None:
        """Mark a recovery done, or failed with ``error`` (a repeated request resumes it)."""
        with self._write_lock, self._writer.transaction():
            self._writer.run(
                "UPDATE hs_recoveries SET state = ?, finished_at = ?, error = ? WHERE job_id = ?",
                ("failed" if error else "done", now, error, job_id),
            )

    def resume(self, job_id: str) -> None:
        """Set a failed recovery running again, from where it stopped."""
        with self._write_lock, self._writer.transaction():
            self._writer.run(
                "UPDATE hs_recoveries SET state = 'running', finished_at = NULL, error = NULL "
                "WHERE job_id = ? AND state = 'failed'",
                (job_id,),
            )
