"""The Faust matcher: domain events in, one delivery job per (event, webhook) out.

The same Faust app runs the registry agent, the only writer of the compacted config topic: it
applies webhook commands one key at a time (see ``hookstream.registry``).

At least once: records sent inside an agent are attached to the offset of the event being
processed: an event is acked only once the broker has acknowledged its jobs (the events agent
keeps going meanwhile, see ``hookstream.ackwindow``; the other agents wait per record), so an
offset is never committed ahead of its writes: a crash or a failed write repeats work and never
drops it. Agents run with concurrency 1 (faust-streaming #606: concurrency > 1 may
commit past unfinished work).

No input may stop an agent: a record whose handling raises (undecodable, breaking a rule, or
failing in a way nobody foresaw) goes to the dead-letter topic with the reason, and the agent
takes the next one. Handling is split for that: a pure step (decode, match, encode) whose errors
are the record's fault, then the writes, whose errors are Kafka's and are not dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, cast

import faust
import mode

from hookstream.ackwindow import AckWindow
from hookstream.catalog import CatalogFeed, EventCatalog, catalog_topic
from hookstream.codec import decode, encode, encode_jobs
from hookstream.directory import REVISION_HEADER, DirectoryFeed, WebhookDirectory
from hookstream.errors import DecodeError
from hookstream.faustio import ViewsFirstApp, fetched_at, member_id, skip_unreadable_batches
from hookstream.intake import Headers, InputFormat, IntakeError, decode_event, event_topics
from hookstream.kafkaauth import faust_credentials
from hookstream.kafkaio import dead_letter_bytes
from hookstream.membership import AssignmentChurn, DuplicateInstanceError
from hookstream.metrics import DEACTIVATIONS, DEAD_LETTERS, EVENTS_CONSUMED, JOBS_PRODUCED
from hookstream.models import (
    CommandKind,
    DeliveryPolicy,
    DomainEvent,
    Outcome,
    WebhookCommand,
    WebhookConfig,
    delivery_id_for,
    now_ms,
)
from hookstream.ops import OpsServer
from hookstream.registry import Allocate, Change, NumericIds, apply_command
from hookstream.settings import Settings
from hookstream.triggers import TriggerError, parse_triggers

log = logging.getLogger(__name__)

SERVICE = "matcher"
#: Longest dead-letter reason kept; an exception's message can be as large as its input.
MAX_REASON_LENGTH = 2000
#: Events whose jobs may be waiting for the broker's acknowledgement at once.
MAX_UNACKED_EVENTS = 1000

T = TypeVar("T")


def jobs_for(
    domain_event: DomainEvent, directory: WebhookDirectory, triggered_at: int
) -> list[tuple[bytes, bytes]]:
    """The delivery jobs of one event, encoded: (key, value) per matching webhook.

    The event is encoded once for all its jobs (``encode_jobs``), not once per webhook."""
    matches = directory.match(domain_event.source, domain_event.resource_id, domain_event.operation)
    if not matches:
        return []
    event_id = domain_event.event_id
    heads = [
        (
            delivery_id_for(event_id, match.webhook.webhook_id),
            match.webhook.webhook_id,
            match.trigger.text,
        )
        for match in matches
    ]
    values = encode_jobs([domain_event], heads, due_at=triggered_at, triggered_at=triggered_at)
    # Keyed by delivery, not webhook: one busy webhook's jobs spread over every partition and
    # so over every sender replica (no order between deliveries is promised).
    return [(head[0].encode(), value) for head, value in zip(heads, values, strict=True)]


class SchemaViolationError(IntakeError):
    """An event breaks the JSON Schema its catalog type declares (and the type rejects such)."""


def match_record(
    value: bytes | None,
    directory: WebhookDirectory,
    triggered_at: int,
    *,
    fmt: InputFormat = InputFormat.AVRO,
    headers: Headers = None,
    key: bytes | None = None,
    catalog: EventCatalog | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[tuple[bytes, bytes]]:
    """Decode an event record in its topic's format and encode its delivery jobs; raises
    DecodeError for bad input, SchemaViolationError for an event its catalog type refuses (a
    type in ``warn`` mode reports the violation to ``warn`` and the event goes on)."""
    domain_event = decode_event(value, fmt, headers, key)
    if catalog is not None:
        problem = catalog.check(
            domain_event.source, domain_event.operation, domain_event.properties
        )
        if problem is not None:
            event_type = catalog.get(domain_event.source, domain_event.operation)
            message = (
                f"event {domain_event.event_id!r} breaks the JSON Schema of event type "
                f"{event_type.name if event_type else domain_event.source}: {problem}"
            )
            if event_type is None or event_type.schema_mode == "reject" or warn is None:
                raise SchemaViolationError(message)
            warn(message)
    return jobs_for(domain_event, directory, triggered_at)


def failure_reason(exc: Exception) -> str:
    """A dead letter's reason for an exception: the message of a DecodeError, else the type and
    message; always encodable (a message may quote input that UTF-8 cannot encode) and bounded."""
    reason = str(exc) if isinstance(exc, DecodeError) else f"{type(exc).__name__}: {exc}"
    reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(reason) > MAX_REASON_LENGTH:
        reason = reason[:MAX_REASON_LENGTH] + " [...]"
    return reason


class LogLimiter:
    """At most ``burst`` log lines per ``window_s``; the next line allowed says how many were
    held back, so a flood of bad records cannot flood the log too (the metric counts them all)."""

    def __init__(
        self, burst: int = 20, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._burst = burst
        self._window_s = window_s
        self._clock = clock
        self._window_start = clock()
        self._lines = 0
        self.suppressed = 0

    def allow(self) -> int | None:
        """None if this line must be held back, else the number held back before it."""
        now = self._clock()
        if now - self._window_start >= self._window_s:
            self._window_start, self._lines = now, 0
        if self._lines >= self._burst:
            self.suppressed += 1
            return None
        self._lines += 1
        held, self.suppressed = self.suppressed, 0
        return held


def faust_broker_url(bootstrap: str) -> str:
    """Faust's spelling of a bootstrap list: ``kafka://h1:9092;kafka://h2:9092``."""
    return ";".join(
        f"kafka://{server.strip()}" for server in bootstrap.split(",") if server.strip()
    )


async def guarded(
    event: faust.EventT[bytes],
    work: Callable[[], T],
    dead_letter: Callable[[faust.EventT[bytes], str], Awaitable[None]],
    limiter: LogLimiter,
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


def create_app(settings: Settings, bootstrap: str) -> faust.App:
    """The matcher's Faust app with its topics, the directory feed and both agents."""
    topics = settings.topics
    settings.matcher.data_dir.mkdir(parents=True, exist_ok=True)
    app = ViewsFirstApp(
        f"{settings.app_id}-matcher",
        broker=faust_broker_url(bootstrap),
        store="memory://",
        datadir=str(settings.matcher.data_dir / settings.app_id),
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        broker_commit_interval=settings.matcher.commit_interval_s,
        broker_session_timeout=settings.group_session_timeout_s,
        broker_heartbeat_interval=settings.group_heartbeat_interval_s,
        consumer_group_instance_id=settings.group_instance_id,
        broker_credentials=faust_credentials(settings.kafka_security),
        producer_acks=-1,
        producer_linger=settings.matcher.producer_linger_s,
        consumer_auto_offset_reset="earliest",
        loghandlers=[],
    )
    skip_unreadable_batches(app)
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    inputs = event_topics(topics)
    formats = {topic.name: topic.format for topic in inputs}
    events_topic = app.topic(*formats, **raw)
    commands_topic = app.topic(topics.webhook_commands, **raw)
    webhooks_topic = app.topic(topics.webhooks, **raw)
    status_topic = app.topic(topics.status, **raw)
    settings_topic = app.topic(topics.settings, **raw)
    deadletter_topic = app.topic(topics.deadletter, **raw)

    catalog = EventCatalog()
    directory = WebhookDirectory(catalog.lenient())
    feed = DirectoryFeed(
        directory,
        bootstrap,
        topics.webhooks,
        f"{settings.app_id}-matcher-directory",
        settings.kafka_security,
    )
    catalog_feed = CatalogFeed(
        catalog,
        bootstrap,
        catalog_topic(topics),
        f"{settings.app_id}-matcher-catalog",
        settings.kafka_security,
        on_change=directory.refresh,
    )

    def ready() -> bool:
        return feed.ready.is_set() and catalog_feed.ready.is_set()

    async def wait_ready() -> None:
        await catalog_feed.wait_ready(settings.matcher.ready_timeout_s)
        await feed.wait_ready(settings.matcher.ready_timeout_s)

    async def views_fresh_since(moment: float) -> None:
        """Both views hold what their topics had at ``moment`` (a webhook created, an event
        type declared just before an event was published is used for it)."""
        if min(feed.fresh_at, catalog_feed.fresh_at) < moment:
            await asyncio.gather(catalog_feed.fresh_since(moment), feed.fresh_since(moment))

    views = (feed, catalog_feed)
    ops = OpsServer(
        settings.ops.host,
        settings.ops.matcher_port,
        ready=ready,
        problems=lambda: [problem for view in views if (problem := view.problem())],
    )

    async def start_views() -> None:
        """Ops endpoints, then the views, caught up before the consumer joins the group."""
        await ops.start()
        await catalog_feed.start()
        await feed.start()
        watch = asyncio.ensure_future(crash_on_frozen_view())
        crashes.add(watch)
        await wait_ready()

    async def crash_on_frozen_view() -> None:
        """A view that stopped following its topic (a wrong secrets key, a bug) would route
        with stale configs: stop the worker instead (it exits non-zero and is restarted)."""
        waits = [asyncio.ensure_future(view.failed.wait()) for view in views]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        failed = next(view for view in views if view.failed.is_set())
        await app.crash(failed.failure or RuntimeError(failed.problem()))

    app.before_consumer = start_views
    churn = AssignmentChurn(f"{settings.app_id}-matcher", settings.group_instance_id)

    @app.on_partitions_assigned.connect
    async def check_membership(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Two live matchers under one HOOKSTREAM_GROUP_INSTANCE_ID: stop, naming it."""
        try:
            churn.assigned(member_id(app))
        except DuplicateInstanceError as exc:
            log.critical("%s", exc)
            crashes.add(asyncio.ensure_future(app.crash(exc)))

    @app.service
    class DirectoryService(mode.Service):
        """Stops the config feeds and the ops endpoints with the worker (started before it)."""

        async def on_stop(self) -> None:
            await feed.stop()
            await catalog_feed.stop()
            await ops.stop()

    limiter = LogLimiter()

    async def dead_letter(event: faust.EventT[bytes], reason: str) -> None:
        message = event.message
        context = {"topic": message.topic, "partition": message.partition, "offset": message.offset}
        held = limiter.allow()
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
        await settle([await deadletter_topic.send(key=message.key, value=value)])

    async def settle(sends: list[Awaitable[Any]]) -> None:
        """Wait until the broker has every write of this record, before its offset is acked; a
        write that fails raises here and stops the process (see ``stopping``)."""
        if sends:
            await asyncio.gather(*sends)

    crashes: set[asyncio.Task[None]] = set()

    def stop_process(exc: BaseException) -> None:
        """Crash the worker (it exits non-zero and is restarted): a Faust agent that merely
        raised would be restarted in place, commit, and read on past the record that failed."""
        task = asyncio.ensure_future(app.crash(exc))
        crashes.add(task)
        task.add_done_callback(crashes.discard)

    async def stopping(agent: str, work: Awaitable[None]) -> None:
        """Run an agent's loop; whatever escapes it (a failed write, a bug) stops the process."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("the %s agent failed; stopping the matcher", agent)
            await app.crash(exc)

    def records(stream: faust.StreamT[bytes]) -> Any:
        """The stream's events, acked by the agent itself, only once what they caused is safe
        (Faust would ack each one when the next is taken, even after a failed write)."""
        return cast(Any, stream).noack().events()

    def warn(message: str) -> None:
        held = limiter.allow()
        if held is not None:
            log.warning("%s%s", message, f" ({held} more lines held back)" if held else "")

    @app.agent(events_topic, concurrency=1)
    async def match_events(stream: faust.StreamT[bytes]) -> None:
        await wait_ready()
        await stopping("events", _match_events(stream))

    async def _match_events(stream: faust.StreamT[bytes]) -> None:
        limit = settings.security.max_event_bytes
        # An event is acked, in offset order, once its jobs are written (see AckWindow): the
        # agent does not wait a producer round trip per event and no offset passes a lost write.
        window = AckWindow(MAX_UNACKED_EVENTS, on_failure=stop_process)
        # Jobs go straight to Faust's producer: ``Topic.send`` wraps each record in a future
        # message, serializer look-ups and sensor calls, a sixth of the matcher's CPU per job.
        producer = await app.maybe_start_producer()
        deliveries = topics.deliveries
        async for event in records(stream):
            EVENTS_CONSUMED.inc()
            message = event.message
            writes: list[Awaitable[Any]] = []
            size = len(event.value or b"")
            if size > limit:
                reason = (
                    f"event of {size} bytes exceeds HOOKSTREAM_SECURITY__MAX_EVENT_BYTES={limit}"
                )
                await dead_letter(event, reason)
            else:
                await views_fresh_since(fetched_at(message))
                jobs = await guarded(
                    event,
                    partial(
                        match_record,
                        event.value,
                        directory,
                        now_ms(),
                        fmt=formats.get(message.topic, InputFormat.AVRO),
                        headers=message.headers,
                        key=message.key,
                        catalog=catalog,
                        warn=warn,
                    ),
                    dead_letter,
                    limiter,
                )
                for key, job in jobs or ():
                    writes.append(await producer.send(deliveries, key, job, None, None, None))
                JOBS_PRODUCED.inc(len(writes))
            await window.track(event, message.tp, message.offset, writes)

    # Every process reads the two compacted state topics whole and skips what it cannot decode;
    # these agents, one consumer group for all matcher replicas, dead-letter each such record
    # once, so a bad write by someone outside hookstream is seen and kept.
    @app.agent(webhooks_topic, concurrency=1)
    async def audit_webhook_configs(stream: faust.StreamT[bytes]) -> None:
        await stopping("webhook audit", _audit(stream, WebhookConfig))

    @app.agent(settings_topic, concurrency=1)
    async def audit_settings(stream: faust.StreamT[bytes]) -> None:
        await stopping("settings audit", _audit(stream, DeliveryPolicy))

    async def _audit(
        stream: faust.StreamT[bytes], model: type[WebhookConfig | DeliveryPolicy]
    ) -> None:
        async for event in records(stream):
            if event.value is not None:  # not a tombstone
                await guarded(event, partial(decode, event.value, model), dead_letter, limiter)
            event.ack()

    @app.agent(commands_topic, concurrency=1)
    async def apply_commands(stream: faust.StreamT[bytes]) -> None:
        await wait_ready()
        await stopping("commands", _apply_commands(stream))

    async def _apply_commands(stream: faust.StreamT[bytes]) -> None:
        async for event in records(stream):
            planned = await guarded(
                event,
                partial(_plan_command, event.value, event.message.partition),
                dead_letter,
                limiter,
            )
            if planned is not None and planned.change is not None:
                await _write_change(planned)
            event.ack()

    async def _write_change(planned: _PlannedCommand) -> None:
        """Write a command's change (config or tombstone, status) and wait for the broker."""
        webhook_id, change = planned.webhook_id, planned.change
        if change is None:
            return
        key = webhook_id.encode()
        sends: list[Awaitable[Any]] = []
        if change.deleted:
            revision = directory.revision(webhook_id) + 1
            directory.delete(webhook_id, revision)
            sends.append(
                await webhooks_topic.send(
                    key=key, value=None, headers={REVISION_HEADER: str(revision).encode()}
                )
            )
            log.info("webhook %s deleted (revision %d)", webhook_id, revision)
        elif change.config is not None:
            directory.put(change.config)
            sends.append(
                await webhooks_topic.send(
                    key=key,
                    value=planned.config_bytes,
                    headers={REVISION_HEADER: str(change.config.revision).encode()},
                )
            )
            log.info(
                "webhook %s %s (revision %d)", webhook_id, planned.kind, change.config.revision
            )
        if change.status is not None:
            sends.append(await status_topic.send(key=key, value=planned.status_bytes))
            if change.status.outcome is Outcome.DEACTIVATED:
                DEACTIVATIONS.inc()
        await settle(sends)

    def _numbering(partition: int, webhook_id: str) -> Allocate:
        """Numeric ids of this command's partition (see ``registry.NumericIds``), looked up
        only when a webhook needs one."""

        def allocate() -> int | None:
            partitions = app.consumer.topic_partitions(topics.webhook_commands)
            if not partitions or not 0 <= partition < partitions:
                log.warning(
                    "webhook %s: not numbered now, the partition count of %s is not known "
                    "yet; it gets its number with its next write",
                    webhook_id,
                    topics.webhook_commands,
                )
                return None
            taken = [config.numeric_id for config in directory.all()]
            return NumericIds(partition, partitions).next_id(taken)

        return allocate

    def _plan_command(value: bytes | None, partition: int) -> _PlannedCommand:
        command = decode(value, WebhookCommand)
        webhook_id = command.webhook_id
        if command.config is not None:
            # The admin API checks catalog triggers; this holds for every other writer too.
            try:
                parse_triggers(command.config.triggers, command.config.smart_group_id, catalog)
            except TriggerError as exc:
                raise DecodeError(f"webhook {webhook_id!r} refused: {exc}") from None
        change = apply_command(
            directory.get(webhook_id),
            command,
            now_ms(),
            directory.revision(webhook_id),
            secret_grace_ms=settings.security.secret_grace_s * 1000,
            allocate=_numbering(partition, webhook_id),
        )
        if change is None:
            return _PlannedCommand(webhook_id, command.kind, None, None, None)
        return _PlannedCommand(
            webhook_id,
            command.kind,
            change,
            encode(change.config) if change.config is not None else None,
            encode(change.status) if change.status is not None else None,
        )

    return app


@dataclass(frozen=True)
class _PlannedCommand:
    """A command's change with its records already encoded, so nothing can fail halfway."""

    webhook_id: str
    kind: CommandKind
    change: Change | None
    config_bytes: bytes | None
    status_bytes: bytes | None


def run_matcher(settings: Settings, bootstrap: str) -> None:
    """Run the matcher worker until a signal stops it."""
    app = create_app(settings, bootstrap)
    worker = faust.Worker(
        app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False, override_logging=False
    )
    worker.execute_from_commandline()
