"""At least once: killing the sender or the matcher mid-batch loses no delivery."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import pytest

from hookstream.client import HookstreamClient
from hookstream.models import DomainEvent, WebhookConfig, delivery_id_for, now_ms
from hookstream.settings import Settings
from support import Behaviour, Pipeline, Receiver, wait_until

pytestmark = pytest.mark.integration

EVENTS = 150


def _events(resource_prefix: str) -> list[DomainEvent]:
    return [
        DomainEvent(
            event_id=str(uuid.uuid4()),
            source="items",
            operation="update",
            resource_id=f"{resource_prefix}{n}",
            occurred_at=now_ms(),
        )
        for n in range(EVENTS)
    ]


def _received_ids(receiver: Receiver, path: str) -> set[str]:
    return {request.headers["webhook-id"] for request in receiver.on(path)}


@pytest.mark.parametrize("victim", ["sender", "matcher"])
def test_killed_service_restarts_and_every_job_is_delivered(
    victim: str,
    make_settings,
    receiver: Receiver,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    settings: Settings = make_settings(concurrency=4, retry_interval_s=1)
    pipeline = Pipeline(settings, tmp_path)
    client = HookstreamClient(settings.kafka_bootstrap or "", settings.topics)
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        webhook = WebhookConfig(
            webhook_id=f"crash-{uuid.uuid4().hex[:6]}",
            name="Crash",
            payload_url=receiver.url("/crash", Behaviour(delay_s=0.02)),
            triggers=["/items/update"],
        )
        client.register_webhook(webhook)
        client.wait_for_webhooks({webhook.webhook_id}, timeout_s=30)
        events = _events("r")
        for event in events:
            client.publish_event(event)
        wanted = {delivery_id_for(event.event_id, webhook.webhook_id) for event in events}

        wait_until(lambda: len(receiver.on("/crash")) >= 20, 60, "some deliveries before the crash")
        service = pipeline.sender if victim == "sender" else pipeline.matcher
        assert service is not None
        service.stop(sig=signal.SIGKILL)
        delivered_before_restart = len(_received_ids(receiver, "/crash"))
        assert delivered_before_restart < EVENTS, "the crash came too late to prove anything"
        if victim == "sender":
            pipeline.start_sender()
        else:
            pipeline.start_matcher()

        wait_until(
            lambda: _received_ids(receiver, "/crash") >= wanted, 120, f"all {EVENTS} deliveries"
        )
        assert _received_ids(receiver, "/crash") == wanted
    finally:
        pipeline.stop()
        client.close()
