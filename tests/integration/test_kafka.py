"""The chosen Kafka version talks to both clients; topics get the settings hookstream asks for."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from hookstream.kafka.topics import create_topics
from hookstream.records.codec import decode, encode
from hookstream.records.models import DomainEvent, now_ms
from hookstream.settings import Settings

pytestmark = pytest.mark.integration


def _event(n: int) -> DomainEvent:
    return DomainEvent(
        event_id=f"e{n}", source="items", operation="add", resource_id=f"r{n}", occurred_at=now_ms()
    )


def test_kafka_python_round_trip(make_settings: Callable[..., Settings]) -> None:
    settings: Settings = make_settings()
    topic = settings.topics.events[0]
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    for n in range(5):
        producer.send(topic, key=b"k", value=encode(_event(n))).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"g-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
    )
    got = []
    for message in consumer:
        got.append(decode(message.value, DomainEvent).event_id)
        if len(got) == 5:
            break
    consumer.close()
    assert got == [f"e{n}" for n in range(5)]


def test_aiokafka_round_trip_and_cross_client(make_settings: Callable[..., Settings]) -> None:
    """faust-streaming's client (aiokafka) produces what kafka-python reads, and the reverse."""
    settings: Settings = make_settings()
    topic = settings.topics.events[0]
    bootstrap = settings.kafka_bootstrap
    assert bootstrap is not None

    async def aio() -> list[str]:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            for n in range(3):
                await producer.send_and_wait(topic, key=b"k", value=encode(_event(n)))
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"g-{uuid.uuid4()}",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        seen: list[str] = []
        try:
            async with asyncio.timeout(30):
                while len(seen) < 4:
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        seen.extend(
                            decode(record.value, DomainEvent).event_id for record in records
                        )
        finally:
            await consumer.stop()
        return seen

    kafka_python = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    kafka_python.send(topic, key=b"k", value=encode(_event(99))).get(timeout=30)
    kafka_python.close()
    seen = asyncio.run(aio())
    assert sorted(seen) == ["e0", "e1", "e2", "e99"]


def test_topics_created_with_their_settings(make_settings: Callable[..., Settings]) -> None:
    settings: Settings = make_settings()
    bootstrap = settings.kafka_bootstrap
    assert bootstrap is not None
    catalog = settings.topics.event_types
    assert catalog in settings.topics.all_names()
    assert create_topics(bootstrap, settings.topics) == {
        name: "ok" for name in settings.topics.all_names()
    }
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, settings.topics.webhooks),
            ConfigResource(ConfigResourceType.TOPIC, settings.topics.status),
            ConfigResource(ConfigResourceType.TOPIC, catalog),
        ]
        described_configs = admin.describe_configs(resources)["topic"]
        configs = {
            topic: {name: entry["value"] for name, entry in entries.items()}
            for topic, entries in described_configs.items()
        }
        described = admin.describe_topics([settings.topics.deliveries])
    finally:
        admin.close()
    assert configs[settings.topics.webhooks]["cleanup.policy"] == "compact"
    assert configs[catalog]["cleanup.policy"] == "compact"
    assert configs[settings.topics.status]["cleanup.policy"] == "delete"
    assert configs[settings.topics.status]["retention.ms"] == str(
        settings.topics.status_retention_ms
    )
    assert len(described[0]["partitions"]) == settings.topics.partitions
