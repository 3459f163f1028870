"""The matcher's per-record decisions without Faust or a broker: commands planned against the
directory, the records they write, numeric ids, the event size limit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hookstream.core.errors import DecodeError
from hookstream.core.eventtypes import EventType
from hookstream.core.registry import Allocate
from hookstream.matcher.routing import (
    PlannedCommand,
    Write,
    next_numeric_id,
    oversize_reason,
    plan_command,
    writes_for,
)
from hookstream.records.codec import decode, encode
from hookstream.records.models import (
    CommandKind,
    DeliveryStatus,
    Outcome,
    WebhookCommand,
    WebhookConfig,
)
from hookstream.settings import TopicSettings
from hookstream.views.catalog import EventCatalog
from hookstream.views.directory import REVISION_HEADER, WebhookDirectory

NOW = 1_700_000_000_000
TOPICS = TopicSettings()


def config(**overrides: Any) -> WebhookConfig:
    fields: dict[str, Any] = {
        "webhook_id": "wh-1",
        "name": "Hook",
        "payload_url": "https://example.com/hook",
        "triggers": ["/items"],
        "created_at": 1000,
        "modified_at": 1000,
        "revision": 4,
        "numeric_id": 7,
    }
    fields.update(overrides)
    return WebhookConfig(**fields)


def command(kind: CommandKind, **fields: Any) -> bytes:
    return encode(WebhookCommand(webhook_id="wh-1", kind=kind, **fields))


def catalog() -> EventCatalog:
    held = EventCatalog()
    held.put(EventType(source="orders", operation="created"))
    return held


class Numbering:
    """Hands out one numeric id and remembers for which webhooks it was asked."""

    def __init__(self, number: int | None = 42) -> None:
        self.number = number
        self.asked: list[str] = []

    def __call__(self, webhook_id: str) -> Allocate:
        def allocate() -> int | None:
            self.asked.append(webhook_id)
            return self.number

        return allocate


def plan(
    value: bytes | None,
    directory: WebhookDirectory,
    allocate_for: Callable[[str], Allocate] | None = None,
) -> PlannedCommand:
    return plan_command(
        value,
        directory,
        catalog(),
        NOW,
        secret_grace_ms=0,
        allocate_for=allocate_for or Numbering(),
    )


def test_a_new_webhook_is_numbered_written_with_its_revision_and_put_in_the_directory() -> None:
    directory = WebhookDirectory()
    numbering = Numbering(42)
    planned = plan(
        command(CommandKind.UPSERT, config=config(numeric_id=None)), directory, numbering
    )

    assert numbering.asked == ["wh-1"]
    assert planned.change is not None and planned.change.config is not None
    assert planned.config_bytes is not None
    written = decode(planned.config_bytes, WebhookConfig)
    assert written.numeric_id == 42
    assert directory.get("wh-1") is None  # planning changes nothing yet

    writes = writes_for(planned, directory, TOPICS)

    revision = str(written.revision).encode()
    assert writes == [
        Write(TOPICS.webhooks, b"wh-1", planned.config_bytes, {REVISION_HEADER: revision})
    ]
    held = directory.get("wh-1")
    assert held is not None and held.numeric_id == 42


def test_an_existing_webhook_keeps_its_number() -> None:
    directory = WebhookDirectory()
    directory.put(config())
    numbering = Numbering(42)
    planned = plan(command(CommandKind.UPSERT, config=config(name="Renamed")), directory, numbering)
    assert numbering.asked == []
    assert planned.config_bytes is not None
    assert decode(planned.config_bytes, WebhookConfig).numeric_id == 7


def test_a_deactivation_writes_the_config_then_its_status() -> None:
    directory = WebhookDirectory()
    directory.put(config())
    planned = plan(command(CommandKind.DEACTIVATE, reason="maintenance"), directory)

    writes = writes_for(planned, directory, TOPICS)

    assert [write.topic for write in writes] == [TOPICS.webhooks, TOPICS.status]
    assert writes[1].value == planned.status_bytes and writes[1].headers is None
    status = decode(writes[1].value, DeliveryStatus)
    assert status.outcome is Outcome.DEACTIVATED
    assert status.error == "maintenance"
    held = directory.get("wh-1")
    assert held is not None and held.active is False


def test_a_delete_writes_a_tombstone_at_the_next_revision() -> None:
    directory = WebhookDirectory()
    directory.put(config(revision=4))
    planned = plan(command(CommandKind.DELETE), directory)

    writes = writes_for(planned, directory, TOPICS)

    assert writes == [Write(TOPICS.webhooks, b"wh-1", None, {REVISION_HEADER: b"5"})]
    assert directory.get("wh-1") is None
    assert directory.revision("wh-1") == 5


def test_a_command_that_changes_nothing_writes_nothing() -> None:
    directory = WebhookDirectory()
    planned = plan(command(CommandKind.ACTIVATE), directory)
    assert planned.change is None
    assert planned.kind is CommandKind.ACTIVATE
    assert writes_for(planned, directory, TOPICS) == []


def test_unknown_catalog_triggers_are_refused_as_the_records_fault() -> None:
    directory = WebhookDirectory()
    value = command(CommandKind.UPSERT, config=config(triggers=["/ordres"]))
    with pytest.raises(DecodeError, match="webhook 'wh-1' refused: .*did you mean 'orders'"):
        plan(value, directory)
    assert len(directory) == 0


def test_an_unreadable_command_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        plan(b"not a command", WebhookDirectory())


@pytest.mark.parametrize(("partition", "partitions"), [(0, 0), (3, 3), (-1, 3)])
def test_no_number_while_the_partition_count_does_not_include_the_partition(
    partition: int, partitions: int
) -> None:
    assert next_numeric_id(WebhookDirectory(), partition, partitions) is None


def test_numbers_continue_in_the_partitions_class() -> None:
    directory = WebhookDirectory()
    assert next_numeric_id(directory, 1, 3) == 1
    directory.put(config(numeric_id=4))
    directory.put(config(webhook_id="wh-2", numeric_id=5))
    assert next_numeric_id(directory, 1, 3) == 7
    assert next_numeric_id(directory, 0, 3) == 3


def test_an_event_over_the_limit_is_refused_naming_the_setting() -> None:
    assert oversize_reason(100, 100) is None
    assert oversize_reason(101, 100) == (
        "event of 101 bytes exceeds HOOKSTREAM_SECURITY__MAX_EVENT_BYTES=100"
    )
