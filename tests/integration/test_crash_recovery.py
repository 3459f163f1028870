"""Restarts and crashes: at least once delivery, state rebuilt from the topics."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaProducer

from hookstream.client import HookstreamClient
from hookstream.records.codec import encode
from hookstream.records.ids import delivery_id_for
from hookstream.records.models import (
    DeactivationPolicy,
    DomainEvent,
    Outcome,
    WebhookConfig,
    now_ms,
)
from hookstream.settings import Settings
from support import (
    Behaviour,
    Pipeline,
    Receiver,
    StatusReaderFactory,
    make_event,
    register_and_wait,
    wait_until,
)

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
    make_settings: Callable[..., Settings],
    receiver: Receiver,
    tmp_path: Path,
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


def test_failure_count_survives_restarts_of_both_services(
    make_settings: Callable[..., Settings],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    """The count lives in the compacted config topic, so no restart forgets a failure."""
    settings: Settings = make_settings(max_attempts=1)
    pipeline = Pipeline(settings, tmp_path)
    client = HookstreamClient(settings.kafka_bootstrap or "", settings.topics)
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        webhook = WebhookConfig(
            webhook_id=f"count-{uuid.uuid4().hex[:6]}",
            name="Count",
            payload_url=receiver.url("/count", Behaviour(status=500)),
            triggers=["/groups"],
            deactivation_policy=DeactivationPolicy(number_of_failures=2, days_in_past=1),
        )
        register_and_wait(client, webhook)
        client.publish_event(make_event("groups", "update", "g1"))
        wait_until(
            lambda: len(client.latest_webhooks()[webhook.webhook_id].recent_failures) == 1,
            30,
            "the first failure to be counted",
        )
        pipeline.stop()
        pipeline.start_matcher()
        pipeline.start_sender()
        assert client.latest_webhooks()[webhook.webhook_id].active
        client.publish_event(make_event("groups", "update", "g2"))
        deactivated = wait_until(
            lambda: c if not (c := client.latest_webhooks()[webhook.webhook_id]).active else None,
            30,
            "the second failure, after the restarts, to deactivate the webhook",
        )
        assert len(deactivated.recent_failures) == 2
    finally:
        pipeline.stop()
        client.close()


def test_a_config_written_straight_to_the_topic_is_matched_within_a_second(
    make_settings: Callable[..., Settings],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    settings: Settings = make_settings()
    bootstrap = settings.kafka_bootstrap or ""
    pipeline = Pipeline(settings, tmp_path)
    client = HookstreamClient(bootstrap, settings.topics)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        webhook = WebhookConfig(
            webhook_id=f"direct-{uuid.uuid4().hex[:6]}",
            name="Direct",
            payload_url=receiver.url("/direct"),
            triggers=["/users/signin"],
        )
        written_at = time.monotonic()
        producer.send(
            settings.topics.webhooks, key=webhook.webhook_id.encode(), value=encode(webhook)
        ).get(30)
        published: dict[str, float] = {}
        for n in range(30):  # an event every 100 ms until one is delivered, at most 3 s
            event = make_event("users", "signin", f"u{n}")
            client.publish_event(event)
            published[event.event_id] = time.monotonic() - written_at
            if receiver.on("/direct"):
                break
            threading.Event().wait(0.1)
        [first, *_] = wait_until(lambda: receiver.on("/direct"), 30, "a delivery")
        first_event = json.loads(first.body)["events"][0]
        matched = [e for e, at in published.items() if at <= 1.0]
        assert matched, "no event was published within the first second"
        # Some event published within a second of the write was delivered: the config was live.
        delivered_ids = {delivery_id_for(event_id, webhook.webhook_id) for event_id in matched}
        wait_until(
            lambda: delivered_ids & {r.headers["webhook-id"] for r in receiver.on("/direct")},
            30,
            "a delivery of an event published within a second of the config",
        )
        assert first_event["operation"] == "signin"
    finally:
        producer.close()
        pipeline.stop()
        client.close()


def test_killed_sender_beside_a_slow_webhook_loses_no_pair(
    make_settings: Callable[..., Settings],
    status_reader_factory: StatusReaderFactory,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    """kill -9 of a sender while a slow webhook's jobs are parked on the retry topic and a fast
    one is mid-stream: every (event, webhook) pair ends delivered or failed for good."""
    settings: Settings = make_settings(retry_interval_s=1, lane_max_wait_s=0.5)
    statuses = status_reader_factory(settings)
    pipeline = Pipeline(settings, tmp_path)
    client = HookstreamClient(settings.kafka_bootstrap or "", settings.topics)
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        slow = WebhookConfig(
            webhook_id=f"slow-{uuid.uuid4().hex[:6]}",
            name="Slow",
            payload_url=receiver.url("/slow", Behaviour(delay_s=1.5)),
            triggers=["/items/update"],
        )
        fast = WebhookConfig(
            webhook_id=f"fast-{uuid.uuid4().hex[:6]}",
            name="Fast",
            payload_url=receiver.url("/fast", Behaviour(delay_s=0.02)),
            triggers=["/items/update"],
        )
        register_and_wait(client, slow, fast)
        events = _events("k")
        for event in events[: EVENTS // 3]:
            client.publish_event(event)
        wait_until(lambda: len(receiver.on("/slow")) >= 8, 60, "the slow webhook's first wave")
        for event in events[EVENTS // 3 :]:
            client.publish_event(event)
        wait_until(lambda: len(receiver.on("/fast")) >= 20, 60, "some fast deliveries")
        assert pipeline.sender is not None
        pipeline.sender.stop(sig=signal.SIGKILL)
        assert len(_received_ids(receiver, "/slow")) < EVENTS, "the crash came too late"
        pipeline.start_sender()

        def unaccounted() -> set[tuple[str, str]]:
            failed = {
                (s.webhook_id, s.delivery_id)
                for s in statuses.snapshot()
                if s.final and s.outcome is Outcome.FAILED
            }
            missing = set()
            for webhook, path in ((slow, "/slow"), (fast, "/fast")):
                received = _received_ids(receiver, path)
                for event in events:
                    delivery_id = delivery_id_for(event.event_id, webhook.webhook_id)
                    pair = (webhook.webhook_id, delivery_id)
                    if delivery_id not in received and pair not in failed:
                        missing.add(pair)
            return missing

        # 150 slow jobs at 8 at a time and 1.5 s each take about 30 s after the restart.
        wait_until(lambda: not unaccounted(), 240, "every (event, webhook) pair")
        assert not unaccounted()
        assert _received_ids(receiver, "/fast") == {
            delivery_id_for(event.event_id, fast.webhook_id) for event in events
        }
    finally:
        pipeline.stop()
        client.close()
