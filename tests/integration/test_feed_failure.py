"""A view that stops following its topic is never silent: /readyz says why and the sender stops."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from kafka import KafkaProducer

from hookstream.feeds import CompactedFeed
from hookstream.ops import OpsServer
from hookstream.sender import _stop_on_frozen_view

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
    make_settings: Any,
) -> None:
    settings = make_settings()
    topic = settings.topics.webhooks
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    try:
        producer.send(topic, key=b"a", value=b"fine", partition=0).get(timeout=30)
    finally:
        producer.close()

    async def scenario() -> None:
        view = BrokenView(settings.kafka_bootstrap, topic)
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
