"""Hostile receivers: every malformed answer is a recorded, retried, counted failure; no stall.

Real matcher and sender processes, a real broker, and raw TCP receivers on 127.0.0.1 that send
what no HTTP server would (see ``hostile.py``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest
from kafka import KafkaConsumer, TopicPartition

from hookstream.client import HookstreamClient
from hookstream.core.payloads import Payload
from hookstream.kafka.topics import create_topics
from hookstream.net.delivery import AttemptResult, post
from hookstream.net.egress import make_http_client
from hookstream.records.models import DeactivationPolicy, DeliveryStatus, Outcome, WebhookConfig
from hookstream.settings import Settings
from hostile import MALFORMED, HostileReceiver, drip, send_bytes
from support import (
    Pipeline,
    StatusReader,
    make_event,
    register_and_wait,
    unique_settings,
    wait_until,
)

pytestmark = pytest.mark.integration

ATTEMPTS = 2


@pytest.fixture
def hostile() -> Iterator[HostileReceiver]:
    server = HostileReceiver()
    yield server
    server.close()


def _sender_lag(bootstrap: str, settings: Settings) -> dict[int, tuple[int, int]]:
    """Partitions of the deliveries topic whose committed offset is behind the end: (end, at).

    The consumer only fetches the group's committed offsets; it never joins the group."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"{settings.app_id}-sender",
        enable_auto_commit=False,
    )
    try:
        topic = settings.topics.deliveries
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        ends = consumer.end_offsets(partitions)
        lag = {}
        for tp, end in ends.items():
            at = consumer.committed(tp) or 0
            if at < end:
                lag[tp.partition] = (end, at)
    finally:
        consumer.close(autocommit=False)
    return lag


def test_malformed_answers_are_recorded_retried_and_counted_and_commits_go_on(
    kafka_bootstrap: str, hostile: HostileReceiver, tmp_path: Path
) -> None:
    settings = unique_settings(kafka_bootstrap, retry_interval_s=1.0, max_attempts=ATTEMPTS)
    create_topics(kafka_bootstrap, settings.topics)
    pipeline = Pipeline(settings, tmp_path)
    client = HookstreamClient(kafka_bootstrap, settings.topics)
    statuses = StatusReader(kafka_bootstrap, settings)
    resource = f"i{uuid.uuid4().hex[:6]}"
    answers = {name: send_bytes(data) for name, data in MALFORMED.items()}
    answers["endless-headers"] = drip(b"HTTP/1.1 200 OK\r\n", b"X-More: yes\r\n", 0.01)
    answers["always-500"] = send_bytes(
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\nno"
    )
    failing = {
        name: WebhookConfig(
            webhook_id=f"{name}-{uuid.uuid4().hex[:6]}",
            name=name,
            payload_url=hostile.url(f"/{name}", answer),
            triggers=[f"/items/{resource}"],
            deactivation_policy=DeactivationPolicy(number_of_failures=1),
        )
        for name, answer in answers.items()
    }
    # A 2xx stands once its status line is in, however the body ends.
    cut = WebhookConfig(
        webhook_id=f"cut-{uuid.uuid4().hex[:6]}",
        name="cut",
        payload_url=hostile.url(
            "/cut", send_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        ),
        triggers=[f"/items/{resource}"],
    )
    dripping = WebhookConfig(
        webhook_id=f"drip-{uuid.uuid4().hex[:6]}",
        name="drip",
        payload_url=hostile.url(
            "/drip", drip(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nstart", b".", 0.2)
        ),
        triggers=[f"/items/{resource}"],
        read_timeout_s=1,
    )
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        register_and_wait(client, *failing.values(), cut, dripping)
        client.publish_event(make_event("items", "update", resource))

        def deactivated(webhook: WebhookConfig) -> list[DeliveryStatus]:
            return [s for s in statuses.of(webhook.webhook_id) if s.outcome is Outcome.DEACTIVATED]

        for name, webhook in failing.items():
            wait_until(partial(deactivated, webhook), 90, f"{name} to be deactivated")
            attempts = sorted(
                (s for s in statuses.of(webhook.webhook_id) if s.delivery_id is not None),
                key=lambda s: s.attempt,
            )
            assert [s.attempt for s in attempts] == [1, 2], (name, attempts)
            first, last = attempts
            assert not first.final and first.next_attempt_at is not None, name
            assert last.final and last.outcome is Outcome.FAILED, name
            if name == "always-500":
                assert last.http_status == 500
            else:
                assert last.http_status is None, name
                assert "malformed answer" in (first.error or ""), (name, first.error)
                assert "malformed answer" in (last.error or ""), (name, last.error)
            assert hostile.on(f"/{name}") == ATTEMPTS, name

        def finals(webhook: WebhookConfig) -> list[DeliveryStatus]:
            return [s for s in statuses.of(webhook.webhook_id) if s.final]

        for webhook, excerpt in ((cut, "partial"), (dripping, "start")):
            [done] = wait_until(partial(finals, webhook), 60, f"{webhook.name} to be judged")
            assert done.outcome is Outcome.DELIVERED, done
            assert done.http_status == 200
            assert (done.response_excerpt or "").startswith(excerpt), done

        latest = client.latest_webhooks()
        assert not any(latest[w.webhook_id].active for w in failing.values())
        assert latest[cut.webhook_id].active and latest[dripping.webhook_id].active
        # Every job's offset was done: the sender group's committed offsets reach the end.
        wait_until(
            lambda: _sender_lag(kafka_bootstrap, settings) == {},
            60,
            "the sender to commit every delivery job",
        )
    finally:
        pipeline.stop()
        statuses.close()
        client.close()


UNBUILDABLE_HEADERS = ["caf\u00e9", "a\u2028b", "a\u0085b", "a\x01b", "a\x7fb"]


async def _post_all(
    settings: Settings, urls_and_headers: list[tuple[str, dict[str, str]]]
) -> list[AttemptResult]:
    payload = Payload(b"{}", "application/json")
    async with make_http_client(settings) as http:
        return [
            await post(http, url, payload, headers, httpx.Timeout(5.0), 10.0, 1024)
            for url, headers in urls_and_headers
        ]


def test_a_request_that_cannot_be_built_is_a_permanent_failure_and_sends_nothing(
    hostile: HostileReceiver,
) -> None:
    settings = unique_settings("127.0.0.1:1")
    port = hostile.port
    cases: list[tuple[str, dict[str, str]]] = [
        (hostile.url("/h"), {"X-Token": value}) for value in UNBUILDABLE_HEADERS
    ]
    cases += [
        (f"http://0177.0.0.1:{port}/h", {}),
        (f"https://xn--:{port}/h", {}),
        (f"http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:{port}/h", {}),
    ]
    results = asyncio.run(_post_all(settings, cases))
    for (url, headers), result in zip(cases, results, strict=True):
        assert result.permanent, (url, headers, result)
        assert result.http_status is None
        assert (result.error or "").startswith("the request could not be built"), result
    assert hostile.connections == 0


def test_secret_header_values_are_not_in_the_error(hostile: HostileReceiver) -> None:
    settings = unique_settings("127.0.0.1:1")
    secret = "s3cr\u00e9t-" + uuid.uuid4().hex
    [result] = asyncio.run(_post_all(settings, [(hostile.url("/h"), {"X-Token": secret})]))
    assert result.permanent
    assert secret not in (result.error or "")
