"""Avro single-object encoding of every record type (records/codec.py, schemas/*.avsc)."""

from __future__ import annotations

import io
import json
from typing import Any

import avro.io
import avro.name
import avro.schema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr

from hookstream.core.errors import DecodeError, SchemaMismatchError
from hookstream.core.eventtypes import EventType, SchemaMode
from hookstream.records.codec import (
    MARKER,
    SCHEMA_FILES,
    decode,
    encode,
    fingerprint_of,
    schema_dir,
)
from hookstream.records.ids import generate_secret
from hookstream.records.models import (
    AuthKind,
    CommandKind,
    DeactivationPolicy,
    DeadLetter,
    DeliveryJob,
    DeliveryPolicy,
    DeliveryStatus,
    DomainEvent,
    FailureMark,
    Outcome,
    PayloadFormat,
    WebhookAuth,
    WebhookCommand,
    WebhookConfig,
)

EVENT = DomainEvent(
    event_id="e-1",
    source="items",
    operation="update",
    resource_id="9f3c",
    actor_username="administrator",
    actor_user_id="173dd04b",
    occurred_at=1543192196521,
    properties={"title": "Zürich ✓", "tags": ["a", "b"], "n": 3, "f": 1.5, "nested": {"x": None}},
)
BASIC = WebhookConfig(
    webhook_id="wh-basic",
    name="Basic",
    payload_url="https://example.com/basic",
    triggers=["/items/add", "/users/bob/signIn"],
    auth=WebhookAuth(kind=AuthKind.BASIC, username="alice", password=SecretStr("pw-secret")),
    connect_timeout_s=2.5,
    read_timeout_s=7.0,
    payload_format=PayloadFormat.XML,
    deactivation_policy=DeactivationPolicy(number_of_failures=3, days_in_past=2),
    active=False,
    deactivated_reason="too many failures",
    deactivated_at=1700000000000,
    recent_failures=[FailureMark(delivery_id="d1", at=1), FailureMark(delivery_id="d2", at=2)],
    owner_id="owner",
    created_at=1,
    modified_at=2,
    revision=9,
)
HEADER = WebhookConfig(
    webhook_id="wh-header",
    name="Header",
    payload_url="https://example.com/header",
    triggers=["SmartGroupComputerMembershipChange"],
    smart_group_id="42",
    auth=WebhookAuth(
        kind=AuthKind.HEADER,
        headers={
            "Authorization": SecretStr("Bearer tok-secret"),
            "X-Api-Key": SecretStr("api-key-two-secret"),
        },
    ),
    created_at=3,
    modified_at=4,
)
PLAIN = WebhookConfig(
    webhook_id="wh-plain", name="Plain", payload_url="https://e.com", triggers=["/"]
)

RECORDS: list[BaseModel] = [
    EVENT,
    DomainEvent(event_id="e-2", source="computers", operation="add", occurred_at=0),
    BASIC,
    HEADER,
    PLAIN,
    WebhookCommand(webhook_id="wh-header", kind=CommandKind.UPSERT, config=HEADER, issued_at=5),
    WebhookCommand(
        webhook_id="wh-1", kind=CommandKind.RECORD_FAILURE, delivery_id="d", reason="r", issued_at=6
    ),
    WebhookCommand(webhook_id="wh-1", kind=CommandKind.DELETE, issued_at=7),
    DeliveryJob(
        delivery_id="d-1",
        webhook_id="wh-basic",
        trigger="/items/add",
        events=[EVENT, EVENT.model_copy(update={"event_id": "e-3"})],
        attempt=2,
        due_at=10,
        triggered_at=9,
        redelivery=True,
    ),
    DeliveryStatus(
        delivery_id="d-1",
        webhook_id="wh-basic",
        webhook_name="Basic",
        event_ids=["e-1", "e-3"],
        trigger="/items/add",
        attempt=2,
        max_attempts=3,
        attempted_at=11,
        duration_ms=12.25,
        outcome=Outcome.FAILED,
        final=False,
        next_attempt_at=41,
        http_status=503,
        response_excerpt="busy",
        error="HTTP 503",
        payload='{"x":1}',
    ),
    DeliveryStatus(webhook_id="w", webhook_name="W", outcome=Outcome.DEACTIVATED, final=True),
    DeadLetter(
        source_topic="hookstream.events",
        partition=3,
        offset=2**40,
        key=b"\x00\xffkey",
        value=b"\xc3\x01junk",
        reason="undecodable",
        service="matcher",
        dead_at=13,
    ),
    DeadLetter(source_topic="t", partition=0, offset=0, reason="r", service="s"),
    DeliveryPolicy(max_attempts=5, retry_interval_s=1.5, request_timeout_s=60.0, modified_at=7),
    EventType(
        source="orders",
        operation="created",
        description="An order was placed.",
        json_schema={"type": "object", "required": ["total"]},
        schema_mode=SchemaMode.WARN,
        example={"total": 12.5, "lines": [{"sku": "a"}]},
        created_at=1,
        modified_at=2,
    ),
    EventType(source="invoices", operation="paid"),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_round_trip(record: BaseModel) -> None:
    data = encode(record)
    back = decode(data, type(record))
    assert back == record
    assert back.model_dump() == record.model_dump()
    # Secrets are encrypted with a random nonce, so only records without secrets re-encode
    # to the same bytes; all of them decode back to the same record.
    assert decode(encode(back), type(record)) == record


def test_every_record_type_is_covered() -> None:
    assert {type(r) for r in RECORDS} == set(SCHEMA_FILES)


@pytest.mark.parametrize("record", [BASIC, HEADER], ids=["basic", "header"])
def test_secret_values_survive_the_round_trip(record: WebhookConfig) -> None:
    back = decode(encode(record), WebhookConfig)
    assert back.auth.kind is record.auth.kind
    if record.auth.kind is AuthKind.BASIC:
        assert back.auth.password is not None
        assert back.auth.password.get_secret_value() == "pw-secret"
        assert b"pw-secret" not in encode(record)  # encrypted at rest
    else:
        secrets = {k: v.get_secret_value() for k, v in back.auth.headers.items()}
        assert secrets == {"Authorization": "Bearer tok-secret", "X-Api-Key": "api-key-two-secret"}
        assert b"tok-secret" not in encode(record)
        assert b"api-key-two-secret" not in encode(record)


def test_properties_are_json_in_the_body() -> None:
    data = encode(EVENT)
    assert json.dumps(EVENT.properties, separators=(",", ":"), ensure_ascii=False).encode() in data


# --- header and fingerprints ------------------------------------------------------------------


def _crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO (Rabin) as the Avro specification writes it out."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def _parsed_schemas() -> dict[type[BaseModel], avro.schema.Schema]:
    names = avro.name.Names()
    folder = schema_dir()
    return {
        model: avro.schema.make_avsc_object(json.loads((folder / name).read_text()), names)
        for model, name in SCHEMA_FILES.items()
    }


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_single_object_header(record: BaseModel) -> None:
    schema = _parsed_schemas()[type(record)]
    data = encode(record)
    assert data[:2] == b"\xc3\x01" == MARKER
    assert data[2:10] == schema.fingerprint() == fingerprint_of(type(record))
    little_endian = _crc64_avro(schema.canonical_form.encode()).to_bytes(8, "little")
    assert data[2:10] == little_endian


def test_fingerprints_differ_per_record_type() -> None:
    fingerprints = {fingerprint_of(model) for model in SCHEMA_FILES}
    assert len(fingerprints) == len(SCHEMA_FILES)
    assert all(len(fp) == 8 for fp in fingerprints)


def test_wrong_model_raises_schema_mismatch_naming_both() -> None:
    data = encode(EVENT)
    with pytest.raises(SchemaMismatchError) as caught:
        decode(data, WebhookConfig)
    message = str(caught.value)
    assert fingerprint_of(DomainEvent).hex() in message
    assert fingerprint_of(WebhookConfig).hex() in message
    assert "DomainEvent" in message and "WebhookConfig" in message
    assert isinstance(caught.value, DecodeError)


def test_unknown_fingerprint_is_named_unknown() -> None:
    data = MARKER + b"\x01" * 8 + encode(EVENT)[10:]
    with pytest.raises(SchemaMismatchError, match="unknown schema"):
        decode(data, DomainEvent)


# --- damage -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        None,
        b"",
        b"\xc3",
        b"\xc3\x01",
        b"\xc3\x01\x00\x00",
        b'{"event_id": "e"}',
        b"\x00\x01" + b"\x00" * 20,
    ],
)
def test_garbage_raises_decode_error(data: bytes | None) -> None:
    with pytest.raises(DecodeError):
        decode(data, DomainEvent)


def test_tombstone_message() -> None:
    with pytest.raises(DecodeError, match="tombstone"):
        decode(None, WebhookConfig)


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_every_truncation_raises_decode_error(record: BaseModel) -> None:
    data = encode(record)
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            decode(data[:cut], type(record))


def _raw_body(model: type[BaseModel], datum: dict[str, Any]) -> bytes:
    schema = _parsed_schemas()[model]
    buffer = io.BytesIO()
    avro.io.DatumWriter(schema).write(datum, avro.io.BinaryEncoder(buffer))
    return MARKER + schema.fingerprint() + buffer.getvalue()


_RAW_EVENT: dict[str, Any] = {
    "event_id": "e",
    "source": "items",
    "operation": "add",
    "resource_id": None,
    "actor_username": None,
    "actor_user_id": None,
    "occurred_at": 1,
    "properties": "{}",
}


def test_raw_body_helper_matches_encode() -> None:
    event = DomainEvent(event_id="e", source="items", operation="add", occurred_at=1)
    assert _raw_body(DomainEvent, _RAW_EVENT) == encode(event)


@pytest.mark.parametrize(
    "changes",
    [
        {"properties": "[1]"},
        {"properties": "not json"},
        {"source": "no spaces allowed"},
        {"resource_id": "a/b"},
        {"occurred_at": -5},
    ],
)
def test_body_that_breaks_a_model_rule_is_a_decode_error(changes: dict[str, Any]) -> None:
    with pytest.raises(DecodeError, match="DomainEvent"):
        decode(_raw_body(DomainEvent, {**_RAW_EVENT, **changes}), DomainEvent)


def test_config_with_invalid_trigger_in_the_topic_is_a_decode_error() -> None:
    datum = json.loads(PLAIN.model_dump_json())
    datum["triggers"] = ["/items/i1/nonsense"]
    with pytest.raises(DecodeError, match="invalid WebhookConfig"):
        decode(_raw_body(WebhookConfig, datum), WebhookConfig)


_MODELS: list[type[BaseModel]] = list(SCHEMA_FILES)


@settings(deadline=None)
@given(st.binary(max_size=200), st.sampled_from(_MODELS))
def test_random_bytes_raise_only_decode_error(data: bytes, model: type[BaseModel]) -> None:
    try:
        decode(data, model)
    except DecodeError:
        pass


@settings(deadline=None)
@given(st.binary(max_size=300), st.sampled_from(_MODELS))
def test_random_body_after_a_valid_header_raises_only_decode_error(
    body: bytes, model: type[BaseModel]
) -> None:
    try:
        record = decode(MARKER + fingerprint_of(model) + body, model)
    except DecodeError:
        return
    assert isinstance(record, model)


@settings(deadline=None)
@given(st.sampled_from(RECORDS), st.data())
def test_flipped_bytes_raise_only_decode_error(record: BaseModel, data: st.DataObject) -> None:
    encoded = bytearray(encode(record))
    position = data.draw(st.integers(10, len(encoded) - 1))
    encoded[position] ^= data.draw(st.integers(1, 255))
    try:
        back = decode(bytes(encoded), type(record))
    except DecodeError:
        return
    assert isinstance(back, type(record))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(deadline=None)
@given(st.dictionaries(st.text(max_size=10), _JSON, max_size=5), st.text(min_size=1, max_size=30))
def test_any_json_properties_round_trip(properties: dict[str, Any], event_id: str) -> None:
    event = DomainEvent(
        event_id=event_id, source="items", operation="add", occurred_at=1, properties=properties
    )
    assert decode(encode(event), DomainEvent) == event


def test_signing_secrets_are_encrypted_and_come_back() -> None:
    secret = generate_secret()
    record = BASIC.model_copy(update={"secret": SecretStr(secret), "esri_signature": True})
    data = encode(record)
    assert secret.encode() not in data
    assert secret[6:].encode() not in data
    back = decode(data, WebhookConfig)
    assert back.secret is not None and back.secret.get_secret_value() == secret


def test_records_of_an_earlier_schema_version_still_decode() -> None:
    """A WebhookConfig written before the signing fields existed is read with their defaults."""
    import io

    import avro.io
    import avro.name
    import avro.schema

    from hookstream.records.codec import MARKER, history_dir

    [old_file] = sorted(history_dir().glob("WebhookConfig-c8ea942dfdadb2fa.avsc"))
    old = avro.schema.make_avsc_object(json.loads(old_file.read_text()), avro.name.Names())
    datum = {
        "webhook_id": "old-1",
        "name": "Old",
        "payload_url": "https://old.example/h",
        "triggers": ["/items"],
        "smart_group_id": None,
        "auth": {"kind": "basic", "username": "u", "password": "plain-from-before", "headers": {}},
        "connect_timeout_s": None,
        "read_timeout_s": None,
        "payload_format": "json",
        "deactivation_policy": {"number_of_failures": 5, "days_in_past": 5},
        "active": True,
        "deactivated_reason": None,
        "deactivated_at": None,
        "recent_failures": [],
        "owner_id": None,
        "created_at": 1,
        "modified_at": 2,
        "revision": 3,
    }
    buffer = io.BytesIO()
    buffer.write(MARKER + old.fingerprint())
    avro.io.DatumWriter(old).write(datum, avro.io.BinaryEncoder(buffer))
    back = decode(buffer.getvalue(), WebhookConfig)
    assert back.webhook_id == "old-1"
    assert back.secret is None
    assert back.esri_signature is False
    assert back.auth.password is not None
    assert back.auth.password.get_secret_value() == "plain-from-before"
