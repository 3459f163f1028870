"""The delivery history in a database: rows, attempts and the consumer offsets, kept together.

(SQL text is composed here from constant fragments only; every value is a bound parameter, so
the S608 warnings are silenced line by line.)

A batch of records and the offsets after it are written in one transaction, so a restarted
ingest resumes exactly where the stored data ends: no gap, no record applied twice. Each row
carries the moment it expires (retention by outcome, see ``DeliveryRow.expires_at``); reads hide
expired rows by the caller's clock and ``prune`` deletes them in small batches.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hookstream.admin.schemas import AttemptOut, DeliveryOut, DeliveryOutcome
from hookstream.history.backends import Connection
from hookstream.history.rows import DeliveryRow
from hookstream.models import DeliveryJob, DeliveryStatus, Outcome

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS hs_deliveries (
        webhook_id TEXT NOT NULL, delivery_id TEXT NOT NULL, webhook_name TEXT NOT NULL,
        trigger_uri TEXT, triggered_at BIGINT, first_attempt_at BIGINT, fired_at BIGINT NOT NULL,
        events TEXT, event_ids TEXT NOT NULL, payload TEXT, redelivered_at BIGINT,
        last_at BIGINT, last_attempt INTEGER, last_final INTEGER NOT NULL, last_outcome TEXT,
        last_http_status INTEGER, outcome TEXT NOT NULL, activity_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL, PRIMARY KEY (webhook_id, delivery_id))""",
    "CREATE INDEX IF NOT EXISTS hs_deliveries_by_webhook "
    "ON hs_deliveries (webhook_id, fired_at, delivery_id)",
    "CREATE INDEX IF NOT EXISTS hs_deliveries_by_time "
    "ON hs_deliveries (fired_at, delivery_id, webhook_id)",
    # One index per filter, each ending in the page order, so that a filtered page (and its
    # capped count) reads only the entries it shows; prune finds expired rows by expiry.
    "CREATE INDEX IF NOT EXISTS hs_deliveries_by_webhook_outcome "
    "ON hs_deliveries (webhook_id, outcome, fired_at, delivery_id)",
    "CREATE INDEX IF NOT EXISTS hs_deliveries_by_outcome "
    "ON hs_deliveries (outcome, fired_at, delivery_id, webhook_id)",
    "CREATE INDEX IF NOT EXISTS hs_deliveries_by_status "
    "ON hs_deliveries (last_http_status, fired_at, delivery_id, webhook_id)",
    "CREATE INDEX IF NOT EXISTS hs_deliveries_by_trigger "
    "ON hs_deliveries (trigger_uri, fired_at, delivery_id, webhook_id)",
    "CREATE INDEX IF NOT EXISTS hs_deliveries_by_id ON hs_deliveries (delivery_id)",
    "CREATE INDEX IF NOT EXISTS hs_deliveries_by_expiry ON hs_deliveries (expires_at)",
    """CREATE TABLE IF NOT EXISTS hs_attempts (
        webhook_id TEXT NOT NULL, delivery_id TEXT NOT NULL, attempted_at BIGINT NOT NULL,
        attempt INTEGER NOT NULL, outcome TEXT NOT NULL, final INTEGER NOT NULL,
        http_status INTEGER, response_excerpt TEXT, error TEXT,
        duration_ms DOUBLE PRECISION NOT NULL, next_attempt_at BIGINT,
        PRIMARY KEY (webhook_id, delivery_id, attempted_at, attempt))""",
    # The circuit state of a webhook: its latest held record, and any answer after it.
    "CREATE INDEX IF NOT EXISTS hs_attempts_by_outcome "
    "ON hs_attempts (webhook_id, outcome, attempted_at)",
    "CREATE INDEX IF NOT EXISTS hs_attempts_by_time ON hs_attempts (webhook_id, attempted_at)",
    """CREATE TABLE IF NOT EXISTS hs_events (
        event_id TEXT NOT NULL, webhook_id TEXT NOT NULL, delivery_id TEXT NOT NULL,
        PRIMARY KEY (event_id, webhook_id, delivery_id))""",
    "CREATE INDEX IF NOT EXISTS hs_events_by_delivery ON hs_events (webhook_id, delivery_id)",
    """CREATE TABLE IF NOT EXISTS hs_offsets (
        topic TEXT NOT NULL, part INTEGER NOT NULL, next_offset BIGINT NOT NULL,
        PRIMARY KEY (topic, part))""",
    "CREATE TABLE IF NOT EXISTS hs_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # Bulk recoveries: what each redelivers and how far it got (resumable after a restart).
    """CREATE TABLE IF NOT EXISTS hs_recoveries (
        job_id TEXT PRIMARY KEY, webhook_id TEXT NOT NULL, since BIGINT NOT NULL,
        created_at BIGINT NOT NULL, state TEXT NOT NULL, total INTEGER NOT NULL,
        queued INTEGER NOT NULL, skipped INTEGER NOT NULL, after_fired BIGINT NOT NULL,
        after_id TEXT NOT NULL, finished_at BIGINT, error TEXT)""",
)

_ROW_COLUMNS = (
    "webhook_id, delivery_id, webhook_name, trigger_uri, triggered_at, first_attempt_at, "
    "events, event_ids, payload, redelivered_at, last_at, last_attempt, last_final, "
    "last_outcome, last_http_status"
)
_ROW_PREFIXED = ", ".join(f"h.{c.strip()}" for c in _ROW_COLUMNS.split(","))
_DERIVED = ("fired_at", "outcome", "activity_at", "expires_at")
_ALL_COLUMNS = [c.strip() for c in _ROW_COLUMNS.split(",")] + list(_DERIVED)
_UPSERT_ROW = (
    f"INSERT INTO hs_deliveries ({', '.join(_ALL_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in _ALL_COLUMNS)}) "
    f"ON CONFLICT (webhook_id, delivery_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _ALL_COLUMNS[2:])
)
_ATTEMPT_COLUMNS = (
    "attempt, attempted_at, outcome, final, http_status, response_excerpt, error, duration_ms, "
    "next_attempt_at"
)
_ATTEMPT_PREFIXED = ", ".join(f"a.{c.strip()}" for c in _ATTEMPT_COLUMNS.split(","))
_INSERT_ATTEMPT = (
    f"INSERT INTO hs_attempts (webhook_id, delivery_id, {_ATTEMPT_COLUMNS}) "  # noqa: S608
    f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    f"ON CONFLICT (webhook_id, delivery_id, attempted_at, attempt) DO NOTHING"
)
#: Keys per ``VALUES`` list: well under both databases' limits on parameters.
_CHUNK = 400
#: ``total`` counts matches up to this many; above it, it says "at least this many". Counting is
#: then bounded like the page itself, however many deliveries are stored.
COUNT_CAP = 1_000

Key = tuple[str, str]
TopicPartitionKey = tuple[str, int]


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


_RECOVERY_COLUMNS = (
    "job_id, webhook_id, since, created_at, state, total, queued, skipped, after_fired, "
    "after_id, finished_at, error"
)
_FAILED_SINCE = (
    "webhook_id = ? AND outcome = 'failed' AND fired_at < ? AND expires_at > ? "
    "AND (fired_at, delivery_id) > (?, ?)"
)


@dataclass(frozen=True)
class HeldBack:
    """A webhook's circuit as its senders last reported it open."""

    #: When a sender last held a job back (epoch ms).
    held_at: int
    #: When that job is due again, as the circuit's next probe (epoch ms).
    next_probe_at: int | None
    reason: str | None


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


class HistoryQueryError(ValueError):
    """A search the store cannot run (a cursor it did not issue); the message says why."""


@dataclass(frozen=True)
class DeliveryQuery:
    """Filters of a search; None matches everything. ``since`` is inclusive, ``until`` not."""

    webhook_id: str | None = None
    outcome: DeliveryOutcome | None = None
    http_status: int | None = None
    since: int | None = None
    until: int | None = None
    event_id: str | None = None
    trigger: str | None = None


@dataclass(frozen=True)
class SearchResult:
    deliveries: list[DeliveryOut]
    #: Matches, counted up to ``COUNT_CAP``; None on a cursor page (which does not count).
    total: int | None
    #: Where the next page starts (None on the last page); opaque to clients.
    next_cursor: str | None


def encode_cursor(delivery: DeliveryOut) -> str:
    raw = json.dumps([delivery.triggered_at, delivery.delivery_id, delivery.webhook_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        fired_at, delivery_id, webhook_id = json.loads(raw)
        if not (isinstance(fired_at, int) and isinstance(delivery_id, str)):
            raise TypeError("not a cursor")
        return fired_at, delivery_id, str(webhook_id)
    except (ValueError, TypeError, binascii.Error):
        raise HistoryQueryError(
            "cursor is not one this API issued; pass the next_cursor of the previous page"
        ) from None


def _values(count: int) -> str:
    return ", ".join("(?, ?)" for _ in range(count))


def _keyed(count: int) -> str:
    """A ``WITH`` clause naming ``count`` (webhook id, delivery id) keys ``k(w, d)``: joined on
    the primary key, it looks each key up (``(a, b) IN (VALUES ...)`` scans the table in SQLite)."""
    return f"WITH k(w, d) AS (VALUES {_values(count)}) "


def _chunks(items: Sequence[Key]) -> Iterable[Sequence[Key]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _flat(keys: Iterable[Key]) -> list[str]:
    return [part for key in keys for part in key]


class HistoryStore:
    """Rows of deliveries in one database; ``writer`` ingests and prunes, ``reader`` serves.

    Every method blocks: the admin calls them through ``asyncio.to_thread``.
    """

    def __init__(
        self,
        writer: Connection,
        reader: Connection,
        success_retention_s: int,
        failure_retention_s: int,
    ) -> None:
        self.success_ms = success_retention_s * 1000
        self.failure_ms = failure_retention_s * 1000
        self._writer = writer
        self._reader = reader
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._prepare()

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            self._writer.close()
            self._reader.close()

    def _prepare(self) -> None:
        """Create the tables, and recompute expiry times if the retention settings changed."""
        retention = f"{self.success_ms}/{self.failure_ms}"
        with self._write_lock, self._writer.transaction():
            for statement in SCHEMA:
                self._writer.run(statement)
            stored = self._writer.rows("SELECT value FROM hs_meta WHERE name = 'retention'")
            if stored and stored[0][0] != retention:
                self._writer.run(
                    "UPDATE hs_deliveries SET expires_at = CASE WHEN outcome = 'delivered' "
                    "THEN last_at + ? ELSE activity_at + ? END",
                    (self.success_ms, self.failure_ms),
                )
            self._writer.run(
                "INSERT INTO hs_meta (name, value) VALUES ('retention', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (retention,),
            )

    def try_lead(self) -> bool:
        """Whether this process is the one that ingests (always, on SQLite)."""
        with self._write_lock:
            return self._writer.try_lead()

    def stored_offsets(self) -> dict[TopicPartitionKey, int]:
        """The next offset to read of every partition applied so far."""
        with self._read_lock:
            rows = self._reader.rows("SELECT topic, part, next_offset FROM hs_offsets")
        return {(topic, int(part)): int(offset) for topic, part, offset in rows}

    def ingest(
        self,
        records: Sequence[DeliveryJob | DeliveryStatus],
        offsets: dict[TopicPartitionKey, int],
    ) -> None:
        """Apply records in order and store ``offsets`` (the next to read) in one transaction."""
        keys = sorted(
            {
                (record.webhook_id, record.delivery_id)
                for record in records
                if record.delivery_id is not None
            }
        )
        with self._write_lock, self._writer.transaction():
            rows = self._load(keys)
            attempts: list[tuple[Any, ...]] = []
            for record in records:
                if record.delivery_id is None:
                    continue  # a record of a webhook's state, not of a delivery
                key = (record.webhook_id, record.delivery_id)
                row = rows.get(key)
                if row is None:
                    row = rows[key] = DeliveryRow(*key)
                if isinstance(record, DeliveryJob):
                    row.apply_job(record)
                else:
                    row.apply_status(record)
                    attempts.append(_attempt_values(record))
            self._writer.run_many(_INSERT_ATTEMPT, attempts)
            self._writer.run_many(_UPSERT_ROW, [self._row_values(row) for row in rows.values()])
            self._writer.run_many(
                "INSERT INTO hs_events (event_id, webhook_id, delivery_id) VALUES (?, ?, ?) "
                "ON CONFLICT (event_id, webhook_id, delivery_id) DO NOTHING",
                [
                    (event_id, row.webhook_id, row.delivery_id)
                    for row in rows.values()
                    for event_id in row.event_ids
                ],
            )
            self._writer.run_many(
                "INSERT INTO hs_offsets (topic, part, next_offset) VALUES (?, ?, ?) "
                "ON CONFLICT (topic, part) DO UPDATE SET next_offset = excluded.next_offset",
                [(topic, part, offset) for (topic, part), offset in sorted(offsets.items())],
            )

    def _load(self, keys: Sequence[Key]) -> dict[Key, DeliveryRow]:
        found: dict[Key, DeliveryRow] = {}
        for chunk in _chunks(keys):
            for values in self._writer.rows(
                f"{_keyed(len(chunk))}SELECT {_ROW_PREFIXED} FROM k "  # noqa: S608
                "JOIN hs_deliveries h ON h.webhook_id = k.w AND h.delivery_id = k.d",
                _flat(chunk),
            ):
                row = _row(values)
                found[(row.webhook_id, row.delivery_id)] = row
        return found

    def _row_values(self, row: DeliveryRow) -> tuple[Any, ...]:
        outcome = row.outcome()
        return (
            row.webhook_id,
            row.delivery_id,
            row.webhook_name,
            row.trigger,
            row.triggered_at,
            row.first_attempt_at,
            row.events_json,
            json.dumps(row.event_ids),
            row.payload,
            row.redelivered_at,
            row.last_at,
            row.last_attempt,
            int(row.last_final),
            row.last_outcome,
            row.last_http_status,
            row.fired_at(),
            outcome.value,
            row.activity_at(),
            row.expires_at(self.success_ms, self.failure_ms, outcome),
        )

    def get(self, delivery_id: str, now: int, webhook_id: str | None = None) -> DeliveryOut | None:
        """One delivery that has not expired at ``now`` (of any webhook unless one is given)."""
        sql = f"SELECT {_ROW_COLUMNS} FROM hs_deliveries WHERE delivery_id = ? AND expires_at > ?"  # noqa: S608
        params: list[Any] = [delivery_id, now]
        if webhook_id is not None:
            sql += " AND webhook_id = ?"
            params.append(webhook_id)
        with self._read_lock:
            found = [_row(values) for values in self._reader.rows(sql, params)]
            return self._with_attempts(found[:1])[0] if found else None

    def open_circuits(self, webhook_ids: Sequence[str]) -> dict[str, HeldBack]:
        """The webhooks among ``webhook_ids`` whose circuit a sender last reported open: a job
        was held back (outcome ``held``) and no attempt got an answer from the receiver since."""
        if not webhook_ids:
            return {}
        found: dict[str, HeldBack] = {}
        marks = ", ".join("?" for _ in webhook_ids)
        with self._read_lock:
            latest = self._reader.rows(
                "SELECT webhook_id, MAX(attempted_at) FROM hs_attempts "  # noqa: S608
                f"WHERE webhook_id IN ({marks}) AND outcome = ? GROUP BY webhook_id",
                [*webhook_ids, Outcome.HELD.value],
            )
            for webhook_id, held_at in latest:
                answered = self._reader.rows(
                    "SELECT 1 FROM hs_attempts WHERE webhook_id = ? AND attempted_at > ? "
                    "AND (http_status IS NOT NULL OR outcome = ?) LIMIT 1",
                    (webhook_id, held_at, Outcome.DELIVERED.value),
                )
                if answered:
                    continue
                [(next_probe_at, reason)] = self._reader.rows(
                    "SELECT next_attempt_at, error FROM hs_attempts WHERE webhook_id = ? "
                    "AND outcome = ? AND attempted_at = ? LIMIT 1",
                    (webhook_id, Outcome.HELD.value, held_at),
                )
                found[webhook_id] = HeldBack(int(held_at), _int_or_none(next_probe_at), reason)
        return found

    def get_row(self, webhook_id: str, delivery_id: str, now: int) -> DeliveryRow | None:
        """The stored row (with the job's events) of one listed delivery."""
        with self._read_lock:
            found = self._reader.rows(
                f"SELECT {_ROW_COLUMNS} FROM hs_deliveries "  # noqa: S608
                "WHERE webhook_id = ? AND delivery_id = ? AND expires_at > ?",
                (webhook_id, delivery_id, now),
            )
        return _row(found[0]) if found else None

    def search(
        self,
        query: DeliveryQuery,
        now: int,
        limit: int,
        offset: int = 0,
        cursor: str | None = None,
    ) -> SearchResult:
        """Deliveries matching ``query``, newest first: ``limit`` of them after ``offset`` rows,
        or after the row ``cursor`` names."""
        where, params = self._filters(query, now)
        order = "ORDER BY fired_at DESC, delivery_id DESC, webhook_id DESC"
        page_where, page_params = list(where), list(params)
        if cursor is not None:
            fired_at, delivery_id, webhook_id = decode_cursor(cursor)
            page_where.append("(fired_at, delivery_id, webhook_id) < (?, ?, ?)")
            page_params += [fired_at, delivery_id, webhook_id]
        with self._read_lock:
            total: int | None = None
            if cursor is None:
                [(counted,)] = self._reader.rows(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM hs_deliveries "  # noqa: S608
                    f"WHERE {' AND '.join(where)} LIMIT ?) AS capped",
                    [*params, COUNT_CAP],
                )
                total = int(counted)
            found = [
                _row(values)
                for values in self._reader.rows(
                    f"SELECT {_ROW_COLUMNS} FROM hs_deliveries WHERE {' AND '.join(page_where)} "  # noqa: S608
                    f"{order} LIMIT ? OFFSET ?",
                    [*page_params, limit + 1, offset],
                )
            ]
            deliveries = self._with_attempts(found[:limit])
        more = len(found) > limit
        return SearchResult(
            deliveries, total, encode_cursor(deliveries[-1]) if more and deliveries else None
        )

    def _filters(self, query: DeliveryQuery, now: int) -> tuple[list[str], list[Any]]:
        where = ["expires_at > ?"]
        params: list[Any] = [now]
        for column, value in (
            ("webhook_id = ?", query.webhook_id),
            ("outcome = ?", query.outcome.value if query.outcome else None),
            ("last_http_status = ?", query.http_status),
            ("fired_at >= ?", query.since),
            ("fired_at < ?", query.until),
            ("trigger_uri = ?", query.trigger),
            (
                "(webhook_id, delivery_id) IN "
                "(SELECT webhook_id, delivery_id FROM hs_events WHERE event_id = ?)",
                query.event_id,
            ),
        ):
            if value is not None:
                where.append(column)
                params.append(value)
        return where, params

    def _with_attempts(self, rows: list[DeliveryRow]) -> list[DeliveryOut]:
        attempts: dict[Key, list[AttemptOut]] = {}
        keys = [(row.webhook_id, row.delivery_id) for row in rows]
        for chunk in _chunks(keys):
            for values in self._reader.rows(
                f"{_keyed(len(chunk))}SELECT a.webhook_id, a.delivery_id, "  # noqa: S608
                f"{_ATTEMPT_PREFIXED} FROM k JOIN hs_attempts a "
                "ON a.webhook_id = k.w AND a.delivery_id = k.d ORDER BY a.attempted_at, a.attempt",
                _flat(chunk),
            ):
                attempts.setdefault((values[0], values[1]), []).append(_attempt_out(values[2:]))
        return [
            _delivery_out(row, attempts.get(key, [])) for row, key in zip(rows, keys, strict=True)
        ]

    def prune(self, now: int, batch: int = 2000) -> int:
        """Delete every row expired at ``now`` (in transactions of ``batch`` rows, so that ingest
        and reads go on meanwhile); how many were deleted."""
        deleted = 0
        while True:
            with self._write_lock, self._writer.transaction():
                keys = [
                    (str(w), str(d))
                    for w, d in self._writer.rows(
                        "SELECT webhook_id, delivery_id FROM hs_deliveries WHERE expires_at <= ? "
                        "LIMIT ?",
                        (now, batch),
                    )
                ]
                for table in ("hs_attempts", "hs_events", "hs_deliveries"):
                    self._writer.run_many(
                        f"DELETE FROM {table} WHERE webhook_id = ? AND delivery_id = ?",  # noqa: S608
                        keys,
                    )
            deleted += len(keys)
            if len(keys) < batch:
                return deleted

    def create_recovery(self, job_id: str, webhook_id: str, since: int, now: int) -> Recovery:
        """The recovery ``job_id``, created (counting what it will redeliver) unless it exists."""
        with self._write_lock, self._writer.transaction():
            [(total,)] = self._writer.rows(
                f"SELECT COUNT(*) FROM hs_deliveries WHERE {_FAILED_SINCE}",  # noqa: S608
                (webhook_id, now, now, since, ""),
            )
            self._writer.run(
                f"INSERT INTO hs_recoveries ({_RECOVERY_COLUMNS}) "  # noqa: S608
                "VALUES (?, ?, ?, ?, 'running', ?, 0, 0, ?, '', NULL, NULL) "
                "ON CONFLICT (job_id) DO NOTHING",
                (job_id, webhook_id, since, now, int(total), since),
            )
            [found] = self._writer.rows(
                f"SELECT {_RECOVERY_COLUMNS} FROM hs_recoveries WHERE job_id = ?",  # noqa: S608
                (job_id,),
            )
        return Recovery(*found)

    def recovery(self, job_id: str) -> Recovery | None:
        """One recovery as stored, or None."""
        with self._read_lock:
            found = self._reader.rows(
                f"SELECT {_RECOVERY_COLUMNS} FROM hs_recoveries WHERE job_id = ?",  # noqa: S608
                (job_id,),
            )
        return Recovery(*found[0]) if found else None

    def recoveries_running(self) -> list[str]:
        """Ids of the recoveries not finished (to resume after a restart)."""
        with self._read_lock:
            rows = self._reader.rows("SELECT job_id FROM hs_recoveries WHERE state = 'running'")
        return [str(job_id) for (job_id,) in rows]

    def recovery_batch(self, job: Recovery, now: int, limit: int) -> list[DeliveryRow]:
        """The next failed deliveries ``job`` has to queue, oldest first."""
        with self._read_lock:
            found = self._reader.rows(
                f"SELECT {_ROW_COLUMNS} FROM hs_deliveries WHERE {_FAILED_SINCE} "  # noqa: S608
                "ORDER BY fired_at, delivery_id LIMIT ?",
                (job.webhook_id, job.created_at, now, job.after_fired, job.after_id, limit),
            )
        return [_row(values) for values in found]

    def advance_recovery(
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

    def finish_recovery(self, job_id: str, now: int, error: str | None = None) -> None:
        """Mark a recovery done, or failed with ``error`` (a repeated request resumes it)."""
        with self._write_lock, self._writer.transaction():
            self._writer.run(
                "UPDATE hs_recoveries SET state = ?, finished_at = ?, error = ? WHERE job_id = ?",
                ("failed" if error else "done", now, error, job_id),
            )

    def resume_recovery(self, job_id: str) -> None:
        """Set a failed recovery running again, from where it stopped."""
        with self._write_lock, self._writer.transaction():
            self._writer.run(
                "UPDATE hs_recoveries SET state = 'running', finished_at = NULL, error = NULL "
                "WHERE job_id = ? AND state = 'failed'",
                (job_id,),
            )

    def count(self) -> int:
        """Rows stored, expired or not (for tests and benchmarks)."""
        with self._read_lock:
            [(total,)] = self._reader.rows("SELECT COUNT(*) FROM hs_deliveries")
        return int(total)


def _row(values: Sequence[Any]) -> DeliveryRow:
    return DeliveryRow(
        webhook_id=values[0],
        delivery_id=values[1],
        webhook_name=values[2],
        trigger=values[3],
        triggered_at=values[4],
        first_attempt_at=values[5],
        events_json=values[6],
        event_ids=json.loads(values[7]),
        payload=values[8],
        redelivered_at=values[9],
        last_at=values[10],
        last_attempt=values[11],
        last_final=bool(values[12]),
        last_outcome=values[13],
        last_http_status=values[14],
    )


def _attempt_values(status: DeliveryStatus) -> tuple[Any, ...]:
    return (
        status.webhook_id,
        status.delivery_id,
        status.attempt,
        status.attempted_at,
        status.outcome.value,
        int(status.final),
        status.http_status,
        status.response_excerpt,
        status.error,
        status.duration_ms,
        status.next_attempt_at,
    )


def _attempt_out(values: Sequence[Any]) -> AttemptOut:
    return AttemptOut(
        attempt=values[0],
        at=values[1],
        outcome=Outcome(values[2]),
        final=bool(values[3]),
        http_status=values[4],
        response_excerpt=values[5],
        error=values[6],
        duration_ms=values[7],
        next_attempt_at=values[8],
    )


def _delivery_out(row: DeliveryRow, attempts: list[AttemptOut]) -> DeliveryOut:
    return DeliveryOut(
        delivery_id=row.delivery_id,
        webhook_id=row.webhook_id,
        webhook_name=row.webhook_name,
        trigger=row.trigger,
        triggered_at=row.fired_at(),
        outcome=row.outcome(),
        redelivered=row.redelivered_at is not None,
        event_ids=row.event_ids,
        events=row.events(),
        attempts=attempts,
        payload=row.payload,
    )
