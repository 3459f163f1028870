"""aiokafka clients configured the one way the services use them: durable writes, manual commits."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from hookstream.codec import encode
from hookstream.kafkaauth import aiokafka_options
from hookstream.models import DeadLetter
from hookstream.settings import KafkaSecuritySettings


def make_producer(
    bootstrap: str, client_id: str, security: KafkaSecuritySettings | None = None
) -> AIOKafkaProducer:
    """A producer whose acknowledged writes survive a broker failover, without duplicates."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        **aiokafka_options(security),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )


def make_consumer(
    bootstrap: str,
    client_id: str,
    group_id: str,
    session_timeout_s: float,
    security: KafkaSecuritySettings | None = None,
) -> AIOKafkaConsumer:
    """A group consumer that never commits on its own: the service commits what is done."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        **aiokafka_options(security),
        client_id=client_id,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        max_poll_interval_ms=300_000,
        session_timeout_ms=int(session_timeout_s * 1000),
        heartbeat_interval_ms=int(session_timeout_s * 1000 / 3),
    )
    return consumer


def dead_letter_bytes(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    reason: str,
    service: str,
) -> bytes:
    """The dead-letter record of an input that could not be used, keeping its bytes."""
    return encode(
        DeadLetter(
            source_topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            value=value,
            reason=reason,
            service=service,
        )
    )
