"""/readyz and /metrics say how far each view is behind its topic, without changing the status."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from hookstream.kafka import follower
from hookstream.kafka.follower import CompactedFeed
from hookstream.ops import OpsServer
from hookstream.settings import Settings

pytestmark = pytest.mark.integration


class CountingView(CompactedFeed):
    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(bootstrap, topic, "test-lag-view", poll_timeout_ms=100)
        self.applied = 0

    def apply(self, record: Any) -> None:
        self.applied += 1


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def _readyz_until(
    port: int, wanted: Callable[[dict[str, Any]], bool], timeout_s: float = 60
) -> tuple[int, dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        status, body = await asyncio.to_thread(_get, port, "/readyz")
        answer = json.loads(body)
        if wanted(answer) or time.monotonic() > deadline:
            return status, answer
        await asyncio.sleep(0.1)


def test_readyz_and_metrics_show_the_records_a_view_is_behind_its_topic(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings()
    bootstrap = settings.kafka_bootstrap
    assert bootstrap is not None
    topic = settings.topics.webhooks
    monkeypatch.setattr(follower, "LAG_REFRESH_S", 0.2)

    async def scenario() -> None:
        view = CountingView(bootstrap, topic)
        ops = OpsServer(
            "127.0.0.1",
            0,
            ready=view.ready.is_set,
            problems=lambda: [problem] if (problem := view.problem()) else [],
            views={"webhooks": view},
        )
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        await ops.start()
        await view.start()
        try:
            await view.wait_ready(60)
            status, body = await _readyz_until(
                ops.port, lambda body: body["views"]["webhooks"]["seconds_since_fresh"] is not None
            )
            assert status == 200 and body["status"] == "ready"
            assert body["views"]["webhooks"]["records_behind"] == 0
            # The view stops reading (as a slow or stuck one would); what is written meanwhile
            # is what it is behind.
            consumer: Any = view._consumer
            consumer.pause(*consumer.assignment())
            for number in range(7):
                value = f"record-{number}".encode()
                await producer.send_and_wait(topic, key=value, value=value)
            status, body = await _readyz_until(
                ops.port, lambda body: body["views"]["webhooks"]["records_behind"] == 7
            )
            assert body["views"]["webhooks"]["records_behind"] == 7, body
            # Lag alone does not make the service unready.
            assert (status, body["status"]) == (200, "ready")
            _, metrics = await asyncio.to_thread(_get, ops.port, "/metrics")
            assert 'hookstream_view_lag_records{view="webhooks"} 7.0' in metrics.decode()
            consumer.resume(*consumer.assignment())
            status, body = await _readyz_until(
                ops.port, lambda body: body["views"]["webhooks"]["records_behind"] == 0
            )
            assert body["views"]["webhooks"]["records_behind"] == 0, body
            assert view.applied == 7
        finally:
            await view.stop()
            await ops.stop()
            await producer.stop()

    asyncio.run(scenario())
