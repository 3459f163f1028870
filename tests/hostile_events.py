"""Hostile domain events written as raw Avro, past the model, as a foreign producer could."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import fastavro

from hookstream.records.checks import MAX_PROPERTIES_DEPTH
from hookstream.records.codec import MARKER, fingerprint_of, schema_dir
from hookstream.records.models import DomainEvent, now_ms

_SCHEMA = fastavro.parse_schema(json.loads((schema_dir() / "domain_event.avsc").read_text()))

#: Properties texts (valid Avro strings) that no event may carry, with a word of the reason the
#: matcher gives when it dead-letters them.
POISON_PROPERTIES: dict[str, tuple[str, str]] = {
    "lone surrogate value": ('{"x": "\\ud800"}', "lone surrogate"),
    "lone surrogate key": ('{"\\udfff": 1}', "lone surrogate"),
    "980 deep": ('{"x": ' + "[" * 979 + "]" * 979 + "}", f"deeper than {MAX_PROPERTIES_DEPTH}"),
    "NaN": ('{"x": NaN}', "NaN"),
    "Infinity": ('{"x": [1, Infinity]}', "NaN or an infinite number"),
    "-Infinity": ('{"x": {"y": -Infinity}}', "NaN or an infinite number"),
    "1e999": ('{"x": 1e999}', "NaN or an infinite number"),
}


def nested(depth: int) -> str:
    """A properties text whose containers nest exactly ``depth`` levels (the object is level 1)."""
    return '{"x": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def raw_event(
    properties: str,
    *,
    source: str = "items",
    operation: str = "update",
    resource_id: str | None = None,
    event_id: str | None = None,
) -> bytes:
    """A DomainEvent record with ``properties`` as its JSON text, exactly as given."""
    datum: dict[str, Any] = {
        "event_id": event_id or str(uuid.uuid4()),
        "source": source,
        "operation": operation,
        "resource_id": resource_id,
        "actor_username": "mallory",
        "actor_user_id": None,
        "occurred_at": now_ms(),
        "properties": properties,
    }
    buffer = io.BytesIO()
    buffer.write(MARKER)
    buffer.write(fingerprint_of(DomainEvent))
    fastavro.schemaless_writer(buffer, _SCHEMA, datum)
    return buffer.getvalue()
