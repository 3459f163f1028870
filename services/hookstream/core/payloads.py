"""The bodies hookstream POSTs: the portal shape, the device-manager shape and, for event types of
the catalog, the Standard Webhooks shape; in JSON or XML."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree

from hookstream.core.eventtypes import type_name
from hookstream.core.registry import numeric_id_of
from hookstream.core.triggers import TriggerFamily, device_event_name, normalize_source
from hookstream.records.models import DomainEvent, PayloadFormat, PayloadShape, WebhookConfig

_SINGULAR = {"items": "item", "groups": "group", "users": "user", "roles": "role"}
_XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")
#: Characters XML 1.0 forbids anywhere in a document; replaced so the body stays well-formed.
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(value: str) -> str:
    return _XML_FORBIDDEN.sub("\ufffd", value)


JSON_CONTENT_TYPE = "application/json"
XML_CONTENT_TYPE = "text/xml; charset=utf-8"


@dataclass(frozen=True)
class Payload:
    """The exact bytes to send and their Content-Type."""

    body: bytes
    content_type: str


def portal_document(
    config: WebhookConfig, events: list[DomainEvent], sent_at: int, portal_url: str
) -> dict[str, Any]:
    """``{"info": {...}, "events": [...]}`` as the portal sends it."""
    return {
        "info": {
            "webhookName": config.name,
            "webhookId": config.webhook_id,
            "portalURL": portal_url,
            "when": sent_at,
        },
        "events": [
            {
                "username": event.actor_username,
                "userId": event.actor_user_id,
                "when": event.occurred_at,
                "operation": event.operation,
                "source": _SINGULAR.get(normalize_source(event.source), event.source),
                "id": event.resource_id,
                "properties": event.properties,
            }
            for event in events
        ],
    }


def device_document(config: WebhookConfig, event: DomainEvent, trigger: str) -> dict[str, Any]:
    """``{"webhook": {...}, "event": {...}}`` as the device manager sends it; ``webhook.id`` is
    the webhook's number (an integer, as receivers' typed models expect), not its id."""
    body = dict(event.properties)
    if event.resource_id is not None and "jssID" not in body and "jssid" not in body:
        body["jssID"] = int(event.resource_id) if event.resource_id.isdigit() else event.resource_id
    return {
        "webhook": {
            "id": numeric_id_of(config),
            "name": config.name,
            "webhookEvent": device_event_name(event.source, event.operation) or trigger,
            "eventTimestamp": event.occurred_at,
        },
        "event": body,
    }


def standard_document(event: DomainEvent) -> dict[str, Any]:
    """``{"type", "timestamp", "data"}`` as the Standard Webhooks specification recommends: the
    type is the catalog name (``orders.created``), the timestamp when the event occurred (RFC
    3339, UTC), the data the event's properties with its resource id as ``id`` unless they have
    one."""
    data = dict(event.properties)
    if event.resource_id is not None and "id" not in data:
        data["id"] = event.resource_id
    return {
        "type": type_name(event.source, event.operation),
        "timestamp": rfc3339(event.occurred_at),
        "data": data,
    }


def rfc3339(epoch_ms: int) -> str:
    """Epoch milliseconds as an RFC 3339 UTC timestamp; beyond year 9999 the year is clamped."""
    try:
        moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    except (OverflowError, ValueError, OSError):
        moment = datetime.max.replace(tzinfo=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _xml_append(parent: ElementTree.Element, name: str, value: Any) -> None:
    if _XML_NAME.match(name) and not name.lower().startswith("xml"):
        child = ElementTree.SubElement(parent, name)
    else:
        child = ElementTree.SubElement(parent, "entry", {"key": _xml_text(name)})
    if isinstance(value, dict):
        for key, item in value.items():
            _xml_append(child, str(key), item)
    elif isinstance(value, list):
        for item in value:
            _xml_append(child, "item", item)
    elif isinstance(value, bool):
        child.text = "true" if value else "false"
    elif value is not None:
        child.text = _xml_text(str(value))


def to_xml(root: str, document: dict[str, Any]) -> bytes:
    """The same tree as the JSON document, as XML under ``root`` (lists become ``<item>``s)."""
    element = ElementTree.Element(root)
    for key, value in document.items():
        _xml_append(element, key, value)
    document_bytes: bytes = ElementTree.tostring(element, encoding="utf-8", xml_declaration=True)
    return document_bytes


def build_payload(
    config: WebhookConfig,
    family: TriggerFamily,
    trigger: str,
    events: list[DomainEvent],
    sent_at: int,
    portal_url: str,
) -> Payload:
    """The body of one attempt: the trigger family picks the shape, the format the syntax."""
    if family is TriggerFamily.DEVICE:
        document = device_document(config, events[0], trigger)
        root = "JSSEvent"
    elif family is TriggerFamily.CATALOG and config.payload_shape is not PayloadShape.PORTAL:
        document = standard_document(events[0])
        root = "event"
    else:
        document = portal_document(config, events, sent_at, portal_url)
        root = "webhookPayload"
    if config.payload_format is PayloadFormat.XML:
        return Payload(to_xml(root, document), XML_CONTENT_TYPE)
    body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return Payload(body, JSON_CONTENT_TYPE)
