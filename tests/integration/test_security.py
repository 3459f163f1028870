"""Security on the real pipeline: signatures, the SSRF guard, secrets at rest, hostile input."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from hookstream.client import HookstreamClient
from hookstream.kafka.topics import create_topics
from hookstream.records.codec import encode
from hookstream.records.ids import generate_secret
from hookstream.records.models import (
    DeactivationPolicy,
    DeadLetter,
    DeliveryStatus,
    Outcome,
    WebhookAuth,
    WebhookConfig,
)
from hookstream.settings import SecuritySettings, Settings
from support import (
    BLOCKED_ADDRESSES,
    Behaviour,
    Pipeline,
    Receiver,
    StatusReader,
    TopicReader,
    make_event,
    register_and_wait,
    unique_settings,
    url_host,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secured(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Pipeline, HookstreamClient, StatusReader]]:
    """A pipeline that may reach 127.0.0.1 (the receivers) and nothing else private."""
    settings = unique_settings(kafka_bootstrap, retry_interval_s=1.0, max_attempts=2)
    create_topics(kafka_bootstrap, settings.topics)
    pipeline = Pipeline(settings, tmp_path_factory.mktemp("logs"))
    client = HookstreamClient(kafka_bootstrap, settings.topics)
    statuses = StatusReader(kafka_bootstrap, settings)
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        yield pipeline, client, statuses
    finally:
        pipeline.stop()
        statuses.close()
        client.close()


def test_deliveries_are_signed_and_rotation_sends_both_signatures(
    secured: tuple[Pipeline, HookstreamClient, StatusReader], receiver: Receiver
) -> None:
    pipeline, client, statuses = secured
    first, second = generate_secret(), generate_secret()
    resource = f"i{uuid.uuid4().hex[:6]}"
    webhook = WebhookConfig(
        webhook_id=f"signed-{uuid.uuid4().hex[:6]}",
        name="Signed",
        payload_url=receiver.url("/signed"),
        triggers=[f"/items/{resource}"],
        secret=SecretStr(first),
        esri_signature=True,
    )
    register_and_wait(client, webhook)
    client.publish_event(make_event("items", "update", resource))
    [request] = wait_until(lambda: receiver.on("/signed"), 30, "the signed delivery")
    Webhook(first).verify(request.body, request.headers)
    assert request.headers["x-esrihook-signature"].startswith("sha256=")

    client.register_webhook(webhook.model_copy(update={"secret": SecretStr(second)}))
    wait_until(
        lambda: client.latest_webhooks()[webhook.webhook_id].previous_secret is not None,
        30,
        "the rotation",
    )
    client.publish_event(make_event("items", "share", resource))
    rotated = wait_until(lambda: receiver.on("/signed")[1:], 30, "the delivery after rotation")[0]
    assert len(rotated.headers["webhook-signature"].split(" ")) == 2
    Webhook(second).verify(rotated.body, rotated.headers)
    Webhook(first).verify(rotated.body, rotated.headers)


def test_redirect_to_a_private_address_is_not_followed(
    secured: tuple[Pipeline, HookstreamClient, StatusReader], receiver: Receiver
) -> None:
    pipeline, client, statuses = secured
    resource = f"g{uuid.uuid4().hex[:6]}"
    webhook = WebhookConfig(
        webhook_id=f"redirect-{uuid.uuid4().hex[:6]}",
        name="Redirect",
        payload_url=receiver.url(
            "/moved", Behaviour(status=302, headers={"Location": "http://10.0.0.1/steal"})
        ),
        triggers=[f"/groups/{resource}"],
        deactivation_policy=DeactivationPolicy(number_of_failures=100),
    )
    register_and_wait(client, webhook)
    client.publish_event(make_event("groups", "update", resource))
    final = wait_until(
        lambda: [s for s in statuses.of(webhook.webhook_id) if s.final], 30, "the final attempt"
    )
    assert final[0].http_status == 302
    assert "redirects are not followed" in (final[0].error or "")
    assert len(receiver.on("/moved")) == 2  # both attempts hit the receiver; nothing followed


def test_ten_thousand_garbled_records_are_dead_lettered_while_valid_events_flow(
    secured: tuple[Pipeline, HookstreamClient, StatusReader],
    receiver: Receiver,
    kafka_bootstrap: str,
) -> None:
    pipeline, client, statuses = secured
    settings: Settings = pipeline.settings
    resource = f"u{uuid.uuid4().hex[:6]}"
    webhook = WebhookConfig(
        webhook_id=f"steady-{uuid.uuid4().hex[:6]}",
        name="Steady",
        payload_url=receiver.url("/steady"),
        triggers=[f"/users/{resource}"],
    )
    register_and_wait(client, webhook)
    valid = encode(make_event("users", "signin", resource))
    rng = random.Random(1234)
    garbage: list[bytes] = []
    for n in range(10_000):
        kind = n % 4
        if kind == 0:
            garbage.append(rng.randbytes(rng.randint(0, 200)))
        elif kind == 1:
            garbage.append(valid[: rng.randint(0, len(valid) - 1)])  # truncated
        elif kind == 2:
            garbage.append(
                valid[:10] + rng.randbytes(rng.randint(1, 100))
            )  # right header, bad body
        else:
            garbage.append(b"\xc3\x01" + rng.randbytes(8) + valid[10:])  # unknown fingerprint
    marker = f"fuzz-{uuid.uuid4().hex[:6]}".encode()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=20)
    topic = settings.topics.events[0]
    valid_events = []
    for n, value in enumerate(garbage):
        producer.send(topic, key=marker, value=value)
        if n % 1000 == 0:
            event = make_event("users", "signin", resource)
            valid_events.append(event)
            producer.send(topic, key=resource.encode(), value=encode(event))
    producer.flush(timeout=60)
    producer.close()

    dead = TopicReader(kafka_bootstrap, settings.topics.deadletter, DeadLetter)
    try:
        letters = wait_until(
            lambda: (
                found
                if len(found := [d for d in dead.snapshot() if d.key == marker]) >= 10_000
                else None
            ),
            180,
            "10,000 dead letters",
        )
    finally:
        dead.close()
    wait_until(
        lambda: len(receiver.on("/steady")) >= len(valid_events), 60, "every valid event's delivery"
    )
    assert len(letters) == 10_000
    assert {letter.value or b"" for letter in letters} == set(garbage)
    assert all(letter.reason and letter.source_topic == topic for letter in letters)
    assert len({(letter.partition, letter.offset) for letter in letters}) == 10_000


def test_a_name_resolving_to_loopback_is_refused_when_loopback_is_not_allowed(
    make_settings: Callable[..., Settings], receiver: Receiver, tmp_path: Path
) -> None:
    settings: Settings = make_settings(max_attempts=1)
    settings = settings.model_copy(
        update={
            "security": SecuritySettings(
                allow_networks=[], secrets_keys=settings.security.secrets_keys
            )
        }
    )
    pipeline = Pipeline(settings, tmp_path)
    client = HookstreamClient(settings.kafka_bootstrap or "", settings.topics)
    statuses = StatusReader(settings.kafka_bootstrap or "", settings)
    port = receiver.server.server_address[1]
    urls = {
        "by-name": f"http://localhost:{port}/by-name",
        **{
            f"{reason.replace(' ', '-')}-{n}": f"http://{url_host(address)}:{port}/h"
            for n, (address, reason) in enumerate(BLOCKED_ADDRESSES.items())
        },
    }
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        webhooks = [
            WebhookConfig(
                webhook_id=f"{name}-{uuid.uuid4().hex[:6]}",
                name=name,
                payload_url=url,
                triggers=["/roles"],
            )
            for name, url in urls.items()
        ]
        register_and_wait(client, *webhooks)
        client.publish_event(make_event("roles", "add", "r1"))

        def finals(webhook: WebhookConfig) -> list[DeliveryStatus]:
            return [s for s in statuses.of(webhook.webhook_id) if s.final]

        for webhook in webhooks:
            [status] = wait_until(partial(finals, webhook), 30, f"{webhook.name} refused")
            assert status.outcome is Outcome.FAILED
            assert "refused:" in (status.error or ""), status.error
            assert "HOOKSTREAM_SECURITY__ALLOW_NETWORKS" in (status.error or "")
        assert receiver.requests == []
        by_name = [s for s in statuses.snapshot() if s.webhook_name == "by-name"][0]
        assert "localhost resolves to 127.0.0.1" in (
            by_name.error or ""
        ) or "localhost is a loopback" in (by_name.error or "")
    finally:
        pipeline.stop()
        statuses.close()
        client.close()


def test_no_secret_in_kafka_logs_or_status_after_a_full_run(
    secured: tuple[Pipeline, HookstreamClient, StatusReader],
    receiver: Receiver,
    kafka_bootstrap: str,
) -> None:
    pipeline, client, statuses = secured
    settings: Settings = pipeline.settings
    password, header_value, signing = (
        "pw-" + uuid.uuid4().hex,
        "hv-" + uuid.uuid4().hex,
        generate_secret(),
    )
    resource = f"s{uuid.uuid4().hex[:6]}"
    basic = WebhookConfig(
        webhook_id=f"basic-{uuid.uuid4().hex[:6]}",
        name="Basic",
        payload_url=receiver.url("/basic-secret", Behaviour(status=500)),
        triggers=[f"/items/{resource}"],
        auth=WebhookAuth(kind="basic", username="u", password=SecretStr(password)),
        secret=SecretStr(signing),
        deactivation_policy=DeactivationPolicy(number_of_failures=1),
    )
    header = WebhookConfig(
        webhook_id=f"header-{uuid.uuid4().hex[:6]}",
        name="Header",
        payload_url=receiver.url("/header-secret"),
        triggers=[f"/items/{resource}"],
        auth=WebhookAuth(kind="header", headers={"X-Token": SecretStr(header_value)}),
    )
    register_and_wait(client, basic, header)
    client.publish_event(make_event("items", "update", resource))
    wait_until(
        lambda: (
            any(s.outcome is Outcome.DEACTIVATED for s in statuses.of(basic.webhook_id))
            and receiver.on("/header-secret")
        ),
        60,
        "a failing delivery, a deactivation and a success",
    )
    # The receivers did get the credentials: they were sent, just never stored in the clear.
    assert receiver.on("/header-secret")[0].headers["x-token"] == header_value

    needles = [password.encode(), header_value.encode(), signing.encode(), signing[6:].encode()]
    consumer = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    consumer.subscribe([*settings.topics.all_names()])
    records = 0
    for message in consumer:
        records += 1
        blob = (
            (message.key or b"")
            + (message.value or b"")
            + b"".join(v for _, v in message.headers or [])
        )
        assert not any(needle in blob for needle in needles), (
            f"a secret is in plain text on {message.topic}"
        )
    consumer.close()
    assert records > 0
    for service in (pipeline.matcher, pipeline.sender):
        assert service is not None
        log_text = service.log_text()
        assert not any(needle.decode() in log_text for needle in needles), (
            f"a secret is in the {service.name} log"
        )
    for status in statuses.snapshot():
        dumped = status.model_dump_json()
        assert not any(needle.decode() in dumped for needle in needles)
    assert os.environ.get("HOOKSTREAM_SECURITY__SECRETS_KEYS")
