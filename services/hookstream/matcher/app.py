"""The Faust matcher: domain events in, one delivery job per (event, webhook) out.

The same Faust app runs the registry agent, the only writer of the compacted config topic: it
applies webhook commands one key at a time (see ``hookstream.core.registry``).

At least once: records sent inside an agent are attached to the offset of the event being
processed: an event is acked only once the broker has acknowledged its jobs (the events agent
keeps going meanwhile, see ``hookstream.core.ackwindow``; the other agents wait per record), so an
offset is never committed ahead of its writes: a crash or a failed write repeats work and never
drops it. Agents run with concurrency 1 (faust-streaming #606: concurrency > 1 may
commit past unfinished work).

No input may stop an agent: a record whose handling raises (undecodable, breaking a rule, or
failing in a way nobody foresaw) goes to the dead-letter topic with the reason, and the agent
takes the next one. Handling is split for that: a pure step (decode, match, encode; in
``hookstream.matcher.routing``) whose errors are the record's fault, then the writes, whose errors
are Kafka's and are not dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import faust
import mode

from hookstream.kafka.follower import FETCH_BYTES_PER_PARTITION, MAX_RECORDS
from hookstream.kafka.membership import AssignmentChurn, DuplicateInstanceError
from hookstream.kafka.security import faust_credentials
from hookstream.matcher.agents import (
    AUDIT_BUFFER,
    CommandApplier,
    DeadLetters,
    EventRouter,
    Stopper,
    audit,
)
from hookstream.matcher.faustio import ViewsFirstApp, member_id, skip_unreadable_batches
from hookstream.matcher.views import MatcherViews
from hookstream.records.intake import InputFormat, event_topics
from hookstream.records.models import (
    DeliveryPolicy,
    WebhookConfig,
)
from hookstream.settings import Settings

log = logging.getLogger(__name__)


def faust_broker_url(bootstrap: str) -> str:
    """Faust's spelling of a bootstrap list: ``kafka://h1:9092;kafka://h2:9092``."""
    return ";".join(
        f"kafka://{server.strip()}" for server in bootstrap.split(",") if server.strip()
    )


def _faust_app(settings: Settings, bootstrap: str) -> ViewsFirstApp:
    """The Faust app of the matcher's settings: raw bytes topics, static membership when an
    instance id is set, every write acknowledged by all in-sync replicas."""
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
        # 256 KiB a partition and 2,000 records a poll, not 1 MiB and all fetched: the catch-up
        # of 100,000 webhook configs (the audit) held the difference for good; events still
        # come hundreds per fetch.
        consumer_max_fetch_size=FETCH_BYTES_PER_PARTITION,
        broker_max_poll_records=MAX_RECORDS,
        loghandlers=[],
    )
    skip_unreadable_batches(app)
    return app


@dataclass(frozen=True)
class _Topics:
    """The matcher's Faust topics, all raw bytes (the codec decodes inside the agents)."""

    formats: dict[str, InputFormat]
    events: faust.TopicT
    commands: faust.TopicT
    webhooks: faust.TopicT
    status: faust.TopicT
    settings: faust.TopicT
    deadletter: faust.TopicT


def _declare_topics(app: faust.App, settings: Settings) -> _Topics:
    topics = settings.topics
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    formats = {topic.name: topic.format for topic in event_topics(topics)}
    return _Topics(
        formats=formats,
        events=app.topic(*formats, **raw),
        commands=app.topic(topics.webhook_commands, **raw),
        webhooks=app.topic(topics.webhooks, maxsize=AUDIT_BUFFER, **raw),
        status=app.topic(topics.status, **raw),
        settings=app.topic(topics.settings, **raw),
        deadletter=app.topic(topics.deadletter, **raw),
    )


def create_app(settings: Settings, bootstrap: str) -> faust.App:
    """The matcher's Faust app with its topics, its views and its agents."""
    app = _faust_app(settings, bootstrap)
    topics = _declare_topics(app, settings)
    views = MatcherViews(settings, bootstrap)
    stopper = Stopper(app)
    dead_letters = DeadLetters(topics.deadletter)
    router = EventRouter(app, settings, views, topics.formats, dead_letters, stopper)
    state_topics = {
        settings.topics.webhooks: topics.webhooks,
        settings.topics.status: topics.status,
    }
    registry = CommandApplier(app, settings, views, state_topics, dead_letters)
    _manage_lifetimes(app, settings, views, stopper)
    _add_agents(app, topics, views, stopper, router, registry, dead_letters)
    return app


def _manage_lifetimes(
    app: ViewsFirstApp, settings: Settings, views: MatcherViews, stopper: Stopper
) -> None:
    """The views start before the consumer joins the group and stop with the worker; a frozen
    view or a second member under this instance id stops the worker."""

    async def start_views() -> None:
        """Ops endpoints, then the views, caught up before the consumer joins the group; a view
        that stops following its topic would route with stale configs: it stops the worker."""
        await views.start()
        stopper.keep(asyncio.ensure_future(crash_on_frozen_view()))
        await views.wait_ready()

    async def crash_on_frozen_view() -> None:
        """Stop the worker when a view stops (it exits non-zero and is restarted)."""
        await app.crash(await views.first_failure())

    app.before_consumer = start_views
    churn = AssignmentChurn(f"{settings.app_id}-matcher", settings.group_instance_id)

    @app.on_partitions_assigned.connect
    async def check_membership(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Two live matchers under one HOOKSTREAM_GROUP_INSTANCE_ID: stop, naming it."""
        try:
            churn.assigned(member_id(app))
        except DuplicateInstanceError as exc:
            log.critical("%s", exc)
            stopper.now(exc)

    @app.service
    class DirectoryService(mode.Service):
        """Stops the config feeds and the ops endpoints with the worker (started before it)."""

        async def on_stop(self) -> None:
            await views.stop()


def _add_agents(
    app: faust.App,
    topics: _Topics,
    views: MatcherViews,
    stopper: Stopper,
    router: EventRouter,
    registry: CommandApplier,
    dead_letters: DeadLetters,
) -> None:
    """One agent per input topic, each a few lines over its loop in ``matcher.agents``."""

    @app.agent(topics.events, concurrency=1)
    async def match_events(stream: faust.StreamT[bytes]) -> None:
        await views.wait_ready()
        await stopper.run("events", router.run(stream))

    # Every process reads the two compacted state topics whole and skips what it cannot decode;
    # these agents, one consumer group for all matcher replicas, dead-letter each such record
    # once, so a bad write by someone outside hookstream is seen and kept.
    @app.agent(topics.webhooks, concurrency=1)
    async def audit_webhook_configs(stream: faust.StreamT[bytes]) -> None:
        await stopper.run(
            "webhook audit", audit(stream, WebhookConfig, dead_letters, views.directory.holds)
        )

    @app.agent(topics.settings, concurrency=1)
    async def audit_settings(stream: faust.StreamT[bytes]) -> None:
        await stopper.run("settings audit", audit(stream, DeliveryPolicy, dead_letters))

    @app.agent(topics.commands, concurrency=1)
    async def apply_commands(stream: faust.StreamT[bytes]) -> None:
        await views.wait_ready()
        await stopper.run("commands", registry.run(stream))


def run_matcher(settings: Settings, bootstrap: str) -> None:
    """Run the matcher worker until a signal stops it."""
    app = create_app(settings, bootstrap)
    worker = faust.Worker(
        app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False, override_logging=False
    )
    worker.execute_from_commandline()
