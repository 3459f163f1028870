"""/healthz keeps answering while a live view catches up on a large topic (a liveness probe must
never kill a pod in the middle of its catch-up)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import httpx
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from hookstream.kafka.follower import CompactedFeed
from hookstream.ops import OpsServer

pytestmark = pytest.mark.integration

RECORDS = 12_000
#: CPU each record costs to apply: about what decoding and indexing a webhook config costs.
APPLY_COST_S = 0.0004


class SlowFeed(CompactedFeed):
    """A view whose every record takes ``APPLY_COST_S`` of CPU, like a real one at scale."""

    applied = 0

    def apply(self, record: Any) -> None:
        until = time.perf_counter() + APPLY_COST_S
        while time.perf_counter() < until:
            pass
        self.applied += 1


def _topic_with_records(bootstrap: str) -> str:
    topic = f"t{uuid.uuid4().hex[:10]}.liveness"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    for n in range(RECORDS):
        producer.send(topic, key=f"k{n}".encode(), value=b"x" * 200)
    producer.flush(timeout=60)
    producer.close()
    return topic


def test_healthz_answers_at_once_while_a_view_catches_up(kafka_bootstrap: str) -> None:
    topic = _topic_with_records(kafka_bootstrap)
    latencies: list[float] = []
    done = threading.Event()
    port: list[int] = []

    def poll() -> None:
        with httpx.Client(timeout=30) as client:
            while not done.is_set():
                start = time.monotonic()
                answer = client.get(f"http://127.0.0.1:{port[0]}/healthz")
                assert answer.status_code == 200
                latencies.append(time.monotonic() - start)
                done.wait(0.02)

    async def scenario() -> tuple[float, int]:
        feed = SlowFeed(kafka_bootstrap, topic, client_id="liveness-test")
        ops = OpsServer("127.0.0.1", 0, ready=feed.ready.is_set)
        await ops.start()
        port.append(ops.port)
        poller = threading.Thread(target=poll, daemon=True)
        started = time.monotonic()
        await feed.start()
        poller.start()
        try:
            await feed.wait_ready(timeout_s=240)
            return time.monotonic() - started, feed.applied
        finally:
            done.set()
            await asyncio.to_thread(poller.join, 30)
            await feed.stop()
            await ops.stop()

    catch_up_s, applied = asyncio.run(scenario())
    assert applied == RECORDS
    # The catch-up held the CPU for seconds: the probe was really tested during it.
    assert catch_up_s >= RECORDS * APPLY_COST_S * 0.9
    assert len(latencies) >= 10, latencies
    # A kubelet probe times out after 3 s; a single batch of records used to hold the loop that
    # long. Generous for a shared machine, far below the probe's timeout.
    assert max(latencies) < 1.0, f"slowest /healthz answer {max(latencies):.2f} s"
