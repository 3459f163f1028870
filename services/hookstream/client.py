"""A small kafka-python client for the people around hookstream: publish events, manage
webhooks through the registry, and read the status topic.

    with HookstreamClient.from_settings() as client:
        client.register_webhook(config)
        client.publish_event(event)
        for status in client.statuses(timeout_s=10):
            print(status.outcome, status.http_status)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Self

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from hookstream.core.errors import ConfigurationError, DecodeError
from hookstream.core.eventtypes import EventType
from hookstream.kafka.cluster import resolve_bootstrap
from hookstream.kafka.security import kafka_python_options
from hookstream.records.codec import decode, encode
from hookstream.records.intake import InputFormat, event_topics
from hookstream.records.models import (
    CommandKind,
    DeliveryPolicy,
    DeliveryStatus,
    DomainEvent,
    WebhookCommand,
    WebhookConfig,
)
from hookstream.settings import KafkaSecuritySettings, Settings, TopicSettings, get_settings
from hookstream.views.policy import POLICY_KEY


class HookstreamClient:
    """Produces events and commands (acks=all, waited for) and consumes status records."""

    def __init__(
        self,
        bootstrap: str,
        topics: TopicSettings | None = None,
        security: KafkaSecuritySettings | None = None,
        compression_type: str | None = None,
    ) -> None:
        """``compression_type`` (gzip, snappy, lz4, zstd) compresses what this client writes;
        it reads every codec whatever the setting."""
        self.bootstrap = bootstrap
        self.topics = topics or TopicSettings()
        # Metadata requests that never create a topic: a missing topic is an error to report,
        # not one to create with the broker's defaults (1 partition, cleanup.policy=delete).
        self._connection = {**kafka_python_options(security), "allow_auto_create_topics": False}
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            **self._connection,
            acks="all",
            client_id="hookstream-client",
            linger_ms=0,
            compression_type=compression_type,
        )

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> HookstreamClient:
        settings = settings or get_settings()
        return cls(resolve_bootstrap(settings), settings.topics, settings.kafka_security)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._producer.close(timeout=10)

    def _send(self, topic: str, key: str, value: bytes, timeout_s: float = 30.0) -> None:
        self._producer.send(topic, key=key.encode(), value=value).get(timeout=timeout_s)

    def publish_event(self, event: DomainEvent, topic: str | None = None) -> None:
        """Publish one validated event, keyed by its resource id so one resource stays in order."""
        key = event.resource_id or event.event_id
        self._send(topic or self.avro_events_topic(), key, encode(event))

    def avro_events_topic(self) -> str:
        """The first event topic read as Avro, where ``publish_event`` writes by default."""
        for entry in event_topics(self.topics):
            if entry.format is InputFormat.AVRO:
                return entry.name
        raise ConfigurationError(
            "no event topic is read as Avro (HOOKSTREAM_TOPICS__EVENTS lists only other "
            "formats); pass publish_event the topic to write to"
        )

    def declare_event_type(self, event_type: EventType) -> None:
        """Add or change an event type of the catalog (the admin API does the same, and waits
        until its view shows it)."""
        self._producer.send(
            self.topics.event_types, key=event_type.name.encode(), value=encode(event_type)
        ).get(timeout=30)

    def command(self, command: WebhookCommand) -> None:
        """Send a command to the registry, which applies it to the webhook's config."""
        self._send(self.topics.webhook_commands, command.webhook_id, encode(command))

    def register_webhook(self, config: WebhookConfig) -> None:
        """Create or edit a webhook (an edit keeps its active state and failure count)."""
        self.command(
            WebhookCommand(webhook_id=config.webhook_id, kind=CommandKind.UPSERT, config=config)
        )

    def delete_webhook(self, webhook_id: str) -> None:
        self.command(WebhookCommand(webhook_id=webhook_id, kind=CommandKind.DELETE))

    def activate_webhook(self, webhook_id: str) -> None:
        self.command(WebhookCommand(webhook_id=webhook_id, kind=CommandKind.ACTIVATE))

    def deactivate_webhook(self, webhook_id: str, reason: str | None = None) -> None:
        self.command(
            WebhookCommand(webhook_id=webhook_id, kind=CommandKind.DEACTIVATE, reason=reason)
        )

    def set_delivery_policy(self, policy: DeliveryPolicy) -> None:
        """Change the global attempts, spacing and timeout; every sender follows at once."""
        self._producer.send(self.topics.settings, key=POLICY_KEY, value=encode(policy)).get(
            timeout=30
        )

    def latest_webhooks(self, timeout_s: float = 30.0) -> dict[str, WebhookConfig]:
        """Every webhook as the config topic holds it now (read up to its current end)."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            **self._connection,
            group_id=None,
            enable_auto_commit=False,
            client_id="hookstream-webhook-reader",
        )
        configs: dict[str, WebhookConfig] = {}
        try:
            partitions = consumer.partitions_for_topic(self.topics.webhooks) or set()
            assignment = [TopicPartition(self.topics.webhooks, p) for p in partitions]
            consumer.assign(assignment)
            consumer.seek_to_beginning(*assignment)
            end = consumer.end_offsets(assignment)
            deadline = time.monotonic() + timeout_s
            while any(consumer.position(tp) < end[tp] for tp in assignment):
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"could not read {self.topics.webhooks} within {timeout_s:g} s"
                    )
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:
                        webhook_id = record.key.decode() if record.key else ""
                        if record.value is None:
                            configs.pop(webhook_id, None)
                            continue
                        try:
                            configs[webhook_id] = decode(record.value, WebhookConfig)
                        except DecodeError:
                            continue
        finally:
            consumer.close()
        return configs

    def wait_for_webhooks(
        self, webhook_ids: set[str], timeout_s: float
    ) -> dict[str, WebhookConfig]:
        """Wait until the registry has written every one of these webhooks; their configs."""
        deadline = time.monotonic() + timeout_s
        while True:
            configs = self.latest_webhooks(timeout_s)
            if webhook_ids <= set(configs):
                return {webhook_id: configs[webhook_id] for webhook_id in webhook_ids}
            if time.monotonic() > deadline:
                missing = sorted(webhook_ids - set(configs))
                raise TimeoutError(
                    f"the registry did not write {missing} within {timeout_s:g} s; is the "
                    f"matcher (which runs the registry) running?"
                )
            threading.Event().wait(0.1)

    def statuses(
        self,
        timeout_s: float,
        webhook_id: str | None = None,
        from_beginning: bool = True,
    ) -> Iterator[DeliveryStatus]:
        """Status records, oldest first, until ``timeout_s`` passes without a new one.

        Undecodable records are skipped: the status topic is written only by hookstream.
        """
        consumer = KafkaConsumer(
            self.topics.status,
            bootstrap_servers=self.bootstrap,
            **self._connection,
            group_id=None,
            auto_offset_reset="earliest" if from_beginning else "latest",
            enable_auto_commit=False,
            consumer_timeout_ms=int(timeout_s * 1000),
            client_id="hookstream-status-reader",
        )
        try:
            for message in consumer:
                if webhook_id is not None and message.key != webhook_id.encode():
                    continue
                try:
                    yield decode(message.value, DeliveryStatus)
                except DecodeError:
                    continue
        finally:
            consumer.close()
