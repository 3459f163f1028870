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
from urllib.parse import urlsplit

import aiohttp
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from httpx_aiohttp import AiohttpTransport

from hookstream.codec import decode, encode
from hookstream.delivery import AttemptResult, Verdict, VerdictKind, judge, post, request_headers
from hookstream.directory import DirectoryFeed, WebhookDirectory, family_of
from hookstream.errors import DecodeError
from hookstream.kafkaio import dead_letter_bytes, make_consumer, make_producer
from hookstream.metrics import (
    ATTEMPT_SECONDS,
    DEAD_LETTERS,
    DELIVERIES_FINAL,
    DELIVERY_ATTEMPTS,
    IN_FLIGHT,
    RETRIES_SCHEDULED,
    SCHEDULED,
)
from hookstream.models import (
    CommandKind,
    DeliveryJob,
    DeliveryStatus,
    Outcome,
    WebhookCommand,
    WebhookConfig,
    now_ms,
)
from hookstream.offsets import OffsetTracker
from hookstream.ops import OpsServer
from hookstream.payloads import build_payload
from hookstream.policy import PolicyFeed
from hookstream.settings import Settings
from hookstream.ssrf import AddressPolicy, BlockedAddressError, GuardedResolver

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
        http: httpx.AsyncClient,
        directory: WebhookDirectory,
        policy: PolicyFeed,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.guard = AddressPolicy(settings.security.allow_networks)
        self.consumer = consumer
        self.producer = producer
        self.http = http
        self.directory = directory
        self.offsets = OffsetTracker()
        self._schedule: list[_Scheduled] = []
        self._seq = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
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
                await asyncio.wait(self._tasks, timeout=0.1, return_when=asyncio.FIRST_COMPLETED)
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
        await self._drain(timeout_s=self.policy.current.request_timeout_s + 5)
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
        task.add_done_callback(self._tasks.discard)

    async def _attempt(self, tp: TopicPartition, offset: int, job: DeliveryJob) -> None:
        async with self._slots:
            IN_FLIGHT.inc()
            try:
                outputs = await self.deliver(job)
            finally:
                IN_FLIGHT.dec()
        await self._outputs_then_done(tp, offset, outputs)

    async def _outputs_then_done(
        self, tp: TopicPartition, offset: int, outputs: list[tuple[str, bytes | None, bytes]]
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

    async def deliver(self, job: DeliveryJob) -> list[tuple[str, bytes | None, bytes]]:
        """Make one attempt of a job; return the records it causes (topic, key, value)."""
        topics = self.settings.topics
        delivery = self.settings.delivery
        policy = self.policy.current
        key = job.webhook_id.encode()
        config = self.directory.get(job.webhook_id)
        started = now_ms()
        base = {
            "delivery_id": job.delivery_id,
            "webhook_id": job.webhook_id,
            "event_ids": [event.event_id for event in job.events],
            "trigger": job.trigger,
            "attempt": job.attempt,
            "max_attempts": policy.max_attempts,
            "attempted_at": started,
        }
        if config is None or not config.active:
            reason = "the webhook was deleted" if config is None else "the webhook is deactivated"
            log.info(
                "skipping delivery %s to webhook %s: %s",
                job.delivery_id,
                job.webhook_id,
                reason,
                extra={"delivery_id": job.delivery_id, "webhook_id": job.webhook_id},
            )
            DELIVERY_ATTEMPTS.labels("skipped").inc()
            DELIVERIES_FINAL.labels("skipped").inc()
            status = DeliveryStatus(
                **base,
                webhook_name=config.name if config else "",
                outcome=Outcome.SKIPPED,
                final=True,
                error=reason,
            )
            return [(topics.status, key, encode(status))]

        payload = build_payload(
            config, family_of(config), job.trigger, job.events, started, delivery.portal_url
        )
        if urlsplit(config.payload_url).scheme != "https" and not delivery.allow_plain_http:
            result = AttemptResult(
                None,
                None,
                "plain http:// payload URLs are refused; use https:// (or, for development only, "
                "set HOOKSTREAM_DELIVERY__ALLOW_PLAIN_HTTP=true)",
                0.0,
            )
        else:
            try:
                self.guard.check_url(config.payload_url)
            except BlockedAddressError as exc:
                result = AttemptResult(None, None, str(exc), 0.0, permanent=True)
            else:
                result = await self._post(config, job, payload, policy.request_timeout_s)
        verdict = judge(result, job.attempt, policy.max_attempts, policy.retry_interval_s, now_ms())
        return self._record(job, config, base, payload.body, result, verdict)

    async def _post(
        self, config: WebhookConfig, job: DeliveryJob, payload: Any, request_timeout_s: float
    ) -> AttemptResult:
        delivery = self.settings.delivery
        connect = config.connect_timeout_s or delivery.default_connect_timeout_s
        read = config.read_timeout_s or request_timeout_s
        timeout = httpx.Timeout(read, connect=connect, read=read, write=read, pool=connect)
        headers = request_headers(config, payload, job.delivery_id, job.attempt)
        return await post(
            self.http,
            config.payload_url,
            payload,
            headers,
            timeout,
            total_timeout_s=connect + read + 1.0,
            excerpt_bytes=delivery.response_excerpt_bytes,
        )

    def _record(
        self,
        job: DeliveryJob,
        config: WebhookConfig,
        base: dict[str, Any],
        body: bytes,
        result: AttemptResult,
        verdict: Verdict,
    ) -> list[tuple[str, bytes | None, bytes]]:
        topics = self.settings.topics
        key = job.webhook_id.encode()
        delivered = verdict.kind is VerdictKind.DELIVERED
        status = DeliveryStatus(
            **base,
            webhook_name=config.name,
            duration_ms=round(result.duration_ms, 3),
            outcome=Outcome.DELIVERED if delivered else Outcome.FAILED,
            final=verdict.kind is not VerdictKind.RETRY,
            next_attempt_at=verdict.retry_at,
            http_status=result.http_status,
            response_excerpt=result.response_excerpt,
            error=verdict.reason,
            payload=body.decode("utf-8", "replace"),
        )
        log.info(
            "delivery %s to webhook %s attempt %d: %s%s",
            job.delivery_id,
            job.webhook_id,
            job.attempt,
            verdict.kind,
            f" ({verdict.reason})" if verdict.reason else "",
            extra={
                "delivery_id": job.delivery_id,
                "webhook_id": job.webhook_id,
                "attempt": job.attempt,
            },
        )
        outcome = "delivered" if delivered else "failed"
        DELIVERY_ATTEMPTS.labels(outcome).inc()
        ATTEMPT_SECONDS.observe(result.duration_ms / 1000)
        if verdict.kind is VerdictKind.RETRY:
            RETRIES_SCHEDULED.inc()
        else:
            DELIVERIES_FINAL.labels(outcome).inc()
        outputs: list[tuple[str, bytes | None, bytes]] = [(topics.status, key, encode(status))]
        if verdict.kind is VerdictKind.RETRY and verdict.retry_at is not None:
            retry = job.model_copy(update={"attempt": job.attempt + 1, "due_at": verdict.retry_at})
            outputs.append((topics.retries, key, encode(retry)))
        elif verdict.kind is VerdictKind.FAILED:
            command = WebhookCommand(
                webhook_id=job.webhook_id,
                kind=CommandKind.DEACTIVATE if verdict.gone else CommandKind.RECORD_FAILURE,
                delivery_id=job.delivery_id,
                reason=verdict.reason,
            )
            outputs.append((topics.webhook_commands, key, encode(command)))
        return outputs

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


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    """The one HTTP client of the sender: aiohttp transport (several times faster than httpx's
    own under concurrency, see docs/benchmarks.md), the SSRF guard as its resolver, no redirects,
    no proxy variables."""
    limit = settings.delivery.concurrency
    policy = AddressPolicy(settings.security.allow_networks)
    ssl_context = httpx.create_ssl_context(trust_env=False)

    def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=limit, resolver=GuardedResolver(policy), ssl=ssl_context, ttl_dns_cache=10
        )
        return aiohttp.ClientSession(connector=connector, trust_env=False)

    return httpx.AsyncClient(
        transport=AiohttpTransport(client=session), follow_redirects=False, trust_env=False
    )


@contextlib.asynccontextmanager
async def open_sender(settings: Settings, bootstrap: str) -> AsyncIterator[Sender]:
    """Open every I/O lifetime of the sender in one place, and close them in reverse."""
    client_id = f"{settings.app_id}-sender"
    directory = WebhookDirectory()
    feed = DirectoryFeed(directory, bootstrap, settings.topics.webhooks, f"{client_id}-directory")
    policy = PolicyFeed(
        settings.delivery, bootstrap, settings.topics.settings, f"{client_id}-policy"
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
        producer = make_producer(bootstrap, client_id)
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
        )
        stack.push_async_callback(consumer.stop)
        sender = Sender(settings, consumer, producer, http, directory, policy)
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
