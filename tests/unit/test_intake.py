"""Reading events in every input format, the catalog's triggers and schemas, the Standard
Webhooks body: pure logic, no broker."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from hookstream.core.errors import ConfigurationError, DecodeError
from hookstream.core.eventtypes import EventType, SchemaMode
from hookstream.core.payloads import build_payload
from hookstream.core.triggers import TriggerError, TriggerFamily, TriggerKey, parse_trigger
from hookstream.matcher.routing import SchemaViolationError, match_record
from hookstream.records.codec import decode, encode
from hookstream.records.intake import (
    EventTopic,
    InputFormat,
    IntakeError,
    decode_cloudevent,
    decode_event,
    decode_json_event,
    parse_event_topic,
)
from hookstream.records.models import DomainEvent, PayloadShape, WebhookConfig
from hookstream.settings import TopicSettings
from hookstream.views.catalog import EventCatalog
from hookstream.views.directory import WebhookDirectory, family_of

W = "*"
EVENT = {
    "event_id": "e-1",
    "source": "orders",
    "operation": "created",
    "resource_id": "o-1",
    "occurred_at": 1714557600000,
    "properties": {"total": 3},
}
CLOUD = {
    "specversion": "1.0",
    "id": "e-1",
    "source": "https://shop.example.com/orders",
    "type": "com.example.orders.created",
    "subject": "o-1",
    "time": "2024-05-01T10:00:00Z",
    "data": {"total": 3},
}
BINARY = [
    ("ce_specversion", b"1.0"),
    ("ce_id", b"e-1"),
    ("ce_source", b"/orders"),
    ("ce_type", b"created"),
    ("ce_subject", b"o-1"),
    ("ce_time", b"2024-05-01T10:00:00Z"),
    ("content-type", b"application/json"),
]


def catalog(schema_mode: SchemaMode = SchemaMode.REJECT) -> EventCatalog:
    held = EventCatalog()
    held.put(
        EventType(
            source="orders",
            operation="created",
            json_schema={"type": "object", "required": ["total"]},
            schema_mode=schema_mode,
        )
    )
    held.put(EventType(source="orders", operation="shipped"))
    return held


# --- topics and formats -----------------------------------------------------------------------


def test_topic_entries_name_their_format() -> None:
    assert parse_event_topic("a.events") == EventTopic("a.events", InputFormat.AVRO)
    assert parse_event_topic(" orders = JSON ") == EventTopic("orders", InputFormat.JSON)
    assert parse_event_topic("b=cloudevents").format is InputFormat.CLOUDEVENTS
    with pytest.raises(ConfigurationError, match="unknown input format 'xml'.*avro, json"):
        parse_event_topic("orders=xml")
    with pytest.raises(ConfigurationError, match="no topic name"):
        parse_event_topic("=json")


def test_the_catalog_topic_sits_beside_the_webhook_configs() -> None:
    assert TopicSettings().event_types == "hookstream.event-types"
    assert TopicSettings(webhooks="configs").event_types == "configs.event-types"


# --- the three formats give the same event ----------------------------------------------------


def test_every_format_gives_the_same_domain_event() -> None:
    expected = DomainEvent.model_validate(EVENT)
    assert decode_event(encode(expected), InputFormat.AVRO) == expected
    assert decode_event(json.dumps(EVENT).encode(), InputFormat.JSON) == expected
    structured = decode_event(json.dumps(CLOUD).encode(), InputFormat.CLOUDEVENTS)
    assert structured == expected
    binary = decode_cloudevent(b'{"total": 3}', BINARY, key=b"o-1")
    assert binary == expected


def test_cloudevent_actor_extensions_and_missing_time() -> None:
    document = {**CLOUD, "actorusername": "alice", "actoruserid": "u-1"}
    del document["time"]
    event = decode_cloudevent(json.dumps(document).encode())
    assert (event.actor_username, event.actor_user_id) == ("alice", "u-1")
    assert event.occurred_at > 1714557600000


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b'{"event_id": "x", "source": ', "malformed JSON"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b"", "no value"),
        (b"\xff\xfe", "not UTF-8"),
        (json.dumps({**EVENT, "event_id": None}).encode(), "event_id"),
        (json.dumps({k: v for k, v in EVENT.items() if k != "source"}).encode(), "source"),
        (json.dumps({**EVENT, "operation": "no spaces"}).encode(), "operation"),
        (json.dumps({**EVENT, "extra": 1}).encode(), "extra"),
        (b'{"properties": ' + b"[" * 100 + b"]" * 100 + b"}", "deeper than 64"),
        (json.dumps(EVENT).replace("3", "NaN").encode(), "NaN"),
    ],
)
def test_bad_json_events_are_refused_naming_the_field(value: bytes, message: str) -> None:
    with pytest.raises(IntakeError, match=message):
        decode_json_event(value)


@pytest.mark.parametrize("missing", ["id", "source", "type", "specversion"])
def test_a_cloudevent_without_a_required_attribute_is_refused(missing: str) -> None:
    document = {key: value for key, value in CLOUD.items() if key != missing}
    with pytest.raises(IntakeError, match=f"required attribute {missing} missing"):
        decode_cloudevent(json.dumps(document).encode())
    headers = [(name, value) for name, value in BINARY if name != f"ce_{missing}"]
    with pytest.raises(IntakeError, match=f"required attribute {missing} missing"):
        decode_cloudevent(b'{"total": 3}', headers)


@pytest.mark.parametrize("version", [b"0.3", b"2.0", b"1"])
def test_a_binary_record_with_a_wrong_specversion_is_refused(version: bytes) -> None:
    headers = [(n, version if n == "ce_specversion" else v) for n, v in BINARY]
    with pytest.raises(IntakeError, match="binary mode.*specversion.*'1.0'"):
        decode_cloudevent(b'{"total": 3}', headers)


@pytest.mark.parametrize(
    ("document", "headers", "message"),
    [
        ({**CLOUD, "time": "yesterday"}, None, "time: 'yesterday' is not an RFC 3339"),
        ({**CLOUD, "source": "/"}, None, "source '/' does not end in an event source name"),
        ({**CLOUD, "type": "com.example."}, None, "type 'com.example.' does not end"),
        ({**CLOUD, "data": [1]}, None, "data: Input should be a valid dictionary"),
        ({**CLOUD, "subject": "a/b"}, None, "subject: Value error, resource_id cannot contain"),
        ([CLOUD], None, "not an object of CloudEvent attributes"),
        ("not json", BINARY, "data must be a JSON object"),
    ],
)
def test_bad_cloudevents_are_refused_naming_the_attribute(
    document: Any, headers: Any, message: str
) -> None:
    value = document.encode() if isinstance(document, str) else json.dumps(document).encode()
    with pytest.raises(IntakeError, match=message):
        decode_cloudevent(value, headers)


def test_intake_errors_are_decode_errors_so_the_matcher_dead_letters_them() -> None:
    assert issubclass(IntakeError, DecodeError)
    assert issubclass(SchemaViolationError, DecodeError)


# --- catalog triggers ------------------------------------------------------------------------


def test_catalog_triggers_take_the_portal_grammar() -> None:
    held = catalog()
    assert parse_trigger("/orders", catalog=held).key == TriggerKey("orders", W, W)
    assert parse_trigger("/Orders/Created", catalog=held).key == TriggerKey("orders", W, "created")
    assert parse_trigger("/orders/o-1", catalog=held).key == TriggerKey("orders", "o-1", W)
    assert parse_trigger("/orders/o-1/shipped", catalog=held).key == TriggerKey(
        "orders", "o-1", "shipped"
    )
    assert parse_trigger("/orders", catalog=held).family is TriggerFamily.CATALOG


def test_unknown_catalog_names_are_refused_with_close_matches() -> None:
    held = catalog()
    with pytest.raises(TriggerError, match="did you mean 'orders'.*known sources: /groups"):
        parse_trigger("/ordres", catalog=held)
    with pytest.raises(TriggerError, match="did you mean 'created'.*created, shipped"):
        parse_trigger("/orders/craeted", catalog=held)
    with pytest.raises(TriggerError, match="did you mean 'shipped'"):
        parse_trigger("/orders/o-1/shiped", catalog=held)


def test_builtin_vocabularies_behave_as_before_with_a_catalog() -> None:
    held = catalog()
    assert parse_trigger("/items/add", catalog=held) == parse_trigger("/items/add")
    with pytest.raises(TriggerError, match="unknown operation"):
        parse_trigger("/items/i1/created", catalog=held)
    with pytest.raises(TriggerError, match="unknown trigger URI '/computers'"):
        parse_trigger("/computers", catalog=held)
    with pytest.raises(TriggerError, match="unknown trigger URI"):
        parse_trigger("/orders")  # no catalog: only the built-in vocabularies


def test_a_catalog_type_cannot_take_a_builtin_source() -> None:
    for source in ("items", "Item", "computers", "mobileDevices"):
        with pytest.raises(ValidationError, match="clashes with a built-in source"):
            EventType(source=source, operation="sold")


def test_an_invalid_json_schema_or_a_wrong_example_is_refused() -> None:
    with pytest.raises(ValidationError, match="not a valid JSON Schema at type"):
        EventType(source="orders", operation="paid", json_schema={"type": "nonsense"})
    with pytest.raises(ValidationError, match="example does not satisfy json_schema"):
        EventType(
            source="orders",
            operation="paid",
            json_schema={"type": "object", "required": ["total"]},
            example={},
        )


def test_the_directory_reads_catalog_triggers_again_when_the_catalog_changes() -> None:
    held = EventCatalog()
    directory = WebhookDirectory(held.lenient())
    config = WebhookConfig(
        webhook_id="w1", name="n", payload_url="https://example.com/h", triggers=["/orders/paid"]
    )
    directory.put(config)  # before the catalog holds orders.paid: read as the type (lenient)
    assert [m.webhook.webhook_id for m in directory.match("orders", "o-1", "paid")] == ["w1"]
    held.put(EventType(source="orders", operation="created"))
    assert directory.refresh("orders") == 1
    # The catalog declares orders without a type paid: /orders/paid is the order with id paid.
    assert directory.match("orders", "o-1", "paid") == []
    assert [m.webhook.webhook_id for m in directory.match("orders", "paid", "created")] == ["w1"]
    held.put(EventType(source="orders", operation="paid"))
    directory.refresh("orders")
    assert [m.webhook.webhook_id for m in directory.match("orders", "o-1", "paid")] == ["w1"]
    assert family_of(config) is TriggerFamily.CATALOG


# --- schemas in the matcher, the Standard Webhooks body ---------------------------------------


def _directory() -> WebhookDirectory:
    directory = WebhookDirectory(catalog().lenient())
    directory.put(
        WebhookConfig(
            webhook_id="w1", name="n", payload_url="https://example.com/h", triggers=["/orders"]
        )
    )
    return directory


def test_an_event_breaking_its_type_schema_is_refused_or_warned() -> None:
    bad = json.dumps({**EVENT, "properties": {"count": 1}}).encode()
    with pytest.raises(SchemaViolationError, match="orders.created.*properties at \\(root\\)"):
        match_record(bad, _directory(), 1, fmt=InputFormat.JSON, catalog=catalog())
    warnings: list[str] = []
    jobs = match_record(
        bad,
        _directory(),
        1,
        fmt=InputFormat.JSON,
        catalog=catalog(SchemaMode.WARN),
        warn=warnings.append,
    )
    assert len(jobs) == 1 and "'total' is a required property" in warnings[0]


def test_catalog_webhooks_get_the_standard_webhooks_shape() -> None:
    config = WebhookConfig(
        webhook_id="w1", name="n", payload_url="https://example.com/h", triggers=["/orders"]
    )
    event = DomainEvent.model_validate(EVENT)
    payload = build_payload(config, TriggerFamily.CATALOG, "/orders", [event], 5, "")
    assert json.loads(payload.body) == {
        "type": "orders.created",
        "timestamp": "2024-05-01T10:00:00.000Z",
        "data": {"total": 3, "id": "o-1"},
    }
    mixed = config.model_copy(update={"triggers": ["/orders", "/items"]})
    assert family_of(mixed) is TriggerFamily.PORTAL  # a portal trigger asks for the portal shape


def test_a_catalog_webhook_may_ask_for_the_portal_shape() -> None:
    config = WebhookConfig(
        webhook_id="w1",
        name="n",
        payload_url="https://example.com/h",
        triggers=["/orders"],
        payload_shape=PayloadShape.PORTAL,
    )
    event = DomainEvent.model_validate(EVENT)
    payload = build_payload(config, TriggerFamily.CATALOG, "/orders", [event], 5, "")
    body = json.loads(payload.body)
    assert set(body) == {"info", "events"}
    assert body["info"]["webhookId"] == "w1"
    assert decode(encode(config), WebhookConfig).payload_shape is PayloadShape.PORTAL
