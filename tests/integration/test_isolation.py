"""Isolation: a slow or dead receiver never holds up another webhook (real broker, receivers)."""

from __future__ import annotations

import re
import socket
import time
import urllib.request
import uuid
from collections.abc import Callable

import pytest

from hookstream.client import HookstreamClient
from hookstream.records.ids import delivery_id_for
from hookstream.records.models import Outcome, WebhookConfig
from hookstream.settings import Settings
from support import (
    Behaviour,
    Pipeline,
    Receiver,
    StatusReader,
    StatusReaderFactory,
    make_event,
    register_and_wait,
    wait_until,
)

pytestmark = pytest.mark.integration

#: The slow receiver's answer time; the fast webhook must be done in well under it.
SLOW_S = 8.0
#: More slow jobs than the sender's 64 global slots, so one webhook could take them all.
SLOW_EVENTS = 80
FAST_EVENTS = 40


def _metric(sender_log: str, series: str) -> float:
    """The value of one series on the sender's /metrics (its port is in its log)."""
    found = re.search(r"ops endpoints on (http://[0-9.]+:[0-9]+)", sender_log)
    assert found, "the sender did not log its ops address"
    with urllib.request.urlopen(found.group(1) + "/metrics", timeout=10) as response:  # noqa: S310
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} is not on the sender's /metrics")


#: How long the receiver of the parking test takes while slow (seconds).
BLIP_S = 8.0


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_a_fast_webhook_is_not_held_up_by_a_slow_one(
    make_settings: Callable[..., Settings],
    pipeline_factory: Callable[[Settings], Pipeline],
    receiver: Receiver,
) -> None:
    settings: Settings = make_settings()
    per_webhook = settings.delivery.per_webhook_concurrency
    pipeline: Pipeline = pipeline_factory(settings)
    client = HookstreamClient(settings.kafka_bootstrap or "", settings.topics)
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        slow = WebhookConfig(
            webhook_id=_id("slow"),
            name="Slow",
            payload_url=receiver.url("/slow", Behaviour(delay_s=SLOW_S)),
            triggers=["/groups"],
            read_timeout_s=SLOW_S * 3,
        )
        fast = WebhookConfig(
            webhook_id=_id("fast"),
            name="Fast",
            payload_url=receiver.url("/fast"),
            triggers=["/users/signin"],
        )
        register_and_wait(client, slow, fast)
        for n in range(SLOW_EVENTS):
            client.publish_event(make_event("groups", "update", f"g{n}"))
        wait_until(
            lambda: len(receiver.on("/slow")) >= per_webhook, 60, "the slow webhook's first wave"
        )

        started = time.monotonic()
        events = [make_event("users", "signin", f"u{n}") for n in range(FAST_EVENTS)]
        for event in events:
            client.publish_event(event)
        wanted = {delivery_id_for(event.event_id, fast.webhook_id) for event in events}
        wait_until(
            lambda: {r.headers["webhook-id"] for r in receiver.on("/fast")} >= wanted,
            60,
            "every delivery to the fast webhook",
        )
        took = time.monotonic() - started
        slow_so_far = len(receiver.on("/slow"))

        assert took < SLOW_S / 2, (
            f"the fast webhook took {took:.1f} s beside a receiver answering in {SLOW_S:g} s"
        )
        # Still inside the slow receiver's first answer time: only its own slots were used.
        assert slow_so_far == per_webhook
    finally:
        client.close()


def _refused_url() -> str:
    """A 127.0.0.1 URL where nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/dead"


def test_a_dead_receiver_gets_probes_and_its_held_jobs_say_why(
    make_settings: Callable[..., Settings],
    pipeline_factory: Callable[[Settings], Pipeline],
    status_reader_factory: StatusReaderFactory,
    receiver: Receiver,
) -> None:
    failures = 3
    settings: Settings = make_settings(
        circuit_failures=failures, circuit_open_s=30, retry_interval_s=1, max_attempts=5
    )
    pipeline: Pipeline = pipeline_factory(settings)
    statuses: StatusReader = status_reader_factory(settings)
    client = HookstreamClient(settings.kafka_bootstrap or "", settings.topics)
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        dead = WebhookConfig(
            webhook_id=_id("dead"), name="Dead", payload_url=_refused_url(), triggers=["/groups"]
        )
        fast = WebhookConfig(
            webhook_id=_id("fast"),
            name="Fast",
            payload_url=receiver.url("/fast"),
            triggers=["/users/signin"],
        )
        register_and_wait(client, dead, fast)
        dead_events = [make_event("groups", "update", f"g{n}") for n in range(20)]
        for event in dead_events:
            client.publish_event(event)
        wanted_dead = {delivery_id_for(event.event_id, dead.webhook_id) for event in dead_events}

        def held() -> set[str]:
            return {
                s.delivery_id or ""
                for s in statuses.of(dead.webhook_id)
                if s.outcome is Outcome.HELD and not s.final
            }

        # Every job beyond the first failures is held back by the open circuit and says why.
        wait_until(
            lambda: len(held()) >= len(wanted_dead) - failures, 60, "the held jobs' status records"
        )
        records = statuses.of(dead.webhook_id)
        attempts = [s for s in records if s.outcome is Outcome.FAILED]
        holds = [s for s in records if s.outcome is Outcome.HELD]
        assert held() <= wanted_dead
        assert all("circuit is open" in (s.error or "") for s in holds)
        assert all(s.next_attempt_at is not None and not s.final for s in holds)
        # Held jobs cost no attempt: only the failures that opened the circuit were made (the
        # requests already under way when it opened fail too, at most one per slot).
        limit = settings.delivery.per_webhook_concurrency
        assert failures <= len(attempts) <= failures + limit
        assert not [s for s in attempts if s.final], "no delivery may fail for good yet"

        # Meanwhile, another webhook is delivered at once.
        events = [make_event("users", "signin", f"u{n}") for n in range(20)]
        for event in events:
            client.publish_event(event)
        wanted = {delivery_id_for(event.event_id, fast.webhook_id) for event in events}
        wait_until(
            lambda: {r.headers["webhook-id"] for r in receiver.on("/fast")} >= wanted,
            30,
            "every delivery to the healthy webhook",
        )
    finally:
        client.close()


def test_parked_jobs_of_a_slow_webhook_are_all_delivered_with_their_ids(
    make_settings: Callable[..., Settings],
    pipeline_factory: Callable[[Settings], Pipeline],
    receiver: Receiver,
) -> None:
    """Jobs parked on the retry topic come back with the same delivery id and attempt."""
    settings: Settings = make_settings(per_webhook_concurrency=2, lane_max_wait_s=0.5)
    pipeline: Pipeline = pipeline_factory(settings)
    client = HookstreamClient(settings.kafka_bootstrap or "", settings.topics)
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        slow = WebhookConfig(
            webhook_id=_id("slow"),
            name="Slow",
            payload_url=receiver.url("/slow", Behaviour(delay_s=1.0)),
            triggers=["/groups"],
        )
        register_and_wait(client, slow)
        events = [make_event("groups", "update", f"g{n}") for n in range(12)]
        for event in events:
            client.publish_event(event)
        wanted = {delivery_id_for(event.event_id, slow.webhook_id) for event in events}
        wait_until(
            lambda: {r.headers["webhook-id"] for r in receiver.on("/slow")} >= wanted,
            90,
            "every delivery to the slow webhook",
        )
        requests = receiver.on("/slow")
        assert {r.headers["x-hookstream-attempt"] for r in requests} == {"1"}
        assert len(requests) == len(wanted)
        assert pipeline.sender is not None
        assert (
            _metric(pipeline.sender.log_text(), 'hookstream_jobs_parked_total{reason="backlog"}')
            > 0
        )
    finally:
        client.close()


def test_parked_jobs_start_early_once_their_webhook_answers_quickly_again(
    make_settings: Callable[..., Settings],
    pipeline_factory: Callable[[Settings], Pipeline],
    receiver: Receiver,
) -> None:
    """A backlog parked while its receiver was slow (due minutes later, booked one after the
    other at the slow pace) is delivered as soon as the receiver is quick again."""
    settings: Settings = make_settings(per_webhook_concurrency=2, lane_max_wait_s=0.5)
    pipeline: Pipeline = pipeline_factory(settings)
    client = HookstreamClient(settings.kafka_bootstrap or "", settings.topics)
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        hook = WebhookConfig(
            webhook_id=_id("blip"),
            name="Blip",
            payload_url=receiver.url("/blip", Behaviour(delay_s=BLIP_S)),
            triggers=["/groups"],
        )
        register_and_wait(client, hook)
        # Two slow requests finish (the sender learns: BLIP_S each), two more hang...
        for n in range(4):
            client.publish_event(make_event("groups", "update", f"slow{n}"))
        wait_until(lambda: len(receiver.on("/blip")) >= 4, 60, "four slow requests")
        # ...while the receiver turns quick and a backlog arrives: parked at the slow pace (two
        # slots, BLIP_S each: the last of them due about 20 * BLIP_S later).
        receiver.behaviours["/blip"] = Behaviour()
        events = [make_event("groups", "update", f"g{n}") for n in range(40)]
        for event in events:
            client.publish_event(event)
        wanted = {delivery_id_for(event.event_id, hook.webhook_id) for event in events}
        wait_until(
            lambda: {r.headers["webhook-id"] for r in receiver.on("/blip")} >= wanted,
            5 * BLIP_S,
            "every parked delivery, long before its parking time",
        )
        assert pipeline.sender is not None
        assert (
            _metric(pipeline.sender.log_text(), 'hookstream_jobs_parked_total{reason="backlog"}')
            > 0
        )
    finally:
        client.close()
