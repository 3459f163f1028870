"""The sender: consumes delivery jobs, POSTs them, records every attempt, schedules retries.

Jobs from the delivery and retry topics share one consumer. A job not yet due waits in an
in-memory schedule (bounded; the retry topic is paused when it is full), never in a sleep. A due
job waits in its webhook's lane (``core/lanes.py``): each webhook has at most
``per_webhook_concurrency`` requests in flight, all together at most ``concurrency``, and jobs of
other webhooks overtake the waiting ones; the last ``reserved_slots`` go only to quick webhooks.
A lane holds only the jobs it should start within ``lane_max_wait_s``; the rest are parked on the
retry topic (``sender/parking.py``), due when their webhook should have room, and a webhook whose
circuit is open (``core/circuit.py``) parks its jobs until its next probe. So a slow, hung or dead
receiver never holds up another webhook, and the offsets behind it keep committing.

An offset is committed only after every record its job caused (status, retry, failure count, or
the parked copy) is acked. A task that fails, or outputs that cannot be written, stop the process
with an error: a restart redoes the unfinished work rather than a sender going on without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Coroutine
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from hookstream.core.circuit import Breakers, CircuitState
from hookstream.core.errors import DecodeError
from hookstream.core.lanes import Lanes
from hookstream.core.offsets import OffsetTracker
from hookstream.kafka.clients import (
    UnreadableBatch,
    dead_letter_bytes,
    getmany_past_unreadable,
)
from hookstream.kafka.membership import AssignmentChurn, DuplicateInstanceError
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
from hookstream.records.codec import decode
from hookstream.records.models import DeliveryJob, now_ms
from hookstream.sender.attempts import Deliverer, Output
from hookstream.sender.parking import PROBE_MARGIN_MS, Item, Schedule, held_status, park, take_early
from hookstream.sender.writes import OutputWriter, SenderStoppedError
from hookstream.settings import Settings

log = logging.getLogger(__name__)

SERVICE = "sender"
#: The longest one attempt can take (connect and read timeouts at their bounds of 60 s each, and
#: a second); a stopping sender waits that long for attempts under way before it commits.
MAX_ATTEMPT_S = 60 + 60 + 1
#: How often the waiting jobs are looked at for parking (seconds): at every start of a job it
#: cost more than the lanes' own work, and a job parked a few milliseconds later is no worse off.
PARK_CHECK_S = 0.02


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, sender: Sender) -> None:
        self._sender = sender
        settings = sender.settings
        self._churn = AssignmentChurn(f"{settings.app_id}-sender", settings.group_instance_id)

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._sender.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("sender assigned %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))
        try:
            self._churn.assigned(self._sender.consumer._coordinator.member_id)
        except DuplicateInstanceError as exc:
            self._sender.fail(exc)


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
        self.writer = OutputWriter(producer, settings.topics.retries)
        delivery = settings.delivery
        self.offsets = OffsetTracker()
        self.breakers = Breakers(
            delivery.circuit_failures, delivery.circuit_open_s, delivery.circuit_max_open_s
        )
        self.lanes: Lanes[Item] = Lanes(
            delivery.per_webhook_concurrency,
            delivery.concurrency,
            delivery.lane_max_wait_s,
            gate=self._gate,
            reserve=delivery.reserved_slots,
        )
        self.schedule = Schedule(delivery.max_scheduled, delivery.max_parked)
        #: Tags circuit openings of this process apart from those of other senders.
        self._instance = uuid.uuid4().hex[:12]
        self._tasks: set[asyncio.Task[None]] = set()
        #: Set whenever a task ends: waiting on it is O(1), asyncio.wait on every task is O(n).
        self._task_ended = asyncio.Event()
        self._retries_paused = False
        self._next_park_check = 0.0
        self._next_unpark_check = 0.0
        self._failure: BaseException | None = None
        self._stopping = False

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
                # Also when no attempt ends: the jobs waiting behind hung ones get parked.
                self._pump()
            else:
                batches, unreadable = await getmany_past_unreadable(
                    self.consumer, SERVICE, timeout_ms=100, max_records=room
                )
                for tp, records in batches.items():
                    for record in records:
                        self._accept(tp, record)
                if unreadable is not None:
                    self._skip(unreadable)
                self._pump()
            self._pace_retries()
            now = asyncio.get_running_loop().time()
            if now - last_commit >= delivery.commit_interval_s:
                await self.commit()
                last_commit = now
        # Jobs still waiting are not started: uncommitted, they are read again after a restart.
        self._stopping = True
        await self._drain(timeout_s=MAX_ATTEMPT_S)
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
        item = Item.read(tp, record.offset, job, record.headers)
        if job.due_at > now_ms():
            self.schedule.push(item)
        else:
            self.lanes.add(job.webhook_id, item)

    def _skip(self, batch: UnreadableBatch) -> None:
        """Dead-letter a batch the consumer could not unpack (it was reported and skipped);
        its last offset stands for the whole batch, done once the dead letter is written."""
        last = batch.next_offset - 1
        self.offsets.begin(batch.tp, last)
        DEAD_LETTERS.labels(SERVICE).inc()
        letter = (self.settings.topics.deadletter, None, batch.dead_letter(SERVICE))
        self._spawn(self._outputs_then_done(batch.tp, last, [letter]))

    def _start_due(self) -> None:
        moved = False
        for item in self.schedule.pop_due(now_ms()):
            if self.offsets.tracks(item.tp):
                self.lanes.add(item.job.webhook_id, item)
                moved = True
        now = time.monotonic()
        if now >= self._next_unpark_check:
            self._next_unpark_check = now + PARK_CHECK_S
            for item in take_early(self.schedule, self.lanes, self.breakers, now):
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
        """Park what should not wait here (looked at every ``PARK_CHECK_S``), then start what
        may start."""
        if self._stopping:
            return
        now = time.monotonic()
        if now >= self._next_park_check:
            self._next_park_check = now + PARK_CHECK_S
            self._park_waiting(now)
        for webhook_id, item in self.lanes.ready(now):
            self._spawn(self._attempt(webhook_id, item, now))

    def _park_waiting(self, now: float) -> None:
        """Park the waiting jobs of open circuits, and those their lane should not hold."""
        for webhook_id in list(self.lanes.waiting_keys()):
            if self.breakers.state(webhook_id, now) is CircuitState.OPEN:
                probe_at = self.breakers.probe_at(webhook_id) or now
                due = now_ms() + int(max(0.0, probe_at - now) * 1000) + PROBE_MARGIN_MS
                for item in self.lanes.take_waiting(webhook_id):
                    self._park(item, due, circuit=True)
        for overdue in self.lanes.overdue(now):
            self._park(overdue.item, now_ms() + int(overdue.delay_s * 1000))

    def _park(self, item: Item, due_at: int, circuit: bool = False) -> None:
        """Move a job unattempted to the retry topic, due at ``due_at``: same delivery id, same
        attempt number. A job held by an open circuit is also reported, once per opening."""
        topics = self.settings.topics
        held = None
        if circuit:
            opening = self.breakers.opening(item.job.webhook_id)
            config = self.deliverer.directory.get(item.job.webhook_id)
            status = held_status(
                item.job,
                config.name if config is not None else "",
                self.deliverer.policy.current.max_attempts,
                due_at,
                self.settings.delivery.circuit_failures,
            )
            held = (f"{self._instance}-{opening}", status)
        outputs, headers = park(item, due_at, topics.retries, topics.status, held)
        JOBS_PARKED.labels("circuit" if circuit else "backlog").inc()
        self._spawn(self._outputs_then_done(item.tp, item.offset, outputs, headers))

    def _observe(self) -> None:
        SCHEDULED.set(self.schedule.retries)
        PARKED_WAITING.set(self.schedule.parked)
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
        retries = [
            tp for tp in self.consumer.assignment() if tp.topic == self.settings.topics.retries
        ]
        if not self._retries_paused and self.schedule.full():
            log.warning(
                "pausing the retry topic: %d retries and %d parked jobs are waiting in memory "
                "(bounds %d and %d)",
                self.schedule.retries,
                self.schedule.parked,
                self.schedule.max_retries,
                self.schedule.max_parked,
            )
            self.consumer.pause(*retries)
            self._retries_paused = True
        elif self._retries_paused and self.schedule.roomy():
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
        if error is not None:
            self.fail(error)

    def fail(self, error: BaseException) -> None:
        """Stop the sender at its next turn (it exits non-zero; a restart redoes the jobs not
        committed): a failed task or a view that stopped following its topic."""
        if self._failure is None:
            log.critical("the sender stops: %r", error, exc_info=error)
            self._failure = error

    async def _attempt(self, webhook_id: str, item: Item, started: float) -> None:
        IN_FLIGHT.inc()
        try:
            attempt = await self.deliverer.deliver(item.job)
        finally:
            IN_FLIGHT.dec()
            self.lanes.finished(webhook_id, started, time.monotonic())
        if attempt.reached is not None:
            self._count(webhook_id, attempt.reached)
        self._pump()
        await self._outputs_then_done(item.tp, item.offset, attempt.outputs)

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
        """Write the outputs of a job, then mark its offset done."""
        await self.writer.write(tp, offset, outputs, headers)
        self.offsets.done(tp, offset)

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
        self.schedule.drop(lambda item: item.tp in gone)
        self.lanes.drop(lambda item: item.tp in gone)

    async def _drain(self, timeout_s: float) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout_s)
