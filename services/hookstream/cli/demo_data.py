"""What ``hookstream demo`` publishes: its own event type, its sample webhooks (one per payload
family and auth kind, one whose receiver fails) and one sample event per webhook."""

from __future__ import annotations

import uuid

from hookstream.core.eventtypes import EventType
from hookstream.records.models import (
    DeactivationPolicy,
    DomainEvent,
    PayloadFormat,
    WebhookAuth,
    WebhookConfig,
    now_ms,
)

#: A producer's own event type, declared in the catalog (docs/events.md, "Event types").
ORDER_CREATED = EventType(
    source="orders",
    operation="created",
    description="A customer placed an order (the demo's own event type).",
    json_schema={
        "type": "object",
        "required": ["total"],
        "properties": {"total": {"type": "number"}, "currency": {"type": "string"}},
    },
    example={"total": 42.5, "currency": "EUR"},
)


def demo_custom_webhook(run: str, base_url: str) -> WebhookConfig:
    """A webhook on the declared ``orders.created`` type: Standard Webhooks JSON body."""
    return WebhookConfig(
        webhook_id=f"demo-orders-{run}",
        name="New orders (a declared event type)",
        payload_url=f"{base_url}/orders",
        triggers=["/orders/created"],
    )


def demo_webhooks(run: str, base_url: str) -> list[WebhookConfig]:
    """The three sample webhooks of one demo run (on the built-in vocabularies)."""
    return [
        WebhookConfig(
            webhook_id=f"demo-items-{run}",
            name="Item updates (portal JSON, basic auth)",
            payload_url=f"{base_url}/items",
            triggers=["/items/update", "/items/add"],
            auth=WebhookAuth(kind="basic", username="demo", password="demo-password"),  # noqa: S106
        ),
        WebhookConfig(
            webhook_id=f"demo-computers-{run}",
            name="New computers (device XML, header auth)",
            payload_url=f"{base_url}/computers",
            triggers=["ComputerAdded"],
            payload_format=PayloadFormat.XML,
            auth=WebhookAuth(kind="header", headers={"X-Api-Key": "demo-key"}),
        ),
        WebhookConfig(
            webhook_id=f"demo-failing-{run}",
            name="A receiver that is down",
            payload_url=f"{base_url}/fail",
            triggers=["/users/signin"],
            deactivation_policy=DeactivationPolicy(number_of_failures=1, days_in_past=1),
        ),
    ]


def demo_events() -> list[DomainEvent]:
    """Sample events: one per webhook above, and one that matches nothing."""
    now = now_ms()
    return [
        DomainEvent(
            event_id=str(uuid.uuid4()),
            source="items",
            operation="update",
            resource_id="9f3c2b",
            actor_username="alice",
            actor_user_id="u-17",
            occurred_at=now,
            properties={"title": "Parcels 2026", "tags": ["cadastre"]},
        ),
        DomainEvent.for_device_event(
            "ComputerAdded",
            {
                "deviceName": "lab-mac-07",
                "serialNumber": "C02XK1",
                "model": "MacBook Pro",
                "jssID": 7,
            },
        ),
        DomainEvent(
            event_id=str(uuid.uuid4()),
            source="users",
            operation="signin",
            resource_id="bob",
            actor_username="bob",
            occurred_at=now,
        ),
        DomainEvent(
            event_id=str(uuid.uuid4()),
            source="groups",
            operation="delete",
            resource_id="g-1",
            occurred_at=now,
        ),
        DomainEvent(
            event_id=str(uuid.uuid4()),
            source="orders",
            operation="created",
            resource_id="o-1001",
            occurred_at=now,
            properties={"total": 42.5, "currency": "EUR"},
        ),
    ]
