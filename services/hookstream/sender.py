"""The sender: consumes delivery jobs, POSTs them, records every attempt, schedules retries.

Jobs from the delivery and retry topics share one consumer. A job not yet due waits in an
in-memory schedule (bounded; the retry topic is paused when it is full), never in a sleep, so a
slow or dead receiver never delays the others. Requests run concurrently up to a bound. An offset
is committed only after every record its job caused (status, retry, failure count) is acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from hookstream.attempts import Deliverer, Output, make_http_client
from hookstream.codec import decode
from hookstream.directory import DirectoryFeed, WebhookDirectory
from hookstream.errors import DecodeError
from hookstream.kafkaio import dead_letter_bytes, make_consumer, make_producer
from hookstream.metrics import (
    DEAD_LETTERS,
    IN_FLIGHT,
    SCHEDULED,
)
from hookstream.models import (
    DeliveryJob,
    now_ms,
)
from hookstream.offsets import OffsetTracker
from hookstream.ops import OpsServer
from hookstream.policy import PolicyFeed
from hookstream.settings import Settings

log = logging.getLogger(__name__)

SERVICE = "sender"


@dataclass(order=True)
class _Scheduled:
    due_at: int
    seq: int
    tp: TopicPartition = field(compare=False)
    offset: int = field(compare=False)
    job: DeliveryJob = field(compare=False)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, sender: Sender) -> None:
        self._sender = sender

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._sender.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("sender assigned %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))


class Sender:
    """Delivers jobs with bounded concurrency; see the module docstring for the guarantees."""

    def __init__(
        self,
        settings: Settings,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        deliverer: Deliverer,
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.producer = producer
        self.deliverer = deliverer
        self.offsets = OffsetTracker()
        self._schedule: list[_Scheduled] = []
        self._seq = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Set whenever a task ends: waiting on it is O(1), asyncio.wait on every task is O(n).
        self._task_ended = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.delivery.concurrency)
        self._retries_paused = False

    def subscribe(self) -> None:
        topics = self.settings.topics
        self.consumer.subscribe([topics.deliveries, topics.retries], listener=_Rebalance(self))

    async def run(self, stop: asyncio.Event) -> None:
        """Poll, start due jobs, commit what is done; after ``stop``, drain and commit."""
        delivery = self.settings.delivery
        max_tasks = delivery.concurrency * 4
        last_commit = asyncio.get_running_loop().time()
        while not stop.is_set():
            self._start_due()
            if len(self._tasks) >= max_tasks:
                self._task_ended.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._task_ended.wait(), timeout=0.1)
            else:
                batches = await self.consumer.getmany(
                    timeout_ms=100, max_records=max_tasks - len(self._tasks)
                )
                for tp, records in batches.items():
                    for record in records:
                        self._accept(tp, record)
            self._pace_retries()
            now = asyncio.get_running_loop().time()
            if now - last_commit >= delivery.commit_interval_s:
                await self.commit()
                last_commit = now
        await self._drain(timeout_s=self.deliverer.policy.current.request_timeout_s + 5)
        await self.commit()

    def _accept(self, tp: TopicPartition, record: Any) -> None:
        self.offsets.begin(tp, record.offset)
        try:
            job = decode(record.value, DeliveryJob)
        except DecodeError as exc:
            DEAD_LETTERS.labels(SERVICE).inc()
            log.error(
                "dead-lettering undecodable job at %s[%d]@%d: %s",
                tp.topic,
                tp.partition,
                record.offset,
                exc,
            )
            value = dead_letter_bytes(
                tp.topic, tp.partition, record.offset, record.key, record.value, str(exc), SERVICE
            )
            self._spawn(
                self._outputs_then_done(
                    tp, record.offset, [(self.settings.topics.deadletter, record.key, value)]
                )
            )
            return
        if job.due_at > now_ms():
            heapq.heappush(
                self._schedule, _Scheduled(job.due_at, next(self._seq), tp, record.offset, job)
            )
        else:
            self._spawn(self._attempt(tp, record.offset, job))

    def _start_due(self) -> None:
        SCHEDULED.set(len(self._schedule))
        now = now_ms()
        while self._schedule and self._schedule[0].due_at <= now:
            item = heapq.heappop(self._schedule)
            if self.offsets.tracks(item.tp):
                self._spawn(self._attempt(item.tp, item.offset, item.job))

    def _pace_retries(self) -> None:
        """Stop reading retries while the schedule is full; resume once it has half emptied."""
        limit = self.settings.delivery.max_scheduled
        retries = [
            tp for tp in self.consumer.assignment() if tp.topic == self.settings.topics.retries
        ]
        if not self._retries_paused and len(self._schedule) >= limit:
            self.consumer.pause(*retries)
            self._retries_paused = True
        elif self._retries_paused and len(self._schedule) < limit // 2:
            self.consumer.resume(*retries)
            self._retries_paused = False

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._task_ended.set()

    async def _attempt(self, tp: TopicPartition, offset: int, job: DeliveryJob) -> None:
        async with self._slots:
            IN_FLIGHT.inc()
            try:
                outputs = await self.deliverer.deliver(job)
            finally:
                IN_FLIGHT.dec()
        await self._outputs_then_done(tp, offset, outputs)

    async def _outputs_then_done(
        self, tp: TopicPartition, offset: int, outputs: list[Output]
    ) -> None:
        try:
            pending = [
                await self.producer.send(topic, value=value, key=key)
                for topic, key, value in outputs
            ]
            await asyncio.gather(*pending)
        except Exception:
            # Not done: the offset stays uncommitted and the job is read again after a restart.
            log.exception(
                "could not write the outputs of %s[%d]@%d; it will be redone",
                tp.topic,
                tp.partition,
                offset,
            )
            return
        self.offsets.done(tp, offset)

    async def commit(self) -> None:
        offsets = self.offsets.committable()
        if not offsets:
            return
        await self.consumer.commit({tp: offset for tp, offset in offsets.items()})
        self.offsets.committed(offsets)

    async def partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        with contextlib.suppress(Exception):
            await self.commit()
        for tp in revoked:
            self.offsets.forget(tp)
        self._schedule = [item for item in self._schedule if item.tp not in revoked]
        heapq.heapify(self._schedule)

    async def _drain(self, timeout_s: float) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout_s)


@contextlib.asynccontextmanager
async def open_sender(settings: Settings, bootstrap: str) -> AsyncIterator[Sender]:
    """Open every I/O lifetime of the sender in one place, and close them in reverse."""
    client_id = f"{settings.app_id}-sender"
    directory = WebhookDirectory()
    security = settings.kafka_security
    feed = DirectoryFeed(
        directory, bootstrap, settings.topics.webhooks, f"{client_id}-directory", security
    )
    policy = PolicyFeed(
        settings.delivery, bootstrap, settings.topics.settings, f"{client_id}-policy", security
    )
    started = asyncio.Event()
    ops = OpsServer(
        settings.ops.host,
        settings.ops.sender_port,
        ready=lambda: feed.ready.is_set() and policy.ready.is_set() and started.is_set(),
    )
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(ops.stop)
        await ops.start()
        stack.push_async_callback(feed.stop)
        await feed.start()
        stack.push_async_callback(policy.stop)
        await policy.start()
        producer = make_producer(bootstrap, client_id, security)
        stack.push_async_callback(producer.stop)
        await producer.start()
        http = await stack.enter_async_context(make_http_client(settings))
        await feed.wait_ready(timeout_s=120)
        await policy.wait_ready(timeout_s=120)
        consumer = make_consumer(
            bootstrap,
            client_id,
            group_id=f"{settings.app_id}-sender",
            session_timeout_s=settings.group_session_timeout_s,
            security=security,
        )
        stack.push_async_callback(consumer.stop)
        sender = Sender(settings, consumer, producer, Deliverer(settings, http, directory, policy))
        sender.subscribe()
        await consumer.start()
        started.set()
        yield sender


async def run_sender(settings: Settings, bootstrap: str) -> None:
    """Run the sender until SIGINT or SIGTERM, then finish in-flight work and commit."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with open_sender(settings, bootstrap) as sender:
        log.info("sender ready")
        await sender.run(stop)
