"""The delivery history in a database: rows, attempts and the consumer offsets, kept together.

(SQL text is composed here from constant fragments only; every value is a bound parameter, so
the S608 warnings are silenced line by line.)

A batch of records and the offsets after it are written in one transaction, so a restarted
ingest resumes exactly where the stored data ends: no gap, no record applied twice. Each row
carries the moment it expires (retention by outcome, see ``DeliveryRow.expires_at``); reads hide
expired rows by the caller's clock and ``prune`` deletes them in small batches.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hookstream.history.backends import Connection
from hookstream.history.query import (
    COUNT_CAP,
    DeliveryQuery,
    SearchResult,
    decode_cursor,
    encode_cursor,
)
from hookstream.history.recoveries import RecoveryJobs
from hookstream.history.rows import DeliveryRow
from hookstream.history.schemas import AttemptOut, DeliveryOut
from hookstream.history.tables import (
    ATTEMPT_PREFIXED,
    INSERT_ATTEMPT,
    ROW_COLUMNS,
    ROW_PREFIXED,
    SCHEMA,
    UPSERT_ROW,
    Key,
    attempt_out,
    attempt_values,
    chunks,
    delivery_out,
    flat,
    int_or_none,
    keyed,
    row_of,
)
from hookstream.records.models import DeliveryJob, DeliveryStatus, Outcome

TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True)
class HeldBack:
    """A webhook's circuit as its senders last reported it open."""

    #: When a sender last held a job back (epoch ms).
    held_at: int
    #: When that job is due again, as the circuit's next probe (epoch ms).
    next_probe_at: int | None
    reason: str | None


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
        #: The bulk recoveries, kept in the same database under the same locks.
        self.recoveries = RecoveryJobs(writer, reader, self._write_lock, self._read_lock)

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
                    attempts.append(attempt_values(record))
            self._writer.run_many(INSERT_ATTEMPT, attempts)
            self._writer.run_many(UPSERT_ROW, [self._row_values(row) for row in rows.values()])
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
        for chunk in chunks(keys):
            for values in self._writer.rows(
                f"{keyed(len(chunk))}SELECT {ROW_PREFIXED} FROM k "  # noqa: S608
                "JOIN hs_deliveries h ON h.webhook_id = k.w AND h.delivery_id = k.d",
                flat(chunk),
            ):
                row = row_of(values)
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
        sql = f"SELECT {ROW_COLUMNS} FROM hs_deliveries WHERE delivery_id = ? AND expires_at > ?"  # noqa: S608
        params: list[Any] = [delivery_id, now]
        if webhook_id is not None:
            sql += " AND webhook_id = ?"
            params.append(webhook_id)
        with self._read_lock:
            found = [row_of(values) for values in self._reader.rows(sql, params)]
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
                found[webhook_id] = HeldBack(int(held_at), int_or_none(next_probe_at), reason)
        return found

    def get_row(self, webhook_id: str, delivery_id: str, now: int) -> DeliveryRow | None:
        """The stored row (with the job's events) of one listed delivery."""
        with self._read_lock:
            found = self._reader.rows(
                f"SELECT {ROW_COLUMNS} FROM hs_deliveries "  # noqa: S608
                "WHERE webhook_id = ? AND delivery_id = ? AND expires_at > ?",
                (webhook_id, delivery_id, now),
            )
        return row_of(found[0]) if found else None

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
                row_of(values)
                for values in self._reader.rows(
                    f"SELECT {ROW_COLUMNS} FROM hs_deliveries WHERE {' AND '.join(page_where)} "  # noqa: S608
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
        for chunk in chunks(keys):
            for values in self._reader.rows(
                f"{keyed(len(chunk))}SELECT a.webhook_id, a.delivery_id, "  # noqa: S608
                f"{ATTEMPT_PREFIXED} FROM k JOIN hs_attempts a "
                "ON a.webhook_id = k.w AND a.delivery_id = k.d ORDER BY a.attempted_at, a.attempt",
                flat(chunk),
            ):
                attempts.setdefault((values[0], values[1]), []).append(attempt_out(values[2:]))
        return [
            delivery_out(row, attempts.get(key, [])) for row, key in zip(rows, keys, strict=True)
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

    def count(self) -> int:
        """Rows stored, expired or not (for tests and benchmarks)."""
        with self._read_lock:
            [(total,)] = self._reader.rows("SELECT COUNT(*) FROM hs_deliveries")
        return int(total)
