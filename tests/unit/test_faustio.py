"""The matcher's Faust consumer: short fetch waits, and the skipping fetcher in place."""

from __future__ import annotations

import asyncio

import faust

from hookstream.faustio import FETCH_MAX_WAIT_MS, SkippingConsumer, skip_unreadable_batches


def test_the_matchers_consumer_waits_at_most_100_ms_per_fetch() -> None:
    async def scenario() -> int:
        app = faust.App("faustio-test", broker="kafka://127.0.0.1:9", web_enabled=False)
        skip_unreadable_batches(app)
        consumer = app.consumer
        assert isinstance(consumer, SkippingConsumer)
        worker = consumer._thread._create_worker_consumer(app.transport)
        try:
            return int(worker._fetch_max_wait_ms)
        finally:
            await worker.stop()  # never started: releases what its constructor made
            consumer._thread.thread_loop.close()  # the consumer thread's own loop, never run

    assert asyncio.run(scenario()) == FETCH_MAX_WAIT_MS == 100
