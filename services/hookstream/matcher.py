"""The Faust matcher: domain events in, one delivery job per (event, webhook) out.

The same Faust app runs the registry agent, the only writer of the compacted config topic: it
applies webhook commands one key at a time (see ``hookstream.registry``).

At least once: records sent inside an agent are attached to the offset of the event being
processed and published before Faust commits that offset, so a crash repeats work and never
drops it. Agents run with concurrency 1 (faust-streaming #606: concurrency > 1 may commit past
unfinished work).
"""

from __future__ import annotations

import logging
from typing import Any

import faust
import mode

from hookstream.codec import decode, encode
from hookstream.directory import REVISION_HEADER, DirectoryFeed, WebhookDirectory
from hookstream.errors import DecodeError
from hookstream.kafkaauth import faust_credentials
from hookstream.kafkaio import dead_letter_bytes
from hookstream.metrics import DEACTIVATIONS, DEAD_LETTERS, EVENTS_CONSUMED, JOBS_PRODUCED
from hookstream.models import (
    DeliveryJob,
    DeliveryPolicy,
    DomainEvent,
    Outcome,
    WebhookCommand,
    WebhookConfig,
    delivery_id_for,
    now_ms,
)
from hookstream.ops import OpsServer
from hookstream.registry import apply_command
from hookstream.settings import Settings

log = logging.getLogger(__name__)

SERVICE = "matcher"


def faust_broker_url(bootstrap: str) -> str:
    """Faust's spelling of a bootstrap list: ``kafka://h1:9092;kafka://h2:9092``."""
    return ";".join(
        f"kafka://{server.strip()}" for server in bootstrap.split(",") if server.strip()
    )


def create_app(settings: Settings, bootstrap: str) -> faust.App:
    """The matcher's Faust app with its topics, the directory feed and both agents."""
    topics = settings.topics
    settings.matcher.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        f"{settings.app_id}-matcher",
        broker=faust_broker_url(bootstrap),
        store="memory://",
        datadir=str(settings.matcher.data_dir / settings.app_id),
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        broker_commit_interval=settings.matcher.commit_interval_s,
        broker_session_timeout=settings.group_session_timeout_s,
        broker_heartbeat_interval=settings.group_session_timeout_s / 3,
        broker_credentials=faust_credentials(settings.kafka_security),
        producer_acks=-1,
        producer_linger=settings.matcher.producer_linger_s,
        consumer_auto_offset_reset="earliest",
        loghandlers=[],
    )
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    events_topic = app.topic(*topics.events, **raw)
    commands_topic = app.topic(topics.webhook_commands, **raw)
    deliveries_topic = app.topic(topics.deliveries, **raw)
    webhooks_topic = app.topic(topics.webhooks, **raw)
    status_topic = app.topic(topics.status, **raw)
    settings_topic = app.topic(topics.settings, **raw)
    deadletter_topic = app.topic(topics.deadletter, **raw)

    directory = WebhookDirectory()
    feed = DirectoryFeed(
        directory,
        bootstrap,
        topics.webhooks,
        f"{settings.app_id}-matcher-directory",
        settings.kafka_security,
    )

    ops = OpsServer(settings.ops.host, settings.ops.matcher_port, ready=feed.ready.is_set)

    @app.service
    class DirectoryService(mode.Service):
        """Runs the config feed and the ops endpoints for the worker's lifetime."""

        async def on_start(self) -> None:
            await ops.start()
            await feed.start()

        async def on_stop(self) -> None:
            await feed.stop()
            await ops.stop()

    async def dead_letter(event: faust.EventT[bytes], reason: str) -> None:
        message = event.message
        log.error(
            "dead-lettering %s[%d]@%d: %s", message.topic, message.partition, message.offset, reason
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
        await deadletter_topic.send(key=message.key, value=value)

    @app.agent(events_topic, concurrency=1)
    async def match_events(stream: faust.StreamT[bytes]) -> None:
        await feed.wait_ready(settings.matcher.ready_timeout_s)
        limit = settings.security.max_event_bytes
        async for event in stream.events():
            EVENTS_CONSUMED.inc()
            size = len(event.value or b"")
            if size > limit:
                reason = (
                    f"event of {size} bytes exceeds HOOKSTREAM_SECURITY__MAX_EVENT_BYTES={limit}"
                )
                await dead_letter(event, reason)
                continue
            try:
                domain_event = decode(event.value, DomainEvent)
            except DecodeError as exc:
                await dead_letter(event, str(exc))
                continue
            triggered_at = now_ms()
            for match in directory.match(
                domain_event.source, domain_event.resource_id, domain_event.operation
            ):
                webhook_id = match.webhook.webhook_id
                job = DeliveryJob(
                    delivery_id=delivery_id_for(domain_event.event_id, webhook_id),
                    webhook_id=webhook_id,
                    trigger=match.trigger.text,
                    events=[domain_event],
                    attempt=1,
                    due_at=triggered_at,
                    triggered_at=triggered_at,
                )
                await deliveries_topic.send(key=webhook_id.encode(), value=encode(job))
                JOBS_PRODUCED.inc()

    # Every process reads the two compacted state topics whole and skips what it cannot decode;
    # these agents, one consumer group for all matcher replicas, dead-letter each such record
    # once, so a bad write by someone outside hookstream is seen and kept.
    @app.agent(webhooks_topic, concurrency=1)
    async def audit_webhook_configs(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await _audit(event, WebhookConfig)

    @app.agent(settings_topic, concurrency=1)
    async def audit_settings(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await _audit(event, DeliveryPolicy)

    async def _audit(
        event: faust.EventT[bytes], model: type[WebhookConfig | DeliveryPolicy]
    ) -> None:
        if event.value is None:  # a tombstone
            return
        try:
            decode(event.value, model)
        except DecodeError as exc:
            await dead_letter(event, str(exc))

    @app.agent(commands_topic, concurrency=1)
    async def apply_commands(stream: faust.StreamT[bytes]) -> None:
        await feed.wait_ready(settings.matcher.ready_timeout_s)
        async for event in stream.events():
            try:
                command = decode(event.value, WebhookCommand)
            except DecodeError as exc:
                await dead_letter(event, str(exc))
                continue
            webhook_id = command.webhook_id
            change = apply_command(
                directory.get(webhook_id),
                command,
                now_ms(),
                directory.revision(webhook_id),
                secret_grace_ms=settings.security.secret_grace_s * 1000,
            )
            if change is None:
                continue
            key = webhook_id.encode()
            if change.deleted:
                revision = directory.revision(webhook_id) + 1
                directory.delete(webhook_id, revision)
                await webhooks_topic.send(
                    key=key, value=None, headers={REVISION_HEADER: str(revision).encode()}
                )
                log.info("webhook %s deleted (revision %d)", webhook_id, revision)
            elif change.config is not None:
                directory.put(change.config)
                await webhooks_topic.send(
                    key=key,
                    value=encode(change.config),
                    headers={REVISION_HEADER: str(change.config.revision).encode()},
                )
                log.info(
                    "webhook %s %s (revision %d)", webhook_id, command.kind, change.config.revision
                )
            if change.status is not None:
                await status_topic.send(key=key, value=encode(change.status))
                if change.status.outcome is Outcome.DEACTIVATED:
                    DEACTIVATIONS.inc()

    return app


def run_matcher(settings: Settings, bootstrap: str) -> None:
    """Run the matcher worker until a signal stops it."""
    app = create_app(settings, bootstrap)
    worker = faust.Worker(
        app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False, override_logging=False
    )
    worker.execute_from_commandline()
