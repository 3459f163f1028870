"""The matcher's agent loops: each hands a record to the pure step of ``matcher.routing`` and writes
what it returns; a record whose pure step fails goes to the dead-letter topic with the reason
(``DeadLetters``), a loop whose writes fail stops the worker (``Stopper``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar, cast

import faust

from hookstream.core.ackwindow import AckWindow
from hookstream.core.errors import DecodeError
from hookstream.core.registry import Allocate
from hookstream.kafka.clients import dead_letter_bytes
from hookstream.logs import Throttle
from hookstream.matcher.faustio import fetched_at
from hookstream.matcher.routing import (
    PlannedCommand,
    failure_reason,
    match_record,
    next_numeric_id,
    oversize_reason,
    plan_command,
    writes_for,
)
from hookstream.matcher.views import MatcherViews
from hookstream.metrics import DEACTIVATIONS, DEAD_LETTERS, EVENTS_CONSUMED, JOBS_PRODUCED
from hookstream.records.codec import decode
from hookstream.records.intake import InputFormat
from hookstream.records.models import (
    DeliveryPolicy,
    Outcome,
    WebhookConfig,
    now_ms,
)
from hookstream.settings import Settings

log = logging.getLogger(__name__)

SERVICE = "matcher"
#: Events whose jobs may be waiting for the broker's acknowledgement at once.
MAX_UNACKED_EVENTS = 1000
#: Records the audit of a state topic may hold read ahead (Faust's default, 4,096, held
#: thousands of webhook configs per partition while the audit caught up with the topic).
AUDIT_BUFFER = 256

T = TypeVar("T")


async def guarded(
    event: faust.EventT[bytes],
    work: Callable[[], T],
    dead_letter: Callable[[faust.EventT[bytes], str], Awaitable[None]],
    limiter: Throttle,
) -> T | None:
    """Run the pure step of handling a record; a record it fails on is dead-lettered (None).

    Any exception counts, not only DecodeError: no input may stop an agent, and the record is
    kept with the reason. CancelledError is not an Exception and goes through."""
    try:
        return work()
    except DecodeError as exc:
        await dead_letter(event, failure_reason(exc))
    except Exception as exc:
        message = event.message
        if limiter.allow() is not None:
            log.exception(
                "handling %s[%d]@%d failed",
                message.topic,
                message.partition,
                message.offset,
                extra={
                    "topic": message.topic,
                    "partition": message.partition,
                    "offset": message.offset,
                },
            )
        await dead_letter(event, "handling failed: " + failure_reason(exc))
    return None


async def settle(sends: list[Awaitable[Any]]) -> None:
    """Wait until the broker has every write of a record, before its offset is acked; a write
    that fails raises here and stops the process (see ``Stopper.run``)."""
    if sends:
        await asyncio.gather(*sends)


def records(stream: faust.StreamT[bytes]) -> Any:
    """The stream's events, acked by the agent itself, only once what they caused is safe
    (Faust would ack each one when the next is taken, even after a failed write)."""
    return cast(Any, stream).noack().events()


class Stopper:
    """Stops the worker (it exits non-zero and is restarted): a Faust agent that merely raised
    would be restarted in place, commit, and read on past the record that failed."""

    def __init__(self, app: faust.App) -> None:
        self._app = app
        self._tasks: set[asyncio.Task[Any]] = set()

    def now(self, exc: BaseException) -> None:
        """Crash the worker with ``exc`` (from a callback, without waiting)."""
        self.keep(asyncio.ensure_future(self._app.crash(exc)))

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Hold a background task until it is done (asyncio keeps only weak references)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self, agent: str, work: Awaitable[None]) -> None:
        """Run an agent's loop; whatever escapes it (a failed write, a bug) stops the process."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("the %s agent failed; stopping the matcher", agent)
            await self._app.crash(exc)


class DeadLetters:
    """Where the records the matcher cannot handle go: the dead-letter topic, with the reason.

    Its log lines are throttled: a flood of bad records may not flood the log too (the metric
    counts them all)."""

    def __init__(self, topic: faust.TopicT) -> None:
        self._topic = topic
        self.limiter = Throttle(every_s=10.0, burst=20)

    async def __call__(self, event: faust.EventT[bytes], reason: str) -> None:
        """Write ``event`` to the dead-letter topic with ``reason`` and wait for the broker."""
        message = event.message
        context = {"topic": message.topic, "partition": message.partition, "offset": message.offset}
        held = self.limiter.allow()
        if held is not None:
            log.error(
                "dead-lettering %s[%d]@%d: %s%s",
                message.topic,
                message.partition,
                message.offset,
                reason,
                f" ({held} more dead-lettered records were not logged)" if held else "",
                extra=context,
            )
        DEAD_LETTERS.labels(SERVICE).inc()
        value = dead_letter_bytes(
            message.topic,
            message.partition,
            message.offset,
            message.key,
            message.value,
            reason,
            SERVICE,
        )
        await settle([await self._topic.send(key=message.key, value=value)])

    async def guard(self, event: faust.EventT[bytes], work: Callable[[], T]) -> T | None:
        """``work``'s result, or None when it failed and ``event`` was dead-lettered."""
        return await guarded(event, work, self, self.limiter)

    def warn(self, message: str) -> None:
        """Log a problem of a record that goes on anyway (throttled with the dead letters)."""
        held = self.limiter.allow()
        if held is not None:
            log.warning("%s%s", message, f" ({held} more lines held back)" if held else "")


class EventRouter:
    """The events agent's loop: each event record becomes its delivery jobs."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        views: MatcherViews,
        formats: dict[str, InputFormat],
        dead_letters: DeadLetters,
        stopper: Stopper,
    ) -> None:
        self._app = app
        self._settings = settings
        self._views = views
        self._formats = formats
        self._dead_letters = dead_letters
        self._stopper = stopper

    async def run(self, stream: faust.StreamT[bytes]) -> None:
        """Route every event, writing its jobs; an event is acked once they are written."""
        limit = self._settings.security.max_event_bytes
        views, dead_letter = self._views, self._dead_letters
        # An event is acked, in offset order, once its jobs are written (see AckWindow): the
        # agent does not wait a producer round trip per event and no offset passes a lost write.
        window = AckWindow(MAX_UNACKED_EVENTS, on_failure=self._stopper.now)
        # Jobs go straight to Faust's producer: ``Topic.send`` wraps each record in a future
        # message, serializer look-ups and sensor calls, a sixth of the matcher's CPU per job.
        producer = await self._app.maybe_start_producer()
        deliveries = self._settings.topics.deliveries
        async for event in records(stream):
            EVENTS_CONSUMED.inc()
            message = event.message
            writes: list[Awaitable[Any]] = []
            reason = oversize_reason(len(event.value or b""), limit)
            if reason is not None:
                await dead_letter(event, reason)
            else:
                await views.fresh_since(fetched_at(message))
                jobs = await dead_letter.guard(
                    event,
                    partial(
                        match_record,
                        event.value,
                        views.directory,
                        now_ms(),
                        fmt=self._formats.get(message.topic, InputFormat.AVRO),
                        headers=message.headers,
                        key=message.key,
                        catalog=views.catalog,
                        warn=dead_letter.warn,
                    ),
                )
                for key, job in jobs or ():
                    writes.append(await producer.send(deliveries, key, job, None, None, None))
                JOBS_PRODUCED.inc(len(writes))
            await window.track(event, message.tp, message.offset, writes)


class CommandApplier:
    """The registry agent's loop: the only writer of the compacted config topic applies each
    webhook command, one key at a time, and waits for the broker before the next."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        views: MatcherViews,
        state_topics: dict[str, faust.TopicT],
        dead_letters: DeadLetters,
    ) -> None:
        self._app = app
        self._settings = settings
        self._views = views
        self._state_topics = state_topics
        self._dead_letters = dead_letters

    async def run(self, stream: faust.StreamT[bytes]) -> None:
        """Plan each command (a bad one is dead-lettered), write its change, then ack it."""
        views = self._views
        grace_ms = self._settings.security.secret_grace_s * 1000
        async for event in records(stream):
            planned = await self._dead_letters.guard(
                event,
                partial(
                    plan_command,
                    event.value,
                    views.directory,
                    views.catalog,
                    now_ms(),
                    secret_grace_ms=grace_ms,
                    allocate_for=partial(self._numbering, event.message.partition),
                ),
            )
            if planned is not None and planned.change is not None:
                await self._write_change(planned)
            event.ack()

    async def _write_change(self, planned: PlannedCommand) -> None:
        """Write a command's change (config or tombstone, status) and wait for the broker."""
        webhook_id, change = planned.webhook_id, planned.change
        if change is None:
            return
        directory = self._views.directory
        sends = [
            await self._state_topics[write.topic].send(
                key=write.key, value=write.value, headers=write.headers
            )
            for write in writes_for(planned, directory, self._settings.topics)
        ]
        if change.deleted:
            revision = directory.revision(webhook_id)
            log.info("webhook %s deleted (revision %d)", webhook_id, revision)
        elif change.config is not None:
            log.info(
                "webhook %s %s (revision %d)", webhook_id, planned.kind, change.config.revision
            )
        if change.status is not None and change.status.outcome is Outcome.DEACTIVATED:
            DEACTIVATIONS.inc()
        await settle(sends)

    def _numbering(self, partition: int, webhook_id: str) -> Allocate:
        """Numeric ids of this command's partition (see ``registry.NumericIds``), looked up
        only when a webhook needs one."""
        commands_topic = self._settings.topics.webhook_commands

        def allocate() -> int | None:
            partitions = self._app.consumer.topic_partitions(commands_topic) or 0
            numeric_id = next_numeric_id(self._views.directory, partition, partitions)
            if numeric_id is None:
                log.warning(
                    "webhook %s: not numbered now, the partition count of %s is not known "
                    "yet; it gets its number with its next write",
                    webhook_id,
                    commands_topic,
                )
            return numeric_id

        return allocate


async def audit(
    stream: faust.StreamT[bytes],
    model: type[WebhookConfig | DeliveryPolicy],
    dead_letters: DeadLetters,
    decoded: Callable[[bytes | None, bytes], bool] | None = None,
) -> None:
    """Dead-letter each record of a compacted state topic that does not decode as ``model``.

    ``decoded(key, value)`` says a record is known to decode (the webhook directory holds it:
    its feed decoded it when it read the topic), so it is not decoded a second time: the audit of
    100,000 webhook configs otherwise took half the matcher's CPU to catch up."""
    async for event in records(stream):
        value = event.value
        if value is not None and not (decoded is not None and decoded(event.key, value)):
            await dead_letters.guard(event, partial(decode, value, model))
        event.ack()
