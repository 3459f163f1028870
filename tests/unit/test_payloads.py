"""Payload shapes (SPEC §3): the portal shape and the device-manager shape, in JSON and XML."""

from __future__ import annotations

import json
from typing import Any
from xml.etree import ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookstream.core.payloads import (
    JSON_CONTENT_TYPE,
    XML_CONTENT_TYPE,
    build_payload,
    device_document,
    portal_document,
    to_xml,
)
from hookstream.core.registry import derived_numeric_id
from hookstream.core.triggers import TriggerFamily
from hookstream.records.models import DomainEvent, PayloadFormat, WebhookConfig

PORTAL_URL = "https://orgURL/portal/"


def parse_xml(data: bytes) -> ElementTree.Element:
    """Parse hookstream's own output (trusted: no entities, no DTD)."""
    return ElementTree.fromstring(data)  # noqa: S314


SENT_AT = 1543192199999


def config(
    fmt: PayloadFormat = PayloadFormat.JSON, triggers: list[str] | None = None
) -> WebhookConfig:
    return WebhookConfig(
        webhook_id="72fed926",
        name="Group monitoring",
        payload_url="https://example.com/hook",
        triggers=triggers or ["/groups"],
        payload_format=fmt,
    )


def portal_event(source: str = "groups", **overrides: Any) -> DomainEvent:
    fields: dict[str, Any] = {
        "event_id": "e-1",
        "source": source,
        "operation": "update",
        "resource_id": "173dd04b",
        "actor_username": "administrator",
        "actor_user_id": "u-173",
        "occurred_at": 1543192196521,
        "properties": {"title": "New title", "tags": ["a", "b"]},
    }
    fields.update(overrides)
    return DomainEvent(**fields)


COMPUTER_ADDED = DomainEvent.for_device_event(
    "ComputerAdded",
    {
        "deviceName": "mac-01",
        "serialNumber": "C02XYZ",
        "udid": "UDID-1",
        "macAddress": "aa:bb",
        "osVersion": "14.1",
        "building": "HQ",
        "jssID": 17,
    },
    event_id="dev-1",
    occurred_at=1553550275590,
)


# --- portal shape -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "singular"),
    [
        ("items", "item"),
        ("groups", "group"),
        ("users", "user"),
        ("roles", "role"),
        ("item", "item"),
    ],
)
def test_portal_document_shape(source: str, singular: str) -> None:
    event = portal_event(source)
    document = portal_document(config(), [event], SENT_AT, PORTAL_URL)
    assert document == {
        "info": {
            "webhookName": "Group monitoring",
            "webhookId": "72fed926",
            "portalURL": PORTAL_URL,
            "when": SENT_AT,
        },
        "events": [
            {
                "username": "administrator",
                "userId": "u-173",
                "when": 1543192196521,
                "operation": "update",
                "source": singular,
                "id": "173dd04b",
                "properties": {"title": "New title", "tags": ["a", "b"]},
            }
        ],
    }


def test_portal_document_keeps_several_events_in_order() -> None:
    events = [portal_event(event_id="a"), portal_event("items", event_id="b", operation="add")]
    document = portal_document(config(), events, SENT_AT, PORTAL_URL)
    assert [e["source"] for e in document["events"]] == ["group", "item"]
    assert [e["operation"] for e in document["events"]] == ["update", "add"]


def test_portal_json_payload() -> None:
    payload = build_payload(
        config(), TriggerFamily.PORTAL, "/groups", [portal_event()], SENT_AT, PORTAL_URL
    )
    assert payload.content_type == JSON_CONTENT_TYPE == "application/json"
    assert json.loads(payload.body) == portal_document(
        config(), [portal_event()], SENT_AT, PORTAL_URL
    )


def test_json_body_is_utf8_not_escaped() -> None:
    event = portal_event(properties={"city": "Zürich"})
    payload = build_payload(config(), TriggerFamily.PORTAL, "/groups", [event], 1, PORTAL_URL)
    assert "Zürich".encode() in payload.body


def test_portal_xml_payload_carries_the_same_values() -> None:
    cfg = config(PayloadFormat.XML)
    event = portal_event(actor_user_id=None)
    payload = build_payload(cfg, TriggerFamily.PORTAL, "/groups", [event], SENT_AT, PORTAL_URL)
    assert payload.content_type.split(";")[0] == "text/xml"
    assert payload.content_type == XML_CONTENT_TYPE
    root = parse_xml(payload.body)
    assert root.tag == "webhookPayload"
    assert root.findtext("info/webhookName") == "Group monitoring"
    assert root.findtext("info/webhookId") == "72fed926"
    assert root.findtext("info/portalURL") == PORTAL_URL
    assert root.findtext("info/when") == str(SENT_AT)
    items = root.findall("events/item")
    assert len(items) == 1
    first = items[0]
    assert first.findtext("username") == "administrator"
    assert first.find("userId") is not None and not first.findtext("userId")
    assert first.findtext("when") == "1543192196521"
    assert first.findtext("operation") == "update"
    assert first.findtext("source") == "group"
    assert first.findtext("id") == "173dd04b"
    assert first.findtext("properties/title") == "New title"
    assert [t.text for t in first.findall("properties/tags/item")] == ["a", "b"]


# --- device shape -----------------------------------------------------------------------------


def test_device_document_shape() -> None:
    document = device_document(config(triggers=["ComputerAdded"]), COMPUTER_ADDED, "ComputerAdded")
    assert document["webhook"] == {
        "id": derived_numeric_id("72fed926"),  # a config written before numeric ids
        "name": "Group monitoring",
        "webhookEvent": "ComputerAdded",
        "eventTimestamp": 1553550275590,
    }
    assert document["event"]["jssID"] == 17
    assert document["event"]["deviceName"] == "mac-01"
    assert set(document) == {"webhook", "event"}


def test_device_document_adds_jss_id_from_the_resource() -> None:
    event = DomainEvent.for_device_event("ComputerCheckIn", {"deviceName": "m"}, resource_id="99")
    document = device_document(config(triggers=["ComputerCheckIn"]), event, "ComputerCheckIn")
    assert document["event"]["jssID"] == 99
    assert document["webhook"]["webhookEvent"] == "ComputerCheckIn"
    named = DomainEvent.for_device_event("ComputerCheckIn", {}, resource_id="abc")
    assert device_document(config(), named, "ComputerCheckIn")["event"]["jssID"] == "abc"


def test_device_document_keeps_smart_group_jssid() -> None:
    event = DomainEvent.for_device_event(
        "SmartGroupUserMembershipChange",
        {"name": "G", "smartGroup": True, "jssid": 5, "groupAddedUserIds": [1, 2]},
    )
    document = device_document(config(), event, "SmartGroupUserMembershipChange")
    assert document["event"] == {
        "name": "G",
        "smartGroup": True,
        "jssid": 5,
        "groupAddedUserIds": [1, 2],
    }


def test_device_json_payload() -> None:
    cfg = config(triggers=["ComputerAdded"])
    payload = build_payload(
        cfg, TriggerFamily.DEVICE, "ComputerAdded", [COMPUTER_ADDED], SENT_AT, PORTAL_URL
    )
    assert payload.content_type == "application/json"
    assert json.loads(payload.body) == device_document(cfg, COMPUTER_ADDED, "ComputerAdded")


def test_device_xml_payload_carries_the_same_values() -> None:
    cfg = config(PayloadFormat.XML, triggers=["ComputerAdded"])
    payload = build_payload(
        cfg, TriggerFamily.DEVICE, "ComputerAdded", [COMPUTER_ADDED], SENT_AT, PORTAL_URL
    )
    assert payload.content_type.startswith("text/xml")
    assert payload.body.startswith(b"<?xml")
    root = parse_xml(payload.body)
    assert root.tag == "JSSEvent"
    assert [child.tag for child in root] == ["webhook", "event"]
    assert root.findtext("webhook/id") == str(derived_numeric_id("72fed926"))
    assert root.findtext("webhook/name") == "Group monitoring"
    assert root.findtext("webhook/webhookEvent") == "ComputerAdded"
    assert root.findtext("webhook/eventTimestamp") == "1553550275590"
    for key, value in COMPUTER_ADDED.properties.items():
        assert root.findtext(f"event/{key}") == str(value)


def test_xml_booleans_are_lowercase() -> None:
    xml = to_xml("JSSEvent", {"event": {"smartGroup": True, "off": False}})
    root = parse_xml(xml)
    assert root.findtext("event/smartGroup") == "true"
    assert root.findtext("event/off") == "false"


# --- odd names and values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "first name",
        "1st",
        "9",
        "",
        "a:b",
        "xmlThing",
        "XML",
        "<tag>",
        "a&b",
        'q"uote',
        "ü-name",
        "-x",
    ],
)
def test_odd_property_names_give_well_formed_xml(name: str) -> None:
    xml = to_xml("webhookPayload", {"properties": {name: "value & <more>"}})
    root = parse_xml(xml)
    properties = root.find("properties")
    assert properties is not None
    (child,) = list(properties)
    if child.tag == "entry":
        assert child.get("key") == name
    else:
        assert child.tag == name
    assert child.text == "value & <more>"


def test_ordinary_names_stay_element_names() -> None:
    root = parse_xml(to_xml("r", {"deviceName": "m", "a.b-c_d": 1}))
    assert [child.tag for child in root] == ["deviceName", "a.b-c_d"]


@pytest.mark.parametrize("text", ["bell\x07", "\x01", "tab\x0bvt"])
def test_control_characters_give_well_formed_xml(text: str) -> None:
    xml = to_xml("r", {"properties": {"note": text, text: "key"}})
    parse_xml(xml)


_XML_SAFE = st.characters(
    blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"
) | st.sampled_from("\t\n")

_XML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(_XML_SAFE, max_size=10),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(_XML_SAFE, max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(deadline=None)
@given(st.dictionaries(st.text(_XML_SAFE, max_size=12), _XML_VALUES, max_size=5))
def test_any_properties_give_well_formed_xml(properties: dict[str, Any]) -> None:
    cfg = config(PayloadFormat.XML)
    event = portal_event(properties=properties)
    payload = build_payload(cfg, TriggerFamily.PORTAL, "/groups", [event], SENT_AT, PORTAL_URL)
    root = parse_xml(payload.body)
    props = root.find("events/item/properties")
    assert props is not None
    assert len(props) == len(properties)


# --- the webhook's numeric id (SPEC §3: an integer) -------------------------------------------


def test_device_payload_matches_the_spec_example() -> None:
    """SPEC §3's device example: ``{"webhook": {"id": 7, "name": "New computers", ...}}``."""
    cfg = WebhookConfig(
        webhook_id="new-computers",
        numeric_id=7,
        name="New computers",
        payload_url="https://example.com/hook",
        triggers=["ComputerAdded"],
    )
    payload = build_payload(
        cfg, TriggerFamily.DEVICE, "ComputerAdded", [COMPUTER_ADDED], SENT_AT, PORTAL_URL
    )
    document = json.loads(payload.body)
    assert document["webhook"] == {
        "id": 7,
        "name": "New computers",
        "webhookEvent": "ComputerAdded",
        "eventTimestamp": 1553550275590,
    }
    assert b'"id":7,' in payload.body  # a JSON number, not "7"


@pytest.mark.parametrize(("webhook_id", "expected"), [("29723", 29723), ("dev-xml-3b4b0706", None)])
def test_a_webhook_without_a_number_sends_its_derived_one(
    webhook_id: str, expected: int | None
) -> None:
    cfg = config(triggers=["ComputerAdded"]).model_copy(update={"webhook_id": webhook_id})
    number = device_document(cfg, COMPUTER_ADDED, "ComputerAdded")["webhook"]["id"]
    assert isinstance(number, int) and not isinstance(number, bool)
    assert number == (expected if expected is not None else derived_numeric_id(webhook_id))
    xml = build_payload(
        cfg.model_copy(update={"payload_format": PayloadFormat.XML}),
        TriggerFamily.DEVICE,
        "ComputerAdded",
        [COMPUTER_ADDED],
        SENT_AT,
        PORTAL_URL,
    )
    assert parse_xml(xml.body).findtext("webhook/id") == str(number)


def test_xml_webhook_id_is_integer_text() -> None:
    cfg = config(PayloadFormat.XML, triggers=["ComputerAdded"]).model_copy(
        update={"numeric_id": 29723}
    )
    payload = build_payload(
        cfg, TriggerFamily.DEVICE, "ComputerAdded", [COMPUTER_ADDED], SENT_AT, PORTAL_URL
    )
    assert parse_xml(payload.body).findtext("webhook/id") == "29723"


def test_portal_payload_keeps_the_string_webhook_id() -> None:
    """SPEC §3's portal example: ``"webhookId": "72fed926…"`` is the webhook's own id."""
    cfg = config().model_copy(update={"numeric_id": 5})
    assert portal_document(cfg, [portal_event()], SENT_AT, PORTAL_URL)["info"]["webhookId"] == (
        "72fed926"
    )
