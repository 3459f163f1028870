"""The sender process: opens every lifetime (consumer, producer, HTTP client, views, ops
endpoints) around the loop of ``sender.loop``, and runs it until a signal stops it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable

from hookstream.kafka.clients import make_consumer, make_producer
from hookstream.kafka.follower import CompactedFeed
from hookstream.net.egress import make_http_client
from hookstream.ops import OpsServer
from hookstream.sender.attempts import Deliverer
from hookstream.sender.loop import Sender
from hookstream.settings import Settings
from hookstream.views.directory import WebhookDirectory
from hookstream.views.directory_feed import DirectoryFeed
from hookstream.views.policy import PolicyFeed

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def open_sender(settings: Settings, bootstrap: str) -> AsyncIterator[Sender]:
    """Open every I/O lifetime of the sender in one place, and close them in reverse."""
    client_id = f"{settings.app_id}-sender"
    directory = WebhookDirectory(cache_size=settings.directory_cache_size)
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
        problems=lambda: [problem for view in (feed, policy) if (problem := view.problem())],
        views={"webhooks": feed, "settings": policy},
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
            heartbeat_interval_s=settings.group_heartbeat_interval_s,
            group_instance_id=settings.group_instance_id,
        )
        stack.push_async_callback(consumer.stop)
        sender = Sender(
            settings,
            consumer,
            producer,
            Deliverer(settings, http, directory, policy, feed.fresh_since),
        )
        sender.subscribe()
        await consumer.start()
        watch = asyncio.create_task(_stop_on_frozen_view(sender, feed, policy))
        stack.push_async_callback(_cancelled, watch)
        started.set()
        yield sender


async def _stop_on_frozen_view(sender: Sender, *views: CompactedFeed) -> None:
    """A view that stopped following its topic routes with stale configs: stop the sender."""
    waits = {asyncio.create_task(view.failed.wait()): view for view in views}
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
    view = waits[next(iter(done))]
    sender.fail(view.failure or RuntimeError(view.problem()))


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop when it is installed, else asyncio's: every delivery passes through
    the loop several times (the POST, the Kafka writes, the task that joins them), and uvloop's
    cut the sender's CPU per delivery (docs/benchmarks.md)."""
    try:
        import uvloop
    except ImportError:
        log.info("uvloop is not installed: the sender runs on asyncio's own event loop")
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def serve_sender(settings: Settings, bootstrap: str) -> None:
    """Run the sender process (``hookstream sender``) on the fastest event loop available."""
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(run_sender(settings, bootstrap))


async def run_sender(settings: Settings, bootstrap: str) -> None:
    """Run the sender until SIGINT or SIGTERM, then finish in-flight work and commit."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with open_sender(settings, bootstrap) as sender:
        log.info("sender ready")
        await sender.run(stop)
