"""The sender: consumes delivery jobs, POSTs them, records every attempt, schedules retries.

Jobs from the delivery and retry topics share one consumer. A job not yet due waits in an
in-memory schedule (bounded; the retry topic is paused when it is full), never in a sleep. A due
job waits in its webhook's lane (``lanes.py``): each webhook has at most
``per_webhook_concurrency`` requests in flight, all together at most ``concurrency``, and jobs of
other webhooks overtake the waiting ones. A lane holds only the jobs it should start within
``lane_max_wait_s``; the rest are parked on the retry topic, due when a slot should be free, and
a webhook whose circuit is open (``circuit.py``) parks its jobs until its next probe. So a slow,
hung or dead receiver never holds up another webhook, and the offsets behind it keep committing.

An offset is committed only after every record its job caused (status, retry, failure count, or
the parked copy) is acked. A task that fails, or outputs that cannot be written, stop the process
with an error: a restart redoes the unfinished work rather than a sender going on without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import signal
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from hookstream.attempts import Deliverer, Output, make_http_client
from hookstream.circuit import Breakers, CircuitState
from hookstream.codec import decode, encode
from hookstream.directory import DirectoryFeed, WebhookDirectory
from hookstream.errors import DecodeError, MustStopError
from hookstream.kafkaio import dead_letter_bytes, make_consumer, make_producer
from hookstream.lanes import Lanes
from hookstream.metrics import (
    CIRCUITS_OPEN,
    DEAD_LETTERS,
    IN_FLIGHT,
    JOBS_PARKED,
    JOBS_WAITING,
    PARKED_WAITING,
    SCHEDULED,
    WEBHOOKS_AT_LIMIT,
)
from hookstream.models import DeliveryJob, DeliveryStatus, Outcome, now_ms
from hookstream.offsets import OffsetTracker
from hookstream.ops import OpsServer
from hookstream.policy import PolicyFeed
from hookstream.settings import Settings

log = logging.getLogger(__name__)

SERVICE = "sender"
#: Kafka header on a job parked unattempted on the retry topic (value: why).
PARKED_HEADER = "hookstream-parked"
#: Tries to write the outputs of one job before the sender stops; waits between them (seconds).
WRITE_BACKOFF_S = (0.5, 2.0, 8.0)


class SenderStoppedError(MustStopError):
    """The sender lost work it cannot redo itself; a restart reads it again from Kafka."""


@dataclass(frozen=True)
class _Item:
    """A job and where it was read from (its offset is done once its outputs are acked)."""

    tp: TopicPartition
    offset: int
    job: DeliveryJob
    parked: bool = False


@dataclass(order=True)
class _Scheduled:
    due_at: int
    seq: int
    item: _Item = field(compare=False)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, sender: Sender) -> None:
        self._sender = sender

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._sender.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("sender assigned %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))


class _Throttle:
    """At most one log line per kind per ``every_s``; the lines in between are counted."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def allow(self, kind: str) -> int | None:
        """None to stay quiet, else how many lines of this kind were left out before this one."""
        now = time.monotonic()
        if now - self._last.get(kind, -self.every_s) < self.every_s:
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            return None
        self._last[kind] = now
        return self._skipped.pop(kind, 0)


def reachable(outputs: list[Output], status_topic: str) -> bool | None:
    """Whether an attempt reached its receiver, from the records it caused: True when it
    answered (any HTTP status) or was skipped, False after a connection failure or timeout,
    None when it failed for good without trying (a refused address)."""
    if len(outputs) == 1:
        return True  # delivered or skipped: only a status record
    for topic, _key, value in outputs:
        if topic == status_topic:
            status = decode(value, DeliveryStatus)
            if status.http_status is not None or status.outcome is not Outcome.FAILED:
                return True
            if status.final and status.attempt < status.max_attempts:
                return None
            return False
    return None


class Sender:
    """Delivers jobs fairly over webhooks; see the module docstring for the guarantees."""

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
        delivery = settings.delivery
        self.offsets = OffsetTracker()
        self.breakers = Breakers(
            delivery.circuit_failures, delivery.circuit_open_s, delivery.circuit_max_open_s
        )
        self.lanes: Lanes[_Item] = Lanes(
            delivery.per_webhook_concurrency,
            delivery.concurrency,
            delivery.lane_max_wait_s,
            gate=self._gate,
        )
        self._schedule: list[_Scheduled] = []
        self._seq = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Set whenever a task ends: waiting on it is O(1), asyncio.wait on every task is O(n).
        self._task_ended = asyncio.Event()
        self._retries_paused = False
        self._failure: BaseException | None = None
        self._stopping = False
        self._throttle = _Throttle()

    def subscribe(self) -> None:
        topics = self.settings.topics
        self.consumer.subscribe([topics.deliveries, topics.retries], listener=_Rebalance(self))

    async def run(self, stop: asyncio.Event) -> None:
        """Poll, start due jobs, commit what is done; after ``stop``, drain and commit."""
        delivery = self.settings.delivery
        read_ahead = delivery.concurrency * 4
        last_commit = asyncio.get_running_loop().time()
        while not stop.is_set():
            self._check()
            self._start_due()
            room = read_ahead - len(self._tasks) - self.lanes.waiting()
            if room <= 0:
                self._task_ended.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._task_ended.wait(), timeout=0.1)
            else:
                batches = await self.consumer.getmany(timeout_ms=100, max_records=room)
                for tp, records in batches.items():
                    for record in records:
                        self._accept(tp, record)
                self._pump()
            self._pace_retries()
            now = asyncio.get_running_loop().time()
            if now - last_commit >= delivery.commit_interval_s:
                await self.commit()
                last_commit = now
        # Jobs still waiting are not started: uncommitted, they are read again after a restart.
        self._stopping = True
        await self._drain(timeout_s=self.deliverer.policy.current.request_timeout_s + 5)
        await self.commit()
        self._check()

    def _check(self) -> None:
        """Stop the sender once a task has failed: its offset would never be committed."""
        if self._failure is not None:
            raise SenderStoppedError(
                f"a delivery task failed ({self._failure!r}); stopping so that a restart redoes "
                "the unfinished jobs from the last committed offsets (see the log above)"
            ) from self._failure

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
        parked = any(name == PARKED_HEADER for name, _ in record.headers or ())
        item = _Item(tp, record.offset, job, parked)
        if job.due_at > now_ms():
            heapq.heappush(self._schedule, _Scheduled(job.due_at, next(self._seq), item))
        else:
            self.lanes.add(job.webhook_id, item)

    def _start_due(self) -> None:
        now = now_ms()
        moved = False
        while self._schedule and self._schedule[0].due_at <= now:
            item = heapq.heappop(self._schedule).item
            if self.offsets.tracks(item.tp):
                self.lanes.add(item.job.webhook_id, item)
                moved = True
        if moved:
            self._pump()
        self._observe()

    def _gate(self, webhook_id: str) -> int:
        return self.breakers.allowed(
            webhook_id, self.settings.delivery.per_webhook_concurrency, time.monotonic()
        )

    def _pump(self) -> None:
        """Park what should not wait here, then start what may start."""
        if self._stopping:
            return
        now = time.monotonic()
        for webhook_id in list(self.lanes.waiting_keys()):
            if self.breakers.state(webhook_id, now) is CircuitState.OPEN:
                probe_at = self.breakers.probe_at(webhook_id) or now
                due = now_ms() + int(max(0.0, probe_at - now) * 1000)
                for item in self.lanes.take_waiting(webhook_id):
                    self._park(item, due, "circuit")
        for overdue in self.lanes.overdue(now):
            self._park(overdue.item, now_ms() + int(overdue.delay_s * 1000), "backlog")
        for webhook_id, item in self.lanes.ready(now):
            self._spawn(self._attempt(webhook_id, item, now))

    def _park(self, item: _Item, due_at: int, reason: str) -> None:
        """Move a job unattempted to the retry topic, due at ``due_at``: same delivery id, same
        attempt number. A job held by an open circuit also gets a status record saying why."""
        topics = self.settings.topics
        job = item.job
        key = job.webhook_id.encode()
        outputs: list[Output] = [
            (topics.retries, key, encode(job.model_copy(update={"due_at": due_at})))
        ]
        if reason == "circuit":
            outputs.append((topics.status, key, encode(self._held_status(job, due_at))))
        JOBS_PARKED.labels(reason).inc()
        self._spawn(
            self._outputs_then_done(
                item.tp, item.offset, outputs, headers=[(PARKED_HEADER, reason.encode())]
            )
        )

    def _held_status(self, job: DeliveryJob, due_at: int) -> DeliveryStatus:
        config = self.deliverer.directory.get(job.webhook_id)
        failures = self.settings.delivery.circuit_failures
        return DeliveryStatus(
            delivery_id=job.delivery_id,
            webhook_id=job.webhook_id,
            webhook_name=config.name if config is not None else "",
            event_ids=[event.event_id for event in job.events],
            trigger=job.trigger,
            attempt=job.attempt,
            max_attempts=self.deliverer.policy.current.max_attempts,
            # Not an attempt: SKIPPED and not final, so nothing counts it as a failure.
            outcome=Outcome.SKIPPED,
            final=False,
            next_attempt_at=due_at,
            error=f"held back, not attempted: the receiver's circuit is open after {failures} "
            "connection failures or timeouts in a row; one probe at a time is sent until it "
            "answers",
        )

    def _observe(self) -> None:
        SCHEDULED.set(len(self._schedule))
        PARKED_WAITING.set(sum(1 for entry in self._schedule if entry.item.parked))
        at_limit = self.lanes.at_limit()
        waiting = self.lanes.waiting()
        now = time.monotonic()
        held = sum(
            self.lanes.waiting(key)
            for key in self.lanes.waiting_keys()
            if self.breakers.state(key, now) is not CircuitState.CLOSED
        )
        limited = sum(
            self.lanes.waiting(key)
            for key in self.lanes.waiting_keys()
            if self.lanes.in_flight(key) >= self.lanes.allowed(key)
        )
        JOBS_WAITING.labels("circuit").set(held)
        JOBS_WAITING.labels("webhook_limit").set(max(0, limited - held))
        JOBS_WAITING.labels("slot").set(max(0, waiting - limited))
        WEBHOOKS_AT_LIMIT.set(at_limit)
        CIRCUITS_OPEN.set(self.breakers.open_count())

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

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._task_ended.set()
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and self._failure is None:
            log.critical("a sender task failed; the sender stops", exc_info=error)
            self._failure = error

    async def _attempt(self, webhook_id: str, item: _Item, started: float) -> None:
        IN_FLIGHT.inc()
        try:
            outputs = await self.deliverer.deliver(item.job)
        finally:
            IN_FLIGHT.dec()
            self.lanes.finished(webhook_id, started, time.monotonic())
        answered = reachable(outputs, self.settings.topics.status)
        if answered is not None:
            self._count(webhook_id, answered)
        self._pump()
        await self._outputs_then_done(item.tp, item.offset, outputs)

    def _count(self, webhook_id: str, answered: bool) -> None:
        now = time.monotonic()
        before = self.breakers.state(webhook_id, now)
        after = self.breakers.record(webhook_id, answered, now)
        if after is not before:
            log.warning(
                "circuit of webhook %s is now %s%s",
                webhook_id,
                after,
                "" if answered else " after connection failures or timeouts in a row",
                extra={"webhook_id": webhook_id},
            )

    async def _outputs_then_done(
        self,
        tp: TopicPartition,
        offset: int,
        outputs: list[Output],
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Write the outputs of a job, then mark its offset done; a few tries, then stop."""
        for wait_s in (*WRITE_BACKOFF_S, None):
            try:
                pending = [
                    await self.producer.send(topic, value=value, key=key, headers=headers)
                    for topic, key, value in outputs
                ]
                await asyncio.gather(*pending)
            except Exception as exc:
                if wait_s is None:
                    raise SenderStoppedError(
                        f"could not write the outputs of {tp.topic}[{tp.partition}]@{offset} "
                        f"after {len(WRITE_BACKOFF_S) + 1} tries ({exc!r}); check that Kafka "
                        "is reachable; a restart redoes the job"
                    ) from exc
                skipped = self._throttle.allow("write")
                if skipped is not None:
                    log.warning(
                        "could not write the outputs of %s[%d]@%d, trying again in %g s "
                        "(%d similar lines left out): %r",
                        tp.topic,
                        tp.partition,
                        offset,
                        wait_s,
                        skipped,
                        exc,
                    )
                await asyncio.sleep(wait_s)
                continue
            self.offsets.done(tp, offset)
            return

    async def commit(self) -> None:
        offsets = self.offsets.committable()
        if not offsets:
            return
        await self.consumer.commit({tp: offset for tp, offset in offsets.items()})
        self.offsets.committed(offsets)

    async def partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        try:
            await self.commit()
        except Exception as exc:
            # The new owner reads from the last commit: work is repeated, never lost.
            log.warning(
                "could not commit before giving up %s; their new owner repeats the jobs since "
                "the last commit: %r",
                sorted(f"{tp.topic}[{tp.partition}]" for tp in revoked),
                exc,
            )
        gone = set(revoked)
        for tp in revoked:
            self.offsets.forget(tp)
        self._schedule = [entry for entry in self._schedule if entry.item.tp not in gone]
        heapq.heapify(self._schedule)
        self.lanes.drop(lambda item: item.tp in gone)

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
