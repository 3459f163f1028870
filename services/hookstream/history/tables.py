"""The delivery history's tables: the schema, the SQL statements composed from constant
fragments (every value is a bound parameter), and rows to and from their columns."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from hookstream.history.rows import DeliveryRow
from hookstream.history.schemas import AttemptOut, DeliveryOut
from hookstream.records.models import DeliveryStatus, Outcome

Key = tuple[str, str]

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

ROW_COLUMNS = (
    "webhook_id, delivery_id, webhook_name, trigger_uri, triggered_at, first_attempt_at, "
    "events, event_ids, payload, redelivered_at, last_at, last_attempt, last_final, "
    "last_outcome, last_http_status"
)
ROW_PREFIXED = ", ".join(f"h.{c.strip()}" for c in ROW_COLUMNS.split(","))
DERIVED = ("fired_at", "outcome", "activity_at", "expires_at")
ALL_COLUMNS = [c.strip() for c in ROW_COLUMNS.split(",")] + list(DERIVED)
UPSERT_ROW = (
    f"INSERT INTO hs_deliveries ({', '.join(ALL_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in ALL_COLUMNS)}) "
    f"ON CONFLICT (webhook_id, delivery_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in ALL_COLUMNS[2:])
)
ATTEMPT_COLUMNS = (
    "attempt, attempted_at, outcome, final, http_status, response_excerpt, error, duration_ms, "
    "next_attempt_at"
)
ATTEMPT_PREFIXED = ", ".join(f"a.{c.strip()}" for c in ATTEMPT_COLUMNS.split(","))
INSERT_ATTEMPT = (
    f"INSERT INTO hs_attempts (webhook_id, delivery_id, {ATTEMPT_COLUMNS}) "  # noqa: S608
    f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    f"ON CONFLICT (webhook_id, delivery_id, attempted_at, attempt) DO NOTHING"
)
#: Keys per ``VALUES`` list: well under both databases' limits on parameters.
CHUNK = 400
RECOVERY_COLUMNS = (
    "job_id, webhook_id, since, created_at, state, total, queued, skipped, after_fired, "
    "after_id, finished_at, error"
)
FAILED_SINCE = (
    "webhook_id = ? AND outcome = 'failed' AND fired_at < ? AND expires_at > ? "
    "AND (fired_at, delivery_id) > (?, ?)"
)


def values_list(count: int) -> str:
    return ", ".join("(?, ?)" for _ in range(count))


def keyed(count: int) -> str:
    """A ``WITH`` clause naming ``count`` (webhook id, delivery id) keys ``k(w, d)``: joined on
    the primary key, it looks each key up (``(a, b) IN (VALUES ...)`` scans the table in SQLite)."""
    return f"WITH k(w, d) AS (VALUES {values_list(count)}) "


def chunks(items: Sequence[Key]) -> Iterable[Sequence[Key]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def flat(keys: Iterable[Key]) -> list[str]:
    return [part for key in keys for part in key]


def int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def row_of(values: Sequence[Any]) -> DeliveryRow:
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


def attempt_values(status: DeliveryStatus) -> tuple[Any, ...]:
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


def attempt_out(values: Sequence[Any]) -> AttemptOut:
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


def delivery_out(row: DeliveryRow, attempts: list[AttemptOut]) -> DeliveryOut:
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
