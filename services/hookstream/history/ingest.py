"""The consumer that feeds the delivery history from the deliveries and status topics.

No consumer group: it assigns every partition itself and resumes from the offsets stored with the
data (``HistoryStore.ingest`` writes both in one transaction), or from the beginning on an empty
database. On a shared PostgreSQL database one admin replica ingests (the holder of an advisory
lock); the others serve reads and take over when it goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from hookstream.core.errors import ConfigurationError, DecodeError
from hookstream.history.store import HistoryStore, TopicPartitionKey
from hookstream.kafka.clients import getmany_past_unreadable
from hookstream.kafka.security import aiokafka_options
from hookstream.records.codec import decode
from hookstream.records.models import DeliveryJob, DeliveryStatus
from hookstream.settings import KafkaSecuritySettings

log = logging.getLogger(__name__)

#: How often a replica that does not ingest checks whether it should (and whether it is ready).
FOLLOWER_POLL_S = 1.0
#: At most one warning about undecodable records per this many seconds.
WARN_EVERY_S = 10.0


class HistoryIngest:
    """Follows the deliveries and status topics into ``store``; ``ready`` is set once the store
    holds everything the topics held when this started."""

    def __init__(
        self,
        store: HistoryStore,
        bootstrap: str,
        deliveries_topic: str,
        status_topic: str,
        client_id: str,
        security: KafkaSecuritySettings | None = None,
        max_records: int = 2000,
        poll_timeout_ms: int = 200,
    ) -> None:
        self.store = store
        self.ready = asyncio.Event()
        self.applied = 0
        self.undecodable = 0
        self.failure: BaseException | None = None
        self._models: dict[str, type[DeliveryJob] | type[DeliveryStatus]] = {
            deliveries_topic: DeliveryJob,
            status_topic: DeliveryStatus,
        }
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._security = security
        self._max_records = max_records
        self._poll_timeout_ms = poll_timeout_ms
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._end: dict[TopicPartition, int] = {}
        self._warned_at = 0.0
        self._unwarned = 0

    async def start(self) -> None:
        """Assign every partition of both topics and start ingesting in the background."""
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
        metadata = await consumer._client.fetch_all_metadata()
        assignment: list[TopicPartition] = []
        for topic in self._models:
            partitions = metadata.partitions_for_topic(topic)
            if not partitions:
                raise ConfigurationError(
                    f"topic {topic!r} does not exist; run `hookstream topics create`"
                )
            assignment += [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assignment)
        self._end = await consumer.end_offsets(assignment)
        self._task = asyncio.create_task(self._run(consumer), name="history-ingest")
        self._task.add_done_callback(self._ended)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        self.failure = task.exception()
        if self.failure is not None:
            self.ready.clear()
            log.error(
                "the delivery history stopped ingesting: %s; restart the admin service once "
                "its database is reachable",
                self.failure,
                exc_info=self.failure,
            )

    def _caught_up(self, positions: dict[TopicPartitionKey, int]) -> bool:
        return all(
            positions.get((tp.topic, tp.partition), 0) >= end for tp, end in self._end.items()
        )

    def _set_ready(self) -> None:
        if not self.ready.is_set():
            log.info("delivery history caught up (%d records applied)", self.applied)
            self.ready.set()

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while not await asyncio.to_thread(self.store.try_lead):
            # Another replica ingests; this one is ready once the data it saw at start is stored.
            if self._caught_up(await asyncio.to_thread(self.store.stored_offsets)):
                self._set_ready()
            await asyncio.sleep(FOLLOWER_POLL_S)
        stored = await asyncio.to_thread(self.store.stored_offsets)
        for tp in self._end:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
        log.info(
            "delivery history ingesting from %s", {f"{t}[{p}]": o for (t, p), o in stored.items()}
        )
        while True:
            if not self.ready.is_set() and self._caught_up(
                {(tp.topic, tp.partition): await consumer.position(tp) for tp in self._end}
            ):
                self._set_ready()
            batches, _ = await getmany_past_unreadable(
                consumer,
                self._client_id,
                timeout_ms=self._poll_timeout_ms,
                max_records=self._max_records,
            )
            records: list[DeliveryJob | DeliveryStatus] = []
            offsets: dict[TopicPartitionKey, int] = {}
            for tp, batch in batches.items():
                for record in batch:
                    decoded = self._decode(
                        record.topic, record.partition, record.offset, record.value
                    )
                    if decoded is not None:
                        records.append(decoded)
                if batch:
                    offsets[(tp.topic, tp.partition)] = batch[-1].offset + 1
            if offsets:
                await asyncio.to_thread(self.store.ingest, records, offsets)
                self.applied += len(records)

    def _decode(
        self, topic: str, partition: int, offset: int, value: bytes | None
    ) -> DeliveryJob | DeliveryStatus | None:
        """The record, or None for one that cannot be read (the sender dead-letters bad jobs;
        the status topic is written by hookstream only): counted, and logged rate-limited."""
        try:
            if value is None:
                raise DecodeError("the record has no value")
            return decode(value, self._models[topic])
        except DecodeError as exc:
            self.undecodable += 1
            self._warn(f"{topic}[{partition}]@{offset}: {exc}")
            return None

    def _warn(self, what: str) -> None:
        now = time.monotonic()
        if now - self._warned_at < WARN_EVERY_S:
            self._unwarned += 1
            return
        more = f" ({self._unwarned} more since the last warning)" if self._unwarned else ""
        log.warning("delivery history skips an undecodable record %s%s", what, more)
        self._warned_at, self._unwarned = now, 0
