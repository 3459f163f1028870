"""Replay from Kafka: run matching again for one webhook over the event topics from a time.

For a webhook created or reactivated after an outage: the event topics still hold what it missed.
A replay finds, per partition, the first record at or after ``since`` (Kafka's offsets-for-times),
reads up to the end each partition had when the replay started, and matches every event against
that one webhook with the matcher's own ``jobs_for``. Its jobs carry the delivery id a live match
gives (event id + webhook id), so a receiver that got some of them already can drop the copies.
Jobs go on the deliveries topic like the matcher's, and the sender delivers them through the
webhook's lane like any other. Events the matcher could not read (it dead-lettered them) are
counted and skipped. Progress is kept in memory: after an admin restart, repeat the request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from hookstream.core.errors import ConfigurationError, DecodeError
from hookstream.kafka.clients import getmany_past_unreadable
from hookstream.kafka.security import aiokafka_options
from hookstream.matcher.routing import jobs_for
from hookstream.records.intake import InputFormat, IntakeError, decode_event, event_topics
from hookstream.records.models import WebhookConfig
from hookstream.settings import Settings
from hookstream.views.directory import WebhookDirectory

log = logging.getLogger(__name__)

Publish = Callable[[list[tuple[bytes, bytes]]], Awaitable[None]]
Clock = Callable[[], int]


@dataclass
class Replay:
    """A replay and how far it got."""

    job_id: str
    webhook_id: str
    since: int
    started_at: int
    state: str = "running"
    #: Records read from the event topics so far, and those that were not events.
    events_read: int = 0
    undecodable: int = 0
    #: Delivery jobs queued (events that matched the webhook).
    queued: int = 0
    finished_at: int | None = None
    error: str | None = None


def replay_id(webhook_id: str, since: int) -> str:
    """The same request (webhook, since) names the same job while this admin process runs."""
    digest = hashlib.sha256(f"replay\0{webhook_id}\0{since}".encode()).hexdigest()
    return f"rpl_{digest[:24]}"


async def _match_range(
    consumer: AIOKafkaConsumer,
    formats: dict[str, InputFormat],
    directory: WebhookDirectory,
    replay: Replay,
    publish: Publish,
    clock: Clock,
    poll_timeout_ms: int,
) -> None:
    """Read every event topic from ``replay.since`` to where it ended when the replay started,
    publishing the jobs of each batch as it goes."""
    ranges = await _ranges(consumer, formats, replay.since)
    todo = {tp: end for tp, (_, end) in ranges.items()}
    if todo:
        consumer.assign(list(todo))
        for tp, (first, _) in ranges.items():
            consumer.seek(tp, first)
    while todo:
        batches, _ = await getmany_past_unreadable(
            consumer, "admin-replay", timeout_ms=poll_timeout_ms, max_records=1000
        )
        jobs = _match_batches(batches, todo, formats, directory, replay, clock)
        if jobs:
            await publish(jobs)
            replay.queued += len(jobs)
        for tp in list(todo):
            if await consumer.position(tp) >= todo[tp]:
                del todo[tp]
                consumer.pause(tp)  # read to where it ended when the replay started


async def run_replay(
    replay: Replay,
    config: WebhookConfig,
    settings: Settings,
    bootstrap: str,
    publish: Publish,
    clock: Clock,
    poll_timeout_ms: int = 500,
) -> None:
    """Match the event topics from ``replay.since`` against ``config`` and queue its jobs; on
    failure the replay is marked failed with the reason (repeating the request starts again)."""
    directory = WebhookDirectory()
    directory.put(config.model_copy(update={"active": True}))
    formats = {topic.name: topic.format for topic in event_topics(settings.topics)}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        **aiokafka_options(settings.kafka_security),
        client_id=f"{settings.app_id}-admin-replay",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        fetch_max_wait_ms=poll_timeout_ms,
    )
    try:
        await consumer.start()
        await _match_range(consumer, formats, directory, replay, publish, clock, poll_timeout_ms)
        replay.state = "done"
        log.info(
            "replay %s for webhook %s done: %d events read, %d jobs queued",
            replay.job_id,
            replay.webhook_id,
            replay.events_read,
            replay.queued,
            extra={"webhook_id": replay.webhook_id},
        )
    except asyncio.CancelledError:
        replay.state, replay.error = "failed", "the admin service stopped"
        raise
    except Exception as exc:
        replay.state, replay.error = "failed", str(exc) or repr(exc)
        log.error("replay %s stopped: %s; repeat the request to start it again", replay.job_id, exc)
    finally:
        replay.finished_at = clock()
        await consumer.stop()


async def _ranges(
    consumer: AIOKafkaConsumer, topics: Iterable[str], since: int
) -> dict[TopicPartition, tuple[int, int]]:
    """Per event partition with records at or after ``since``: the first such offset and the end
    offset (the replay reads to where the partition ended when it started)."""
    metadata = await consumer._client.fetch_all_metadata()
    partitions: list[TopicPartition] = []
    for topic in topics:
        found = metadata.partitions_for_topic(topic)
        if not found:
            raise ConfigurationError(f"event topic {topic!r} does not exist")
        partitions += [TopicPartition(topic, p) for p in sorted(found)]
    ends = await consumer.end_offsets(partitions)
    starts = await consumer.offsets_for_times({tp: since for tp in partitions})
    return {
        tp: (start.offset, ends[tp])
        for tp, start in starts.items()
        if start is not None and start.offset < ends[tp]
    }


def _match_batches(
    batches: dict[TopicPartition, list[Any]],
    todo: dict[TopicPartition, int],
    formats: dict[str, InputFormat],
    directory: WebhookDirectory,
    replay: Replay,
    clock: Clock,
) -> list[tuple[bytes, bytes]]:
    """The jobs of the events in ``batches`` before each partition's end, counted on ``replay``
    (an event that cannot be decoded is counted and skipped, as the matcher dead-letters it)."""
    jobs: list[tuple[bytes, bytes]] = []
    for tp, records in batches.items():
        end = todo.get(tp)
        for record in records:
            if end is None or record.offset >= end:
                break
            replay.events_read += 1
            try:
                event = decode_event(record.value, formats[tp.topic], record.headers, record.key)
            except (DecodeError, IntakeError):
                replay.undecodable += 1
                continue
            jobs += jobs_for(event, directory, clock())
    return jobs
