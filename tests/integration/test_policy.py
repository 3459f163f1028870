"""The global delivery policy changes at run time: the sender follows without a restart."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from hookstream.client import HookstreamClient
from hookstream.records.models import (
    DeactivationPolicy,
    DeliveryPolicy,
    DomainEvent,
    WebhookConfig,
    now_ms,
)
from hookstream.settings import Settings
from support import Behaviour, Pipeline, Receiver, StatusReader, wait_until

pytestmark = pytest.mark.integration


def test_attempts_and_spacing_follow_the_settings_topic(
    make_settings: Callable[..., Settings],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    settings: Settings = make_settings(max_attempts=3, retry_interval_s=1)
    bootstrap = settings.kafka_bootstrap or ""
    pipeline = Pipeline(settings, tmp_path)
    client = HookstreamClient(bootstrap, settings.topics)
    statuses = StatusReader(bootstrap, settings)
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        webhook = WebhookConfig(
            webhook_id=f"policy-{uuid.uuid4().hex[:6]}",
            name="Failing",
            payload_url=receiver.url("/down", Behaviour(status=502)),
            triggers=["/items"],
            deactivation_policy=DeactivationPolicy(number_of_failures=100),
        )
        client.register_webhook(webhook)
        client.wait_for_webhooks({webhook.webhook_id}, timeout_s=30)

        def publish() -> None:
            client.publish_event(
                DomainEvent(
                    event_id=str(uuid.uuid4()),
                    source="items",
                    operation="add",
                    occurred_at=now_ms(),
                )
            )

        publish()
        wait_until(
            lambda: len([s for s in statuses.of(webhook.webhook_id) if s.final]) == 1,
            30,
            "3 attempts",
        )
        assert len(receiver.on("/down")) == 3

        client.set_delivery_policy(
            DeliveryPolicy(max_attempts=5, retry_interval_s=1.0, request_timeout_s=5.0)
        )
        # The sender has the new policy once a delivery reports max_attempts=5.
        publish()
        wait_until(
            lambda: len([s for s in statuses.of(webhook.webhook_id) if s.final]) == 2,
            60,
            "5 attempts",
        )
        finals = [s for s in statuses.of(webhook.webhook_id) if s.final]
        assert finals[-1].attempt == 5
        assert finals[-1].max_attempts == 5
        assert len(receiver.on("/down")) == 3 + 5
    finally:
        pipeline.stop()
        statuses.close()
        client.close()
