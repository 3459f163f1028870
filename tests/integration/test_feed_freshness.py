"""A view can be asked to hold everything its topic had at a moment (``fresh_since``).

The matcher asks it of its webhook view before it routes an event, the sender before it calls a
webhook missing or deactivated: a webhook created (or activated) just before an event is
published must get that event, even though the view follows its topic a little behind.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from hookstream.kafka import follower as feeds
from hookstream.kafka.follower import CompactedFeed

pytestmark = pytest.mark.integration


class RecordingView(CompactedFeed):
    def __init__(self, bootstrap: str, topic: str, poll_timeout_ms: int) -> None:
        super().__init__(bootstrap, topic, "test-fresh-view", poll_timeout_ms=poll_timeout_ms)
        self.applied: list[bytes] = []

    def apply(self, record: Any) -> None:
        self.applied.append(record.value)


def test_a_record_written_before_the_moment_is_in_the_view_when_fresh_since_returns(
    make_settings: Any,
) -> None:
    settings = make_settings()
    topic = settings.topics.webhooks

    async def scenario() -> None:
        # A long fetch wait, so the view alone would often be a whole second behind.
        view = RecordingView(settings.kafka_bootstrap, topic, poll_timeout_ms=1000)
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        await producer.start()
        await view.start()
        try:
            await view.wait_ready(60)
            for number in range(40):
                value = f"record-{number}".encode()
                await producer.send_and_wait(topic, key=value, value=value)
                await view.fresh_since(time.monotonic())
                assert view.applied[-1] == value, f"{value!r} not yet in the view"
            assert view.problem() is None
            # Many readers at once share the checks of the topic's end.
            values = [f"burst-{number}".encode() for number in range(20)]
            for value in values:
                await producer.send_and_wait(topic, key=value, value=value)
            moment = time.monotonic()
            await asyncio.gather(*(view.fresh_since(moment) for _ in range(50)))
            # Keys spread them over partitions: applied in another order, all of them.
            assert sorted(view.applied[-20:]) == sorted(values)
        finally:
            await view.stop()
            await producer.stop()

    asyncio.run(scenario())


def test_a_view_that_cannot_reach_its_end_lets_readers_go_on_and_reports_the_lag(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The end offsets never come (a partition without a leader): readers wait at most
    FRESH_TIMEOUT_S once, then go on with the view as it is; /readyz names the lag until the
    view reaches its topic's end again."""
    settings = make_settings()
    monkeypatch.setattr(feeds, "FRESH_TIMEOUT_S", 0.5)

    async def scenario() -> None:
        view = RecordingView(settings.kafka_bootstrap, settings.topics.webhooks, 100)
        await view.start()
        consumer: Any = view._ends
        release = asyncio.Event()
        real_end_offsets = consumer.end_offsets

        async def stuck(partitions: Any) -> Any:
            await release.wait()
            return await real_end_offsets(partitions)

        consumer.end_offsets = stuck
        try:
            await view.wait_ready(60)
            started = time.monotonic()
            await view.fresh_since(time.monotonic())
            assert 0.4 < time.monotonic() - started < 5
            problem = view.problem()
            assert problem is not None and "has not reached the end of it" in problem
            # While it lags, readers do not wait again.
            started = time.monotonic()
            await view.fresh_since(time.monotonic())
            assert time.monotonic() - started < 0.4
            release.set()
            await view.fresh_since(time.monotonic())
            deadline = time.monotonic() + 30
            while view.problem() is not None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert view.problem() is None
        finally:
            await view.stop()

    asyncio.run(scenario())
