"""Everything the admin service holds open: its views of Kafka, a producer, an HTTP client.

``open_state`` opens every I/O lifetime in one place and closes them in reverse; the app's
lifespan is just that. Writes go to Kafka and are then awaited in the admin's own views (a
``Watch`` wakes waiters whenever a view applies a record), never with fixed sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError

from hookstream.admin.recovery_jobs import run_recovery
from hookstream.admin.replay_jobs import Replay, run_replay
from hookstream.admin.store import Clock
from hookstream.history.config import open_store
from hookstream.history.ingest import HistoryIngest
from hookstream.history.store import HistoryStore
from hookstream.kafka.clients import make_producer
from hookstream.net.egress import make_http_client
from hookstream.records.codec import encode
from hookstream.records.models import DeliveryPolicy, WebhookCommand, WebhookConfig
from hookstream.settings import KafkaSecuritySettings, Settings
from hookstream.views.directory import WebhookDirectory
from hookstream.views.directory_feed import DirectoryFeed
from hookstream.views.policy import POLICY_KEY, PolicyFeed

log = logging.getLogger(__name__)

#: How often expired deliveries are deleted from the history.
PRUNE_INTERVAL_S = 60.0


class View(Protocol):
    """Something that catches up with Kafka: a live view or the history's ingest."""

    ready: asyncio.Event


class Watch:
    """Lets coroutines wait until a condition on a view holds; ``notify`` after every change."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """True as soon as ``condition()`` holds; False if it still does not after the bound."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not condition():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return condition()
        return True


class WatchedDirectoryFeed(DirectoryFeed):
    """The webhook view, waking waiters after every record."""

    def __init__(
        self,
        directory: WebhookDirectory,
        bootstrap: str,
        topic: str,
        client_id: str,
        security: KafkaSecuritySettings | None = None,
    ) -> None:
        super().__init__(directory, bootstrap, topic, client_id, security=security)
        self.watch = Watch()

    def apply(self, record: Any) -> None:
        super().apply(record)
        self.watch.notify()


class WatchedPolicyFeed(PolicyFeed):
    """The delivery-policy view, waking waiters after every record."""

    def __init__(self, settings: Settings, bootstrap: str, client_id: str) -> None:
        super().__init__(
            settings.delivery,
            bootstrap,
            settings.topics.settings,
            client_id,
            security=settings.kafka_security,
        )
        self.watch = Watch()

    def apply(self, record: Any) -> None:
        super().apply(record)
        self.watch.notify()


@dataclass
class AdminState:
    """The admin service's views, producer and HTTP client, as the routes see them."""

    settings: Settings
    directory: WebhookDirectory
    webhooks: WatchedDirectoryFeed
    policy: WatchedPolicyFeed
    store: HistoryStore
    producer: AIOKafkaProducer
    http: httpx.AsyncClient
    clock: Clock
    store_feeds: list[View] = field(default_factory=list)
    #: Bulk recoveries running in this process, by job id.
    recoveries: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    #: The broker the admin talks to (replays read the event topics from it).
    bootstrap: str = ""
    #: Replays from Kafka of this process (kept in memory), and their tasks, by job id.
    replays: dict[str, Replay] = field(default_factory=dict)
    replay_tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def waiting_for(self) -> list[str]:
        """The views that have not caught up yet (empty when ready)."""
        views: list[tuple[str, View]] = [
            ("webhooks", self.webhooks),
            ("settings", self.policy),
            *(("notification status", feed) for feed in self.store_feeds),
        ]
        return sorted({name for name, feed in views if not feed.ready.is_set()})

    async def _send(self, topic: str, key: bytes, value: bytes) -> None:
        """Write one record and wait for its acknowledgement, at most the write timeout."""
        timeout_s = self.settings.admin.write_timeout_s
        try:
            await asyncio.wait_for(
                self.producer.send_and_wait(topic, value=value, key=key), timeout_s
            )
        except TimeoutError:
            raise KafkaTimeoutError(f"{topic} did not acknowledge within {timeout_s:g} s") from None

    async def command(self, command: WebhookCommand) -> None:
        """Hand a change to the registry through the command topic."""
        await self._send(
            self.settings.topics.webhook_commands, command.webhook_id.encode(), encode(command)
        )
        log.info(
            "sent %s for webhook %s",
            command.kind,
            command.webhook_id,
            extra={"webhook_id": command.webhook_id},
        )

    async def publish_policy(self, policy: DeliveryPolicy) -> None:
        await self._send(self.settings.topics.settings, POLICY_KEY, encode(policy))
        log.info("published delivery policy %s", policy.model_dump())

    async def publish_job(self, topic: str, key: bytes, value: bytes) -> None:
        await self._send(topic, key, value)

    async def publish_jobs(self, records: list[tuple[bytes, bytes]]) -> None:
        """Write (key, value) jobs to the deliveries topic; wait for every acknowledgement, at
        most the write timeout."""
        topic, timeout_s = self.settings.topics.deliveries, self.settings.admin.write_timeout_s
        futures = [await self.producer.send(topic, value=value, key=key) for key, value in records]
        try:
            await asyncio.wait_for(asyncio.gather(*futures), timeout_s)
        except TimeoutError:
            raise KafkaTimeoutError(f"{topic} did not acknowledge within {timeout_s:g} s") from None

    def start_replay(self, replay: Replay, config: WebhookConfig) -> None:
        """Run ``replay`` in the background."""
        self.replays[replay.job_id] = replay
        self.replay_tasks[replay.job_id] = asyncio.create_task(
            run_replay(
                replay, config, self.settings, self.bootstrap, self.publish_jobs, self.clock
            ),
            name=f"replay-{replay.job_id}",
        )

    def start_recovery(self, job_id: str) -> None:
        """Run recovery ``job_id`` in the background, unless it already runs here."""
        running = self.recoveries.get(job_id)
        if running is not None and not running.done():
            return
        self.recoveries[job_id] = asyncio.create_task(
            run_recovery(self.store, job_id, self.publish_jobs, self.clock),
            name=f"recovery-{job_id}",
        )


async def _prune_forever(store: HistoryStore, clock: Clock) -> None:
    """Delete expired deliveries now and then; on a shared database only the ingesting replica
    does. A failed round is logged and tried again at the next."""
    while True:
        await asyncio.sleep(PRUNE_INTERVAL_S)
        try:
            if await asyncio.to_thread(store.try_lead):
                deleted = await asyncio.to_thread(store.prune, clock())
                if deleted:
                    log.info("deleted %d expired deliveries from the history", deleted)
        except Exception as exc:
            log.error(
                "pruning the delivery history failed: %s; retrying in %g s", exc, PRUNE_INTERVAL_S
            )


def warn_short_job_retention(settings: Settings) -> bool:
    """Warn (and say True) when the deliveries topic keeps jobs for less time than the history
    lists failed deliveries: a history rebuilt from the topics would then miss some."""
    kept_ms = settings.topics.deliveries_retention_ms
    if kept_ms >= settings.admin.failure_retention_s * 1000:
        return False
    log.warning(
        "HOOKSTREAM_TOPICS__DELIVERIES_RETENTION_MS (%d ms) is shorter than "
        "HOOKSTREAM_ADMIN__FAILURE_RETENTION_S (%d s): a delivery history rebuilt from the topics "
        "would miss the oldest failed deliveries; raise the topic retention "
        "(then run `hookstream topics create` to apply it)",
        kept_ms,
        settings.admin.failure_retention_s,
    )
    return True


@contextlib.asynccontextmanager
async def open_state(
    settings: Settings, bootstrap: str, clock: Clock, history: HistoryStore | None = None
) -> AsyncIterator[AdminState]:
    """Open every I/O lifetime of the admin service; close them in reverse order on exit.

    ``history`` is the delivery history to use (and close at the end) instead of the one the
    settings name.
    """
    client_id = f"{settings.app_id}-admin"
    topics = settings.topics
    warn_short_job_retention(settings)
    # Every config decoded: the API lists, filters and sorts them all (docs/operations.md).
    directory = WebhookDirectory(cache_size=None)
    store = history if history is not None else await asyncio.to_thread(open_store, settings)
    security = settings.kafka_security
    webhooks = WatchedDirectoryFeed(
        directory, bootstrap, topics.webhooks, f"{client_id}-webhooks", security
    )
    policy = WatchedPolicyFeed(settings, bootstrap, f"{client_id}-policy")
    ingest = HistoryIngest(
        store, bootstrap, topics.deliveries, topics.status, f"{client_id}-history", security
    )
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(store.close)
        for feed in (webhooks, policy, ingest):
            stack.push_async_callback(feed.stop)
            await feed.start()
        producer = make_producer(bootstrap, client_id, security)
        stack.push_async_callback(producer.stop)
        await producer.start()
        http = await stack.enter_async_context(make_http_client(settings))
        pruner = asyncio.create_task(_prune_forever(store, clock), name="admin-prune")
        stack.push_async_callback(_cancel, pruner)
        state = AdminState(
            settings=settings,
            directory=directory,
            webhooks=webhooks,
            policy=policy,
            store=store,
            producer=producer,
            http=http,
            clock=clock,
            store_feeds=[ingest],
            bootstrap=bootstrap,
        )
        stack.push_async_callback(_cancel_all, state.recoveries)
        stack.push_async_callback(_cancel_all, state.replay_tasks)
        if await asyncio.to_thread(store.try_lead):
            # Jobs a previous run left unfinished go on from where they got to.
            for job_id in await asyncio.to_thread(store.recoveries.running):
                state.start_recovery(job_id)
        yield state


async def _cancel_all(tasks: dict[str, asyncio.Task[None]]) -> None:
    for task in tasks.values():
        await _cancel(task)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
