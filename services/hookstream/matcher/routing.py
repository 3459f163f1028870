"""The matcher's decisions, one record at a time, as pure functions (no Faust, no broker).

``matcher.app`` wires them to Faust: an event record becomes its encoded delivery jobs
(``match_record``), a webhook command becomes a planned change (``plan_command``) and the
records that change writes (``writes_for``). Every error raised here is the record's fault and
dead-letters it; the writes, whose errors are Kafka's, stay in the app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hookstream.core.errors import DecodeError
from hookstream.core.registry import Allocate, Change, NumericIds, apply_command
from hookstream.core.triggers import TriggerError, parse_triggers
from hookstream.records.codec import decode, encode
from hookstream.records.ids import delivery_id_for
from hookstream.records.intake import Headers, InputFormat, IntakeError, decode_event
from hookstream.records.jobcodec import encode_jobs
from hookstream.records.models import CommandKind, DomainEvent, WebhookCommand
from hookstream.settings import TopicSettings
from hookstream.views.catalog import EventCatalog
from hookstream.views.directory import REVISION_HEADER, WebhookDirectory

#: Longest dead-letter reason kept; an exception's message can be as large as its input.
MAX_REASON_LENGTH = 2000


def jobs_for(
    domain_event: DomainEvent, directory: WebhookDirectory, triggered_at: int
) -> list[tuple[bytes, bytes]]:
    """The delivery jobs of one event, encoded: (key, value) per matching webhook.

    The event is encoded once for all its jobs (``encode_jobs``), not once per webhook."""
    matches = directory.match(domain_event.source, domain_event.resource_id, domain_event.operation)
    if not matches:
        return []
    event_id = domain_event.event_id
    heads = [
        (
            delivery_id_for(event_id, match.webhook_id),
            match.webhook_id,
            match.trigger.text,
        )
        for match in matches
    ]
    values = encode_jobs([domain_event], heads, due_at=triggered_at, triggered_at=triggered_at)
    # Keyed by delivery, not webhook: one busy webhook's jobs spread over every partition and
    # so over every sender replica (no order between deliveries is promised).
    return [(head[0].encode(), value) for head, value in zip(heads, values, strict=True)]


class SchemaViolationError(IntakeError):
    """An event breaks the JSON Schema its catalog type declares (and the type rejects such)."""


def match_record(
    value: bytes | None,
    directory: WebhookDirectory,
    triggered_at: int,
    *,
    fmt: InputFormat = InputFormat.AVRO,
    headers: Headers = None,
    key: bytes | None = None,
    catalog: EventCatalog | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[tuple[bytes, bytes]]:
    """Decode an event record in its topic's format and encode its delivery jobs; raises
    DecodeError for bad input, SchemaViolationError for an event its catalog type refuses (a
    type in ``warn`` mode reports the violation to ``warn`` and the event goes on)."""
    domain_event = decode_event(value, fmt, headers, key)
    if catalog is not None:
        problem = catalog.check(
            domain_event.source, domain_event.operation, domain_event.properties
        )
        if problem is not None:
            event_type = catalog.get(domain_event.source, domain_event.operation)
            message = (
                f"event {domain_event.event_id!r} breaks the JSON Schema of event type "
                f"{event_type.name if event_type else domain_event.source}: {problem}"
            )
            if event_type is None or event_type.schema_mode == "reject" or warn is None:
                raise SchemaViolationError(message)
            warn(message)
    return jobs_for(domain_event, directory, triggered_at)


def oversize_reason(size: int, limit: int) -> str | None:
    """Why an event record of ``size`` bytes is dead-lettered unread, or None if it is not."""
    if size <= limit:
        return None
    return f"event of {size} bytes exceeds HOOKSTREAM_SECURITY__MAX_EVENT_BYTES={limit}"


def failure_reason(exc: Exception) -> str:
    """A dead letter's reason for an exception: the message of a DecodeError, else the type and
    message; always encodable (a message may quote input that UTF-8 cannot encode) and bounded."""
    reason = str(exc) if isinstance(exc, DecodeError) else f"{type(exc).__name__}: {exc}"
    reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(reason) > MAX_REASON_LENGTH:
        reason = reason[:MAX_REASON_LENGTH] + " [...]"
    return reason


@dataclass(frozen=True)
class PlannedCommand:
    """A command's change with its records already encoded, so nothing can fail halfway."""

    webhook_id: str
    kind: CommandKind
    change: Change | None
    config_bytes: bytes | None
    status_bytes: bytes | None


def plan_command(
    value: bytes | None,
    directory: WebhookDirectory,
    catalog: EventCatalog,
    now: int,
    *,
    secret_grace_ms: int,
    allocate_for: Callable[[str], Allocate],
) -> PlannedCommand:
    """Decode a webhook command and work out its change against the directory, encoded; raises
    DecodeError for a command that cannot be read or names triggers the catalog does not know.
    ``allocate_for(webhook_id)`` numbers a webhook that needs a numeric id."""
    command = decode(value, WebhookCommand)
    webhook_id = command.webhook_id
    if command.config is not None:
        # The admin API checks catalog triggers; this holds for every other writer too.
        try:
            parse_triggers(command.config.triggers, command.config.smart_group_id, catalog)
        except TriggerError as exc:
            raise DecodeError(f"webhook {webhook_id!r} refused: {exc}") from None
    change = apply_command(
        directory.get(webhook_id),
        command,
        now,
        directory.revision(webhook_id),
        secret_grace_ms=secret_grace_ms,
        allocate=allocate_for(webhook_id),
    )
    if change is None:
        return PlannedCommand(webhook_id, command.kind, None, None, None)
    return PlannedCommand(
        webhook_id,
        command.kind,
        change,
        encode(change.config) if change.config is not None else None,
        encode(change.status) if change.status is not None else None,
    )


def next_numeric_id(directory: WebhookDirectory, partition: int, partitions: int) -> int | None:
    """The next numeric id of a command partition, or None while the partition count of the
    command topic is not known (0) or does not include ``partition``."""
    if not partitions or not 0 <= partition < partitions:
        return None
    return NumericIds(partition, partitions).next_id(directory.numeric_ids())


@dataclass(frozen=True)
class Write:
    """One record a command causes: its topic, key, value (None: a tombstone) and headers."""

    topic: str
    key: bytes
    value: bytes | None
    headers: dict[str, bytes] | None = None


def writes_for(
    planned: PlannedCommand, directory: WebhookDirectory, topics: TopicSettings
) -> list[Write]:
    """Apply a planned change to the matcher's own directory and return the records it writes,
    in order: the config (or its tombstone at the next revision), then its status record."""
    change = planned.change
    if change is None:
        return []
    webhook_id = planned.webhook_id
    key = webhook_id.encode()
    writes: list[Write] = []
    if change.deleted:
        revision = directory.revision(webhook_id) + 1
        directory.delete(webhook_id, revision)
        writes.append(Write(topics.webhooks, key, None, {REVISION_HEADER: str(revision).encode()}))
    elif change.config is not None:
        directory.put(change.config, planned.config_bytes)
        headers = {REVISION_HEADER: str(change.config.revision).encode()}
        writes.append(Write(topics.webhooks, key, planned.config_bytes, headers))
    if change.status is not None:
        writes.append(Write(topics.status, key, planned.status_bytes))
    return writes
