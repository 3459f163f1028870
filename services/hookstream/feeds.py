"""Following a compacted topic from its beginning: the shared machinery of the live views."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from hookstream.errors import ConfigurationError
from hookstream.kafkaauth import aiokafka_options
from hookstream.kafkaio import getmany_past_unreadable
from hookstream.settings import KafkaSecuritySettings

log = logging.getLogger(__name__)

#: Longest the event loop is held applying records before other tasks get a turn: a batch of a
#: large topic takes seconds to apply, and /healthz, /readyz and the API share this loop.
YIELD_EVERY_S = 0.02


class CompactedFeed:
    """Reads every partition of a topic from the beginning, then follows it; no consumer group.

    Subclasses apply each record in ``apply``; ``ready`` is set once the records that were in the
    topic at start have all been applied, so a service can wait for a complete view. If following
    stops on an error, ``ready`` is cleared, ``failure`` says why and ``failed`` is set: a frozen
    view must never pass for a live one (the services stop on it).
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        client_id: str,
        poll_timeout_ms: int = 100,
        security: KafkaSecuritySettings | None = None,
    ) -> None:
        self.topic = topic
        self._security = security
        self.ready = asyncio.Event()
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._poll_timeout_ms = poll_timeout_ms
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None
        self.failed = asyncio.Event()

    def apply(self, record: Any) -> None:
        """Apply one record (an aiokafka ``ConsumerRecord``) to the view."""
        raise NotImplementedError

    def caught_up(self) -> None:
        """Called once when the view holds everything that was in the topic at start."""

    async def start(self) -> None:
        """Assign every partition from the beginning and start following in the background."""
        self._consumer = consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            **aiokafka_options(self._security),
            client_id=self._client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self._poll_timeout_ms,
        )
        await consumer.start()
        # The consumer learns partitions only for subscribed topics; ask the cluster directly.
        metadata = await consumer._client.fetch_all_metadata()
        partitions = metadata.partitions_for_topic(self.topic)
        if not partitions:
            raise ConfigurationError(
                f"topic {self.topic!r} does not exist; run `hookstream topics create`"
            )
        assignment = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        end_offsets = await consumer.end_offsets(assignment)
        self._task = asyncio.create_task(
            self._follow(consumer, end_offsets), name=f"feed-{self.topic}"
        )
        self._task.add_done_callback(self._ended)

    def problem(self) -> str | None:
        """Why this view cannot be trusted, for /readyz; None while it follows its topic."""
        if self.failure is None:
            return None
        return f"the view of {self.topic} stopped following it: {self.failure!r}"

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        self.failure = task.exception()
        self.ready.clear()
        self.failed.set()
        log.critical("%s", self.problem(), exc_info=self.failure)

    async def wait_ready(self, timeout_s: float) -> None:
        """Wait until the view has caught up; raise at once if following it failed."""
        waits = [
            asyncio.ensure_future(self.ready.wait()),
            asyncio.ensure_future(self.failed.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if self.failure is not None:
            raise self.failure
        if not self.ready.is_set():
            raise TimeoutError(f"the view of {self.topic} did not catch up within {timeout_s:g} s")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # Waits without raising: a failure of the task was reported when it ended.
            await asyncio.wait([self._task])
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _follow(
        self, consumer: AIOKafkaConsumer, end_offsets: dict[TopicPartition, int]
    ) -> None:
        remaining = {tp: end for tp, end in end_offsets.items() if end > 0}
        if not remaining:
            self._set_ready()
        while True:
            # A batch no client here can unpack is logged, counted and skipped: the view goes on
            # without those records rather than the process failing on them at every start.
            batches, _ = await getmany_past_unreadable(
                consumer, self._client_id, timeout_ms=self._poll_timeout_ms
            )
            turn_ends = time.monotonic() + YIELD_EVERY_S
            for records in batches.values():
                for record in records:
                    self.apply(record)
                    if time.monotonic() >= turn_ends:
                        await asyncio.sleep(0)
                        turn_ends = time.monotonic() + YIELD_EVERY_S
            if not self.ready.is_set() and all(
                [await consumer.position(tp) >= end for tp, end in remaining.items()]
            ):
                self._set_ready()

    def _set_ready(self) -> None:
        self.caught_up()
        self.ready.set()
