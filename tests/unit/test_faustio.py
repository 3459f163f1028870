"""The matcher's Faust consumer: short fetch waits, and the skipping fetcher in place."""

from __future__ import annotations

import asyncio
import time

import faust
from faust.transport.drivers.aiokafka import Transport
from faust.types import TP

from hookstream.matcher.faustio import (
    FETCH_MAX_WAIT_MS,
    SkippingConsumer,
    fetched_at,
    skip_unreadable_batches,
)


def test_the_matchers_consumer_waits_at_most_100_ms_per_fetch() -> None:
    async def scenario() -> int:
        app = faust.App("faustio-test", broker="kafka://127.0.0.1:9", web_enabled=False)
        skip_unreadable_batches(app)
        consumer = app.consumer
        assert isinstance(consumer, SkippingConsumer)
        transport = app.transport
        assert isinstance(transport, Transport)
        worker = consumer._thread._create_worker_consumer(transport)
        try:
            return int(worker._fetch_max_wait_ms)
        finally:
            await worker.stop()  # never started: releases what its constructor made
            consumer._thread.thread_loop.close()  # the consumer thread's own loop, never run

    assert asyncio.run(scenario()) == FETCH_MAX_WAIT_MS == 100


def test_each_message_carries_the_moment_it_was_fetched() -> None:
    """The matcher waits for its views to reach this moment before it routes the event."""

    class Record:
        topic, partition, offset, timestamp, timestamp_type = "events", 0, 7, 1_000, 0
        headers: list[tuple[str, bytes]] = []
        key, value, checksum = b"k", b"v", None
        serialized_key_size, serialized_value_size = 1, 1

    async def scenario() -> tuple[float, float, float]:
        app = faust.App("faustio-stamp", broker="kafka://127.0.0.1:9", web_enabled=False)
        skip_unreadable_batches(app)
        consumer = app.consumer
        assert isinstance(consumer, SkippingConsumer)
        try:
            before = time.monotonic()
            message = consumer._to_message(TP("events", 0), Record())
            return before, fetched_at(message), time.monotonic()
        finally:
            consumer._thread.thread_loop.close()

    before, stamp, after = asyncio.run(scenario())
    assert before <= stamp <= after
