"""Provisioning of every topic hookstream uses, with its settings, through kafka-python's admin."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from hookstream.kafkaauth import kafka_python_options
from hookstream.settings import KafkaSecuritySettings, TopicSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    """One topic as hookstream wants it."""

    name: str
    partitions: int
    configs: dict[str, str]


def topic_specs(topics: TopicSettings) -> list[TopicSpec]:
    """The topics and their settings: the webhook configs compacted, the status time-retained."""
    delete = {"cleanup.policy": "delete"}
    specs = [TopicSpec(name, topics.partitions, dict(delete)) for name in topics.events]
    specs += [
        TopicSpec(
            topics.webhooks,
            topics.partitions,
            {
                "cleanup.policy": "compact",
                "min.compaction.lag.ms": "0",
                "delete.retention.ms": str(24 * 3600 * 1000),
            },
        ),
        TopicSpec(topics.webhook_commands, topics.partitions, dict(delete)),
        TopicSpec(topics.settings, 1, {"cleanup.policy": "compact"}),
        TopicSpec(topics.deliveries, topics.partitions, dict(delete)),
        TopicSpec(topics.retries, topics.partitions, dict(delete)),
        TopicSpec(
            topics.status,
            topics.partitions,
            {**delete, "retention.ms": str(topics.status_retention_ms)},
        ),
        TopicSpec(
            topics.deadletter,
            topics.partitions,
            {**delete, "retention.ms": str(topics.deadletter_retention_ms)},
        ),
    ]
    return specs


def create_topics(
    bootstrap: str, topics: TopicSettings, security: KafkaSecuritySettings | None = None
) -> dict[str, str]:
    """Create every missing topic; returns each name with ``created`` or ``exists``."""
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="hookstream-topics",
        **kafka_python_options(security),
    )
    outcome: dict[str, str] = {}
    try:
        existing = set(admin.list_topics())
        for spec in topic_specs(topics):
            if spec.name in existing:
                outcome[spec.name] = "exists"
                continue
            new = NewTopic(
                name=spec.name,
                num_partitions=spec.partitions,
                replication_factor=topics.replication_factor,
                topic_configs=spec.configs,
            )
            try:
                admin.create_topics([new], timeout_ms=30_000)
            except TopicAlreadyExistsError:
                outcome[spec.name] = "exists"
                continue
            log.info(
                "created topic %s (%d partitions, %s)", spec.name, spec.partitions, spec.configs
            )
            outcome[spec.name] = "created"
    finally:
        admin.close()
    return outcome
