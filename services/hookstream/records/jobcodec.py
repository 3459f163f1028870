"""Delivery jobs encoded fast: the matcher writes one job per (event, webhook), so the event is
encoded once and each job's few own fields are written by hand, byte for byte what the codec's
``encode(DeliveryJob(...))`` writes (checked against the schema; the general path otherwise)."""

from __future__ import annotations

import io
from functools import lru_cache

import avro.schema
import fastavro

from hookstream.records.codec import JSON_PROP, MARKER, SECRET_PROP, codec_of, encode
from hookstream.records.models import DeliveryJob, DomainEvent


def _zigzag(number: int) -> bytes:
    """An Avro int or long: zig-zag, then 7 bits a byte, low bits first."""
    number = (number << 1) ^ (number >> 63)
    if number < 0x80:
        return _ONE_BYTE[number]
    out = bytearray()
    while number & ~0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


_ONE_BYTE = [bytes((number,)) for number in range(0x80)]


def _avro_string(text: str) -> bytes:
    data = text.encode("utf-8")
    return _zigzag(len(data)) + data


#: The fields of DeliveryJob ``encode_jobs`` writes itself, in schema order with their types.
_JOB_LAYOUT = (
    ("delivery_id", "string"),
    ("webhook_id", "string"),
    ("trigger", "string"),
    ("events", "array"),
    ("attempt", "int"),
    ("due_at", "long"),
    ("triggered_at", "long"),
    ("redelivery", "boolean"),
)


@lru_cache(maxsize=1)
def _job_layout_holds() -> bool:
    """Whether the DeliveryJob schema is still the one ``encode_jobs`` writes by hand."""
    schema = codec_of(DeliveryJob).schema
    if not isinstance(schema, avro.schema.RecordSchema):
        return False
    layout = tuple((field.name, field.type.type) for field in schema.fields)
    events = schema.fields_dict["events"].type
    return (
        layout == _JOB_LAYOUT
        and not any(
            field.props.get(SECRET_PROP) or field.props.get(JSON_PROP) for field in schema.fields
        )
        and isinstance(events, avro.schema.ArraySchema)
        and events.items is codec_of(DomainEvent).schema
    )


def encode_jobs(
    events: list[DomainEvent],
    jobs: list[tuple[str, str, str]],
    *,
    due_at: int,
    triggered_at: int,
    attempt: int = 1,
    redelivery: bool = False,
) -> list[bytes]:
    """The DeliveryJob records of the same ``events`` for several (delivery id, webhook id,
    trigger), byte for byte what ``encode(DeliveryJob(...))`` writes for each.

    The events are encoded once, not once per webhook, and no DeliveryJob model is built: its
    parts come from records already validated (the events) or made by hookstream (the rest)."""
    if not events:
        raise ValueError("a delivery job carries at least one event")
    if not _job_layout_holds():  # the schema changed: the general path stays right
        return [
            encode(
                DeliveryJob(
                    delivery_id=delivery_id,
                    webhook_id=webhook_id,
                    trigger=trigger,
                    events=events,
                    attempt=attempt,
                    due_at=due_at,
                    triggered_at=triggered_at,
                    redelivery=redelivery,
                )
            )
            for delivery_id, webhook_id, trigger in jobs
        ]
    event_codec = codec_of(DomainEvent)
    buffer = io.BytesIO()
    buffer.write(_zigzag(len(events)))
    for event in events:
        fastavro.schemaless_writer(buffer, event_codec.compiled, event_codec.to_avro(event))
    buffer.write(b"\x00")
    tail = (
        buffer.getvalue()
        + _zigzag(attempt)
        + _zigzag(due_at)
        + _zigzag(triggered_at)
        + (b"\x01" if redelivery else b"\x00")
    )
    head = MARKER + codec_of(DeliveryJob).fingerprint
    return [
        b"".join(
            (head, _avro_string(delivery_id), _avro_string(webhook_id), _avro_string(trigger), tail)
        )
        for delivery_id, webhook_id, trigger in jobs
    ]
