"""Reading domain events in every input format: hookstream's Avro record, plain JSON, CloudEvents.

Each event topic declares its format in ``HOOKSTREAM_TOPICS__EVENTS``: ``name`` (Avro, the
default) or ``name=json`` or ``name=cloudevents``, e.g. ``hookstream.events,orders=json``.
Whatever the format, the rest of hookstream sees a ``DomainEvent``. A record that cannot become
one raises ``IntakeError`` whose message names the field at fault; the matcher dead-letters it.

CloudEvents 1.0 are read with the ``cloudevents`` SDK in the Kafka protocol binding: binary mode
(``ce_*`` headers, the data in the value) when any ``ce_`` header is present, else structured
mode (``application/cloudevents+json`` in the value). See docs/events.md for the mapping.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka
from cloudevents.core.exceptions import BaseCloudEventException, CloudEventValidationError
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import ValidationError

from hookstream.core.errors import ConfigurationError, DecodeError
from hookstream.records.checks import MAX_PROPERTIES_DEPTH
from hookstream.records.codec import decode, describe_validation_error, json_too_deep
from hookstream.records.models import DomainEvent, now_ms
from hookstream.settings import TopicSettings

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_JSON_FORMAT = JSONFormat()
#: CloudEvents attribute each DomainEvent field comes from, for messages that name the field.
_CE_ATTRIBUTE = {
    "event_id": "id",
    "source": "source",
    "operation": "type",
    "resource_id": "subject",
    "occurred_at": "time",
    "properties": "data",
    "actor_username": "actorusername",
    "actor_user_id": "actoruserid",
}

_REQUIRED = ("specversion", "id", "source", "type")

Headers = Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None


class InputFormat(StrEnum):
    """How the records of one event topic are written."""

    AVRO = "avro"
    JSON = "json"
    CLOUDEVENTS = "cloudevents"


class IntakeError(DecodeError):
    """A record of an event topic is not an event in the topic's format; the message names the
    field at fault."""


@dataclass(frozen=True, slots=True)
class EventTopic:
    """One input topic and the format its producers write."""

    name: str
    format: InputFormat


def parse_event_topic(entry: str) -> EventTopic:
    """``name`` or ``name=format``; an unknown format is a ConfigurationError listing the known."""
    name, sep, fmt = entry.partition("=")
    name, fmt = name.strip(), fmt.strip().lower()
    if not name:
        raise ConfigurationError(
            f"HOOKSTREAM_TOPICS__EVENTS entry {entry!r} has no topic name; write name or "
            f"name=format"
        )
    if not sep:
        return EventTopic(name, InputFormat.AVRO)
    try:
        return EventTopic(name, InputFormat(fmt))
    except ValueError:
        known = ", ".join(member.value for member in InputFormat)
        raise ConfigurationError(
            f"HOOKSTREAM_TOPICS__EVENTS entry {entry!r}: unknown input format {fmt!r}; "
            f"use one of {known}"
        ) from None


def event_topics(topics: TopicSettings) -> list[EventTopic]:
    """The event topics of these settings with their formats."""
    return [parse_event_topic(entry) for entry in topics.events]


def event_topic_names(topics: TopicSettings) -> list[str]:
    """The names of the event topics (without their formats)."""
    return [topic.name for topic in event_topics(topics)]


def decode_event(
    value: bytes | None, fmt: InputFormat, headers: Headers = None, key: bytes | None = None
) -> DomainEvent:
    """The domain event of one record of an event topic; raises IntakeError (or the codec's
    DecodeError for Avro) naming what is wrong."""
    if fmt is InputFormat.AVRO:
        return decode(value, DomainEvent)
    if fmt is InputFormat.JSON:
        return decode_json_event(value)
    return decode_cloudevent(value, headers, key)


def _json_text(value: bytes | None, what: str) -> str:
    if not value:
        raise IntakeError(f"{what}: the record has no value (expected a JSON object)")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IntakeError(f"{what}: the value is not UTF-8 text (byte {exc.start})") from None
    if json_too_deep(text):
        raise IntakeError(
            f"{what}: the value nests objects and arrays deeper than {MAX_PROPERTIES_DEPTH} levels"
        )
    return text


def decode_json_event(value: bytes | None) -> DomainEvent:
    """A plain JSON object with the fields of ``schemas/domain_event.avsc``."""
    text = _json_text(value, "JSON event")
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise IntakeError(f"JSON event: malformed JSON: {exc}") from None
    if not isinstance(document, dict):
        raise IntakeError(
            f"JSON event: the value is a JSON {type(document).__name__}, not an object with "
            f"event_id, source, operation and occurred_at"
        )
    try:
        return DomainEvent.model_validate(document)
    except ValidationError as exc:
        raise IntakeError(f"JSON event: {describe_validation_error(exc)}") from None


def _header_map(headers: Headers) -> dict[str, bytes]:
    if headers is None:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {name: value for name, value in items if value is not None}


def decode_cloudevent(
    value: bytes | None, headers: Headers = None, key: bytes | None = None
) -> DomainEvent:
    """A CloudEvents 1.0 record in the Kafka binding, binary or structured mode."""
    header_map = _header_map(headers)
    binary = any(name.lower().startswith("ce_") for name in header_map)
    mode = "binary" if binary else "structured"
    if not binary:
        _json_text(value, "CloudEvent (structured mode)")
    elif value and json_too_deep(value.decode("utf-8", "replace")):
        raise IntakeError(
            f"CloudEvent (binary mode): data nests deeper than {MAX_PROPERTIES_DEPTH} levels"
        )
    try:
        event = from_kafka(KafkaMessage(header_map, key, value or b""), _JSON_FORMAT, _received)
    except CloudEventValidationError as exc:
        problems = "; ".join(
            f"{name}: {', '.join(str(error) for error in errors)}"
            for name, errors in exc.errors.items()
        )
        raise IntakeError(f"CloudEvent ({mode} mode) refused: {problems}") from None
    except (BaseCloudEventException, ValueError, TypeError, AttributeError, OverflowError) as exc:
        what = _time_problem(header_map, value) or f"{type(exc).__name__}: {exc}"
        if isinstance(exc, AttributeError):
            what = "the value is JSON but not an object of CloudEvent attributes"
        elif isinstance(exc, json.JSONDecodeError):
            what = f"malformed JSON: {exc}"
        raise IntakeError(f"CloudEvent ({mode} mode) is not readable: {what}") from None
    return _domain_event(cast(CloudEvent, event), mode)


def _received(attributes: dict[str, Any], data: Any) -> CloudEvent:
    """The SDK's v1.0 event, but refusing what its constructor would make up: a record without
    ``specversion`` or ``id`` is not a CloudEvent, it must not get a fresh random id."""
    missing = [name for name in _REQUIRED if not attributes.get(name)]
    if missing:
        raise IntakeError(
            f"CloudEvent refused: required attribute{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} missing or empty (CloudEvents 1.0 requires "
            f"{', '.join(_REQUIRED)})"
        )
    return CloudEvent(attributes, data)


def _time_problem(headers: Mapping[str, bytes], value: bytes | None) -> str | None:
    """Why the ``time`` attribute could not be read, if that was the problem (the SDK's parser
    does not say which attribute it was reading)."""
    text: Any = headers.get("ce_time")
    if text is None and value:
        try:
            document = json.loads(value)
        except ValueError:
            return None
        text = document.get("time") if isinstance(document, dict) else None
    if text is None:
        return None
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return f"time: {text[:64]!r} is not an RFC 3339 timestamp (e.g. 2024-05-01T10:00:00Z)"
    return None


def _name_from_source(source: str, mode: str) -> str:
    segments = [part for part in re.split(r"[/:]", source) if part]
    name = segments[-1] if segments else ""
    if not _NAME.match(name):
        raise IntakeError(
            f"CloudEvent ({mode} mode): source {source[:200]!r} does not end in an event source "
            f"name (the last path segment must be a letter followed by up to 63 letters, "
            f"digits, _ or -, e.g. /orders or https://shop.example.com/orders)"
        )
    return name


def _operation_from_type(event_type: str, mode: str) -> str:
    operation = event_type.rsplit(".", 1)[-1]
    if not _NAME.match(operation):
        raise IntakeError(
            f"CloudEvent ({mode} mode): type {event_type[:200]!r} does not end in an operation "
            f"name (after its last '.', a letter followed by up to 63 letters, digits, _ or -, "
            f"e.g. com.example.orders.created)"
        )
    return operation


def _epoch_ms(moment: datetime | None) -> int:
    if moment is None:
        return now_ms()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0, int(moment.timestamp() * 1000))


def _attribute(loc: tuple[int | str, ...]) -> str:
    """The CloudEvents attribute a DomainEvent field comes from (``data`` for properties)."""
    if not loc:
        return "event"
    return _CE_ATTRIBUTE.get(str(loc[0]), str(loc[0]))


def _domain_event(event: CloudEvent, mode: str) -> DomainEvent:
    data = event.get_data()
    if isinstance(data, bytes | str):
        raise IntakeError(
            f"CloudEvent ({mode} mode): data must be a JSON object (datacontenttype "
            f"application/json), got {'bytes' if isinstance(data, bytes) else 'text'}"
        )
    fields: dict[str, Any] = {
        "event_id": event.get_id(),
        "source": _name_from_source(event.get_source(), mode),
        "operation": _operation_from_type(event.get_type(), mode),
        "resource_id": event.get_subject(),
        "occurred_at": _epoch_ms(event.get_time()),
        "properties": data if data is not None else {},
        "actor_username": event.get_extension("actorusername"),
        "actor_user_id": event.get_extension("actoruserid"),
    }
    try:
        return DomainEvent.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_attribute(error['loc'])}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
        raise IntakeError(f"CloudEvent ({mode} mode): {problems}") from None
