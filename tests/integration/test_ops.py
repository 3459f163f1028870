"""Each service serves /metrics, /healthz and /readyz, started as the image starts it."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import pytest

from hookstream.client import HookstreamClient
from hookstream.records.models import DomainEvent, WebhookConfig, now_ms
from hookstream.settings import OpsSettings, Settings
from support import Behaviour, Pipeline, Receiver, wait_until

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(base: str) -> bool:
    return httpx.get(f"{base}/readyz").status_code == 200


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_health_and_readiness(
    make_settings: Callable[..., Settings], receiver: Receiver, tmp_path: Path
) -> None:
    settings: Settings = make_settings()
    matcher_port, sender_port = _free_port(), _free_port()
    settings = settings.model_copy(
        update={"ops": OpsSettings(matcher_port=matcher_port, sender_port=sender_port)}
    )
    pipeline = Pipeline(settings, tmp_path)
    client = HookstreamClient(settings.kafka_bootstrap or "", settings.topics)
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        for port in (matcher_port, sender_port):
            base = f"http://127.0.0.1:{port}"
            assert httpx.get(f"{base}/healthz").status_code == 200
            wait_until(partial(_ready, base), 30, f"{base} ready")
        webhook = WebhookConfig(
            webhook_id=f"ops-{uuid.uuid4().hex[:6]}",
            name="Ops",
            payload_url=receiver.url("/ops"),
            triggers=["/items"],
        )
        client.register_webhook(webhook)
        client.wait_for_webhooks({webhook.webhook_id}, timeout_s=30)
        client.publish_event(
            DomainEvent(event_id="ops-1", source="items", operation="add", occurred_at=now_ms())
        )
        wait_until(lambda: receiver.on("/ops"), 30, "the delivery")

        def sender_metrics() -> str:
            return httpx.get(f"http://127.0.0.1:{sender_port}/metrics").text

        text = wait_until(
            lambda: (
                t
                if _metric(
                    t := sender_metrics(), 'hookstream_deliveries_total{outcome="delivered"}'
                )
                >= 1
                else None
            ),
            30,
            "the sender's delivered counter",
        )
        assert _metric(text, "hookstream_attempt_duration_seconds_count") >= 1
        assert "hookstream_requests_in_flight" in text
        matcher_text = httpx.get(f"http://127.0.0.1:{matcher_port}/metrics").text
        assert _metric(matcher_text, "hookstream_events_consumed_total") >= 1
        assert _metric(matcher_text, "hookstream_jobs_produced_total") >= 1
        # A failed attempt is logged at the default level (a delivered one only at DEBUG: its
        # status record says it), as one JSON line with the delivery and webhook ids.
        failing = WebhookConfig(
            webhook_id=f"ops-fail-{uuid.uuid4().hex[:6]}",
            name="Ops failing",
            payload_url=receiver.url("/ops-fail", Behaviour(status=500)),
            triggers=["/groups"],
        )
        client.register_webhook(failing)
        client.wait_for_webhooks({failing.webhook_id}, timeout_s=30)
        client.publish_event(
            DomainEvent(event_id="ops-2", source="groups", operation="add", occurred_at=now_ms())
        )
        assert pipeline.sender is not None
        sender_log = pipeline.sender

        def failure_lines() -> list[dict[str, object]]:
            return [
                json.loads(line)
                for line in sender_log.log_text().splitlines()
                if line.startswith("{") and "attempt 1" in line
            ]

        lines = wait_until(failure_lines, 30, "the failed attempt's log line")
        assert all(
            entry["webhook_id"] == failing.webhook_id and entry["delivery_id"] for entry in lines
        )
    finally:
        pipeline.stop()
        client.close()
