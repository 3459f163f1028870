"""Record batches in every Kafka codec (gzip, snappy, lz4, zstd), as real producers write them:
kafka-python, the broker's own console producer, and a topic-level ``compression.type`` set by an
operator; and a batch that cannot be unpacked, which is skipped and reported, never crash-looped."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiokafka.codec
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.record.default_records import DefaultRecordBatch

from hookstream.client import HookstreamClient
from hookstream.kafka.clients import UNREADABLE_BATCHES, getmany_past_unreadable, make_consumer
from hookstream.localkafka.jars import fetch_tools
from hookstream.records.codec import decode, encode
from hookstream.records.models import (
    DeadLetter,
    DeliveryJob,
    DeliveryPolicy,
    DomainEvent,
    Outcome,
    WebhookConfig,
)
from hookstream.settings import LocalKafkaSettings, Settings
from hookstream.views.directory import WebhookDirectory
from hookstream.views.directory_feed import DirectoryFeed
from support import (
    DeadLetterReader,
    Pipeline,
    Receiver,
    StatusReader,
    StatusReaderFactory,
    make_event,
    register_and_wait,
    wait_until,
)

pytestmark = pytest.mark.integration

CODECS = ("gzip", "snappy", "lz4", "zstd")
#: Kafka's codec ids in a record batch's attributes.
CODEC_IDS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
#: Text that every codec shrinks, so kafka-python (which sends a batch uncompressed when the codec
#: does not make it smaller) really compresses.
PADDING = "hookstream " * 200


@pytest.fixture
def codecs_seen(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The codecs of the batches kafka-python unpacks in this test (what is on the topic)."""
    seen: set[str] = set()
    original = DefaultRecordBatch._maybe_uncompress

    def spy(batch: Any) -> Any:
        seen.add(CODEC_IDS[batch.compression_type])
        return original(batch)

    monkeypatch.setattr(DefaultRecordBatch, "_maybe_uncompress", spy)
    return seen


def read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every record of ``topic`` now, read with kafka-python (as the client and tools read)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assignment = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assignment)
        consumer.seek_to_beginning(*assignment)
        end = consumer.end_offsets(assignment)
        records: list[Any] = []

        def done() -> bool:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
            return all(consumer.position(tp) >= end[tp] for tp in assignment)

        wait_until(done, 60, f"reading {topic} to its end")
        return records
    finally:
        consumer.close()


def set_topic_codec(bootstrap: str, codecs: dict[str, str]) -> None:
    """What an operator does: ``compression.type`` on the topic; the broker recompresses."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-operator")
    try:
        result = admin.alter_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, topic, configs={"compression.type": codec})
                for topic, codec in codecs.items()
            ]
        )
        assert set(result["topic"].values()) == {"OK"}, result
    finally:
        admin.close()


def console_produce(bootstrap: str, topic: str, codec: str, lines: list[str]) -> None:
    """Kafka's own ``kafka-console-producer``: Java's producer, which always compresses."""
    tools = fetch_tools(LocalKafkaSettings())
    log_config = Path(__file__).parents[2] / "services/hookstream/localkafka/log4j2.properties"
    done = subprocess.run(
        [
            "java",
            f"-Dlog4j2.configurationFile={log_config}",
            "-cp",
            f"{tools}/*",
            "org.apache.kafka.tools.ConsoleProducer",
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--compression-codec",
            codec,
            "--producer-property",
            "linger.ms=1000",
        ],
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def clients(
    make_settings: Callable[..., Settings],
) -> Iterator[tuple[Settings, dict[str, HookstreamClient]]]:
    settings = make_settings()
    assert settings.kafka_bootstrap is not None
    made = {
        codec: HookstreamClient(settings.kafka_bootstrap, settings.topics, compression_type=codec)
        for codec in CODECS
    }
    yield settings, made
    for client in made.values():
        client.close()


def test_kafka_python_writes_and_reads_every_codec(
    clients: tuple[Settings, dict[str, HookstreamClient]], codecs_seen: set[str]
) -> None:
    settings, made = clients
    assert settings.kafka_bootstrap is not None
    topic = settings.topics.events[0]
    for codec, client in made.items():
        client.publish_event(make_event("users", "update", f"u-{codec}", note=PADDING))
    events = read_all(settings.kafka_bootstrap, topic)
    assert codecs_seen == set(CODECS)
    assert sorted(str(decode(r.value, DomainEvent).resource_id) for r in events) == sorted(
        f"u-{codec}" for codec in CODECS
    )


def test_every_codec_through_matcher_sender_and_views(
    clients: tuple[Settings, dict[str, HookstreamClient]],
    pipeline_factory: Callable[[Settings], Pipeline],
    receiver: Receiver,
    status_reader_factory: StatusReaderFactory,
    codecs_seen: set[str],
) -> None:
    settings, made = clients
    topics = settings.topics
    bootstrap = settings.kafka_bootstrap
    assert bootstrap is not None
    # The operator's codecs: every topic a hookstream consumer reads, in one codec or another.
    set_topic_codec(
        bootstrap,
        {
            topics.webhook_commands: "lz4",
            topics.webhooks: "zstd",
            topics.settings: "snappy",
            topics.deliveries: "zstd",
            topics.retries: "gzip",
            topics.status: "gzip",
        },
    )
    pipeline: Pipeline = pipeline_factory(settings)
    pipeline.start_matcher()
    sender = pipeline.start_sender()
    statuses: StatusReader = status_reader_factory(settings)
    dead_letters: DeadLetterReader = status_reader_factory(settings, dead_letters=True)

    webhook = WebhookConfig(
        webhook_id=f"codecs-{uuid.uuid4().hex[:8]}",
        name="Codecs",
        payload_url=receiver.url("/codecs"),
        triggers=["/users"],
    )
    register_and_wait(made["zstd"], webhook)  # commands (lz4) -> registry -> webhooks (zstd)
    made["snappy"].set_delivery_policy(DeliveryPolicy(max_attempts=2, retry_interval_s=1.0))
    sender.wait_for_log("delivery policy now")  # the sender's policy view read the snappy topic

    # Events from kafka-python in each codec, matched by the matcher (whose directory view reads
    # the zstd config topic), delivered by the sender from the zstd deliveries topic.
    for codec, client in made.items():
        client.publish_event(make_event("users", "update", f"u-{codec}", note=PADDING))
    wait_until(lambda: len(receiver.on("/codecs")) >= len(CODECS), 60, "a delivery per codec")
    delivered = wait_until(
        lambda: d if len(d := statuses.of(webhook.webhook_id)) >= len(CODECS) else None,
        60,
        "a status record (gzip topic) per delivery",
    )
    assert {status.outcome for status in delivered} == {Outcome.DELIVERED}
    bodies = b"".join(request.body for request in receiver.on("/codecs"))
    assert all(f"u-{codec}".encode() in bodies for codec in CODECS)

    # The broker's console producer in each codec: text lines are not Avro, so the matcher
    # dead-letters every one of them, which shows it read each batch, and goes on.
    event_topic = topics.events[0]
    for codec in CODECS:
        console_produce(bootstrap, event_topic, codec, [f"{codec} line {n}" for n in range(3)])
    wait_until(
        lambda: len([d for d in dead_letters.snapshot() if d.source_topic == event_topic]) >= 12,
        90,
        "12 dead letters from the console producer's batches",
    )
    lines = sorted(
        (d.value or b"").decode() for d in dead_letters.snapshot() if d.source_topic == event_topic
    )
    assert lines == sorted(f"{codec} line {n}" for codec in CODECS for n in range(3))
    made["lz4"].publish_event(make_event("users", "update", "u-after", note=PADDING))
    wait_until(lambda: len(receiver.on("/codecs")) > len(CODECS), 60, "a delivery after them")

    codecs_seen.clear()
    read_all(bootstrap, event_topic)
    assert codecs_seen == set(CODECS)
    for topic, codec in (
        (topics.webhook_commands, "lz4"),
        (topics.webhooks, "zstd"),
        (topics.settings, "snappy"),
        (topics.deliveries, "zstd"),
        (topics.status, "gzip"),
    ):
        codecs_seen.clear()
        read_all(bootstrap, topic)
        assert codecs_seen == {codec}, topic


def _produce_around_a_zstd_batch(bootstrap: str, topic: str) -> tuple[list[bytes], list[bytes]]:
    """Partition 0: a plain record, a zstd batch of four, a plain record; partitions 1 and 2: one
    plain record each. Returns (readable values, values in the zstd batch)."""
    plain = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    # A linger far longer than the four sends take: they go out as one batch, at flush().
    zstd = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", compression_type="zstd", linger_ms=10_000
    )
    readable, packed = [], []
    try:

        def config(name: str) -> bytes:
            return encode(
                WebhookConfig(
                    webhook_id=f"{name}-{uuid.uuid4().hex[:6]}",
                    name=name,
                    payload_url=f"https://example.com/{name}?pad={'a' * 500}",
                    triggers=["/users"],
                )
            )

        first = config("first")
        plain.send(topic, key=b"first", value=first, partition=0).get(timeout=30)
        readable.append(first)
        futures = []
        for n in range(4):
            value = config(f"packed{n}")
            packed.append(value)
            futures.append(zstd.send(topic, key=f"packed{n}".encode(), value=value, partition=0))
        zstd.flush()
        for future in futures:
            future.get(timeout=30)
        for partition, name in ((0, "last"), (1, "other1"), (2, "other2")):
            value = config(name)
            plain.send(topic, key=name.encode(), value=value, partition=partition).get(timeout=30)
            readable.append(value)
    finally:
        plain.close()
        zstd.close()
    return readable, packed


def test_a_batch_that_cannot_be_unpacked_is_skipped_by_a_view(
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The issue's crash loop: a zstd batch read by a process without the zstd library."""
    settings = make_settings()
    bootstrap = settings.kafka_bootstrap
    assert bootstrap is not None
    topic = settings.topics.webhooks
    readable, packed = _produce_around_a_zstd_batch(bootstrap, topic)
    monkeypatch.setattr(aiokafka.codec, "cramjam", None)
    skipped_before = UNREADABLE_BATCHES.labels("test-view", topic)._value.get()

    async def run() -> WebhookDirectory:
        directory = WebhookDirectory()
        feed = DirectoryFeed(directory, bootstrap, topic, "test-view")
        await feed.start()
        try:
            await feed.wait_ready(60)
        finally:
            await feed.stop()
        return directory

    with caplog.at_level(logging.ERROR, logger="hookstream.kafka.clients"):
        directory = asyncio.run(run())
    names = {config.name for config in directory.all()}
    assert names == {decode(value, WebhookConfig).name for value in readable}
    assert not names & {decode(value, WebhookConfig).name for value in packed}
    assert UNREADABLE_BATCHES.labels("test-view", topic)._value.get() == skipped_before + 1
    assert f"{topic}[0] offsets 1..4" in caplog.text
    assert "UnsupportedCodecError" in caplog.text


def test_a_group_consumer_skips_a_batch_it_cannot_unpack_and_loses_nothing_else(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings()
    bootstrap = settings.kafka_bootstrap
    assert bootstrap is not None
    topic = settings.topics.deliveries
    readable, _ = _produce_around_a_zstd_batch(bootstrap, topic)
    monkeypatch.setattr(aiokafka.codec, "cramjam", None)

    async def run() -> tuple[list[bytes], list[Any]]:
        consumer = make_consumer(bootstrap, "test-sender", f"{settings.app_id}-g", 6.0)
        consumer.subscribe([topic])
        await consumer.start()
        values: list[bytes] = []
        skipped: list[Any] = []
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while len(values) < len(readable) and loop.time() < deadline:
                records, batch = await getmany_past_unreadable(
                    consumer, "test-sender", timeout_ms=200
                )
                values += [record.value for batch in records.values() for record in batch]
                if batch is not None:
                    skipped.append(batch)
        finally:
            await consumer.stop()
        return values, skipped

    values, skipped = asyncio.run(run())
    assert sorted(values) == sorted(readable)
    assert [(b.partition, b.first_offset, b.next_offset) for b in skipped] == [(0, 1, 5)]
    letter = decode(skipped[0].dead_letter("sender"), DeadLetter)
    assert (letter.source_topic, letter.partition, letter.offset) == (topic, 0, 1)
    assert "offsets 1..4" in letter.reason and "zstd" in letter.reason


def _hide_codecs_from_services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Service processes started after this import no cramjam: aiokafka then has no snappy, lz4
    or zstd, as in the issue's deployment (the processes read PYTHONPATH from the test's env)."""
    hidden = tmp_path / "without-codecs" / "cramjam"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text('raise ImportError("cramjam is hidden by the test")\n')
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(hidden.parent), os.getenv("PYTHONPATH")]))
    )


def test_the_matcher_skips_an_events_batch_it_cannot_unpack(
    clients: tuple[Settings, dict[str, HookstreamClient]],
    pipeline_factory: Callable[[Settings], Pipeline],
    receiver: Receiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's crash loop in the matcher itself: a zstd batch of events read by a matcher
    process without the zstd library (hidden from it here) is reported and skipped; the events
    before and after it are matched and delivered, and the matcher keeps running."""
    settings, made = clients
    _hide_codecs_from_services(tmp_path, monkeypatch)
    webhook = WebhookConfig(
        webhook_id=f"skip-{uuid.uuid4().hex[:8]}",
        name="Skip",
        payload_url=receiver.url("/skip"),
        triggers=["/users"],
    )
    pipeline: Pipeline = pipeline_factory(settings)
    matcher = pipeline.start_matcher()
    register_and_wait(made["gzip"], webhook)
    pipeline.start_sender()

    topic = settings.topics.events[0]
    plain = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    zstd = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        compression_type="zstd",
        linger_ms=10_000,
    )
    try:

        def event(resource_id: str) -> bytes:
            return encode(make_event("users", "update", resource_id, note=PADDING))

        plain.send(topic, value=event("before"), partition=0).get(timeout=30)
        packed = [zstd.send(topic, value=event(f"packed{n}"), partition=0) for n in range(4)]
        zstd.flush()
        for future in packed:
            future.get(timeout=30)
        plain.send(topic, value=event("after"), partition=0).get(timeout=30)
    finally:
        plain.close()
        zstd.close()

    def delivered() -> set[str]:
        names = ("before", "after", *(f"packed{n}" for n in range(4)))
        bodies = [request.body.decode() for request in receiver.on("/skip")]
        return {name for name in names if any(f'"{name}"' in body for body in bodies)}

    wait_until(lambda: {"before", "after"} <= delivered(), 90, "the readable events delivered")
    assert not any(name.startswith("packed") for name in delivered())
    matcher.wait_for_log("skipped an unreadable record batch")
    assert f"{topic}[0] offsets 1..4" in matcher.log_text()
    assert matcher.process.poll() is None, "the matcher must keep running"


def test_the_sender_dead_letters_a_jobs_batch_it_cannot_unpack(
    clients: tuple[Settings, dict[str, HookstreamClient]],
    pipeline_factory: Callable[[Settings], Pipeline],
    receiver: Receiver,
    status_reader_factory: StatusReaderFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A zstd batch of delivery jobs read by a sender without the zstd library: the batch is
    dead-lettered with its offsets, the jobs around it are delivered, the sender keeps going and
    commits past it."""
    settings, made = clients
    _hide_codecs_from_services(tmp_path, monkeypatch)
    webhook = WebhookConfig(
        webhook_id=f"skipjobs-{uuid.uuid4().hex[:8]}",
        name="Skip jobs",
        payload_url=receiver.url("/skipjobs"),
        triggers=["/users"],
    )
    pipeline: Pipeline = pipeline_factory(settings)
    pipeline.start_matcher()
    register_and_wait(made["gzip"], webhook)
    sender = pipeline.start_sender()
    dead_letters: DeadLetterReader = status_reader_factory(settings, dead_letters=True)

    topic = settings.topics.deliveries

    def job(resource_id: str) -> bytes:
        event = make_event("users", "update", resource_id, note=PADDING)
        return encode(
            DeliveryJob(
                delivery_id=f"{resource_id}-{uuid.uuid4().hex[:6]}",
                webhook_id=webhook.webhook_id,
                trigger="/users",
                events=[event],
                due_at=event.occurred_at,
                triggered_at=event.occurred_at,
            )
        )

    plain = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    zstd = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        compression_type="zstd",
        linger_ms=10_000,
    )
    try:
        plain.send(topic, value=job("before"), partition=0).get(timeout=30)
        packed = [zstd.send(topic, value=job(f"packed{n}"), partition=0) for n in range(4)]
        zstd.flush()
        for future in packed:
            future.get(timeout=30)
        plain.send(topic, value=job("after"), partition=0).get(timeout=30)
    finally:
        plain.close()
        zstd.close()

    def delivered() -> set[str]:
        names = ("before", "after", *(f"packed{n}" for n in range(4)))
        bodies = [request.body.decode() for request in receiver.on("/skipjobs")]
        return {name for name in names if any(f'"{name}"' in body for body in bodies)}

    wait_until(lambda: {"before", "after"} <= delivered(), 90, "the readable jobs delivered")
    assert not any(name.startswith("packed") for name in delivered())
    letter = wait_until(
        lambda: next(
            (d for d in dead_letters.snapshot() if d.source_topic == topic and d.partition == 0),
            None,
        ),
        60,
        "a dead letter for the unreadable batch",
    )
    assert letter.offset == 1 and "offsets 1..4" in letter.reason
    assert sender.process.poll() is None, "the sender must keep running"
    committed = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.app_id}-sender",
        enable_auto_commit=False,
    )
    try:
        wait_until(
            lambda: (committed.committed(TopicPartition(topic, 0)) or 0) >= 6,
            60,
            "the sender's commit past the skipped batch",
        )
    finally:
        committed.close(autocommit=False)
