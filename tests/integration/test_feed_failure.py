"""A view that stops following its topic is never silent: /readyz says why and the sender stops."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from kafka import KafkaProducer
from pydantic import SecretStr

from hookstream.kafka.follower import CompactedFeed
from hookstream.ops import OpsServer
from hookstream.records.codec import encode
from hookstream.records.ids import generate_secret
from hookstream.records.models import WebhookConfig
from hookstream.sender.service import _stop_on_frozen_view
from hookstream.settings import Settings
from hookstream.views.directory import REVISION_HEADER
from support import ServiceProcess

pytestmark = pytest.mark.integration


class BrokenView(CompactedFeed):
    """A view whose ``apply`` fails on the record ``b"boom"`` (a bug, an authorization error)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(bootstrap, topic, "test-broken-view")
        self.applied: list[bytes] = []

    def apply(self, record: Any) -> None:
        if record.value == b"boom":
            raise RuntimeError("cannot apply this record")
        self.applied.append(record.value)


def _readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class FakeSender:
    def __init__(self) -> None:
        self.failures: list[BaseException] = []

    def fail(self, error: BaseException) -> None:
        self.failures.append(error)


def test_a_view_that_stops_following_turns_readyz_to_503_and_stops_the_sender(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    bootstrap = settings.kafka_bootstrap
    assert bootstrap is not None
    topic = settings.topics.webhooks
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        producer.send(topic, key=b"a", value=b"fine", partition=0).get(timeout=30)
    finally:
        producer.close()

    async def scenario() -> None:
        view = BrokenView(bootstrap, topic)
        ops = OpsServer(
            "127.0.0.1",
            0,
            ready=view.ready.is_set,
            problems=lambda: [problem] if (problem := view.problem()) else [],
        )
        sender = FakeSender()
        await ops.start()
        await view.start()
        watch = asyncio.create_task(_stop_on_frozen_view(sender, view))  # type: ignore[arg-type]
        try:
            await view.wait_ready(60)
            status, body = await asyncio.to_thread(_readyz, ops.port)
            assert (status, body["status"]) == (200, "ready")
            late = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
            try:
                await asyncio.to_thread(
                    lambda: late.send(topic, key=b"b", value=b"boom", partition=0).get(timeout=30)
                )
            finally:
                late.close()
            await asyncio.wait_for(view.failed.wait(), 60)
            assert not view.ready.is_set()
            status, body = await asyncio.to_thread(_readyz, ops.port)
            assert status == 503 and body["status"] == "failing"
            assert f"the view of {topic} stopped following it" in body["reasons"][0]
            assert "cannot apply this record" in body["reasons"][0]
            await asyncio.wait_for(watch, 10)
            assert [str(error) for error in sender.failures] == ["cannot apply this record"]
            assert view.applied == [b"fine"]
        finally:
            watch.cancel()
            await view.stop()
            await ops.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize("service", ["matcher", "sender"])
def test_a_wrong_secrets_key_stops_the_service_with_a_message(
    make_settings: Callable[..., Settings], tmp_path: Path, service: str
) -> None:
    """Webhooks with a secret must not silently vanish from the views: the service exits
    non-zero naming HOOKSTREAM_SECURITY__SECRETS_KEYS."""
    settings = make_settings()
    # A config as the registry writes it, its secret sealed with the test's key; the service
    # then starts with another key.
    config = WebhookConfig(
        webhook_id=f"keyed-{uuid.uuid4().hex[:8]}",
        name="Signed",
        payload_url="https://example.com/hook",
        triggers=["/items"],
        secret=SecretStr(generate_secret()),
    )
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    try:
        producer.send(
            settings.topics.webhooks,
            key=config.webhook_id.encode(),
            value=encode(config),
            headers=[(REVISION_HEADER, b"1")],
        ).get(timeout=30)
    finally:
        producer.close()
    other_key = Fernet.generate_key().decode()
    wrong = settings.model_copy(
        update={
            "security": settings.security.model_copy(
                update={"secrets_keys": [SecretStr(other_key)]}
            )
        }
    )
    process = ServiceProcess(service, wrong, tmp_path)
    try:
        code = process.process.wait(timeout=120)
    finally:
        process.stop()
    log = process.log_text()
    assert code != 0, log[-3000:]
    assert "HOOKSTREAM_SECURITY__SECRETS_KEYS" in log, log[-3000:]
