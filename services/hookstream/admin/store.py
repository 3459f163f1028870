"""Notification status: every delivery's job and attempts, rebuilt from Kafka, with retention.

The store holds no state of its own: two feeds read both topics from the beginning and follow
them, so it survives a restart of the admin service and sees every sender's records. Retention
is applied when reading, with an injected clock: a delivered entry is listed for
``success_retention_s`` after its last attempt, a failed one for ``failure_retention_s``; a
pending one until ``failure_retention_s`` after its last activity. ``prune`` forgets what has
expired.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hookstream.admin.schemas import AttemptOut, DeliveryOut, DeliveryOutcome
from hookstream.codec import decode
from hookstream.errors import DecodeError
from hookstream.feeds import CompactedFeed
from hookstream.models import DeliveryJob, DeliveryStatus, DomainEvent, Outcome
from hookstream.settings import KafkaSecuritySettings

log = logging.getLogger(__name__)

#: Epoch milliseconds now; injected so that tests can move time.
Clock = Callable[[], int]


@dataclass
class DeliveryEntry:
    """What is known of one delivery: its job (events, trigger) and every attempt's status."""

    delivery_id: str
    webhook_id: str
    webhook_name: str = ""
    trigger: str | None = None
    triggered_at: int | None = None
    events: list[DomainEvent] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    attempts: list[DeliveryStatus] = field(default_factory=list)
    payload: str | None = None
    #: Due time of the newest redelivery job; the entry is pending until an attempt follows it.
    redelivered_at: int | None = None

    def last_attempt(self) -> DeliveryStatus | None:
        return self.attempts[-1] if self.attempts else None

    def outcome(self) -> DeliveryOutcome:
        last = self.last_attempt()
        if last is None or not last.final:
            return DeliveryOutcome.PENDING
        if self.redelivered_at is not None and self.redelivered_at > last.attempted_at:
            return DeliveryOutcome.PENDING
        if last.outcome is Outcome.DELIVERED:
            return DeliveryOutcome.DELIVERED
        return DeliveryOutcome.FAILED

    def fired_at(self) -> int:
        """When the webhook fired (the first attempt stands in while the job is unseen)."""
        if self.triggered_at is not None:
            return self.triggered_at
        last = self.last_attempt()
        return self.attempts[0].attempted_at if last is not None else 0

    def last_activity(self) -> int:
        last = self.last_attempt()
        times = [self.fired_at(), self.redelivered_at or 0, last.attempted_at if last else 0]
        return max(times)

    def expires_at(self, success_ms: int, failure_ms: int) -> int:
        outcome = self.outcome()
        last = self.last_attempt()
        if outcome is DeliveryOutcome.DELIVERED and last is not None:
            return last.attempted_at + success_ms
        if outcome is DeliveryOutcome.FAILED and last is not None:
            return last.attempted_at + failure_ms
        return self.last_activity() + failure_ms

    def to_api(self) -> DeliveryOut:
        return DeliveryOut(
            delivery_id=self.delivery_id,
            webhook_id=self.webhook_id,
            webhook_name=self.webhook_name,
            trigger=self.trigger,
            triggered_at=self.fired_at(),
            outcome=self.outcome(),
            redelivered=self.redelivered_at is not None,
            event_ids=self.event_ids,
            events=self.events,
            attempts=[
                AttemptOut(
                    attempt=status.attempt,
                    at=status.attempted_at,
                    outcome=status.outcome,
                    final=status.final,
                    http_status=status.http_status,
                    response_excerpt=status.response_excerpt,
                    error=status.error,
                    duration_ms=status.duration_ms,
                    next_attempt_at=status.next_attempt_at,
                )
                for status in self.attempts
            ],
            payload=self.payload,
        )


class DeliveryStore:
    """Entries by webhook id and delivery id, with retention applied by ``clock``."""

    def __init__(self, success_retention_s: int, failure_retention_s: int, clock: Clock) -> None:
        self.success_ms = success_retention_s * 1000
        self.failure_ms = failure_retention_s * 1000
        self.clock = clock
        self._entries: dict[str, dict[str, DeliveryEntry]] = {}

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._entries.values())

    def _entry(self, webhook_id: str, delivery_id: str) -> DeliveryEntry:
        entries = self._entries.setdefault(webhook_id, {})
        entry = entries.get(delivery_id)
        if entry is None:
            entry = entries[delivery_id] = DeliveryEntry(delivery_id, webhook_id)
        return entry

    def add_job(self, job: DeliveryJob) -> None:
        """A job from the deliveries topic: the matcher's first one, or a redelivery."""
        entry = self._entry(job.webhook_id, job.delivery_id)
        entry.trigger = job.trigger
        entry.events = list(job.events)
        entry.event_ids = [event.event_id for event in job.events]
        if entry.triggered_at is None or not job.redelivery:
            entry.triggered_at = job.triggered_at
        if job.redelivery:
            entry.redelivered_at = max(entry.redelivered_at or 0, job.due_at)

    def add_status(self, status: DeliveryStatus) -> None:
        """An attempt's status record; records of a webhook's state (no delivery id) are not
        deliveries."""
        if status.delivery_id is None:
            return
        entry = self._entry(status.webhook_id, status.delivery_id)
        key = (status.attempt, status.attempted_at)
        if any((seen.attempt, seen.attempted_at) == key for seen in entry.attempts):
            return  # the same record read twice
        entry.attempts.append(status)
        entry.attempts.sort(key=lambda seen: (seen.attempted_at, seen.attempt))
        if status.webhook_name:
            entry.webhook_name = status.webhook_name
        if not entry.event_ids:
            entry.event_ids = list(status.event_ids)
        if entry.trigger is None:
            entry.trigger = status.trigger
        if status.payload is not None and entry.attempts[-1] is status:
            entry.payload = status.payload

    def _visible(self, entry: DeliveryEntry, now: int) -> bool:
        return now < entry.expires_at(self.success_ms, self.failure_ms)

    def get(self, webhook_id: str, delivery_id: str) -> DeliveryEntry | None:
        entry = self._entries.get(webhook_id, {}).get(delivery_id)
        if entry is None or not self._visible(entry, self.clock()):
            return None
        return entry

    def list(
        self,
        webhook_id: str,
        outcome: DeliveryOutcome | None = None,
        since: int | None = None,
        until: int | None = None,
    ) -> list[DeliveryEntry]:
        """A webhook's listed entries, newest first; ``since``/``until`` bound when it fired."""
        now = self.clock()
        found = [
            entry
            for entry in self._entries.get(webhook_id, {}).values()
            if self._visible(entry, now)
            and (outcome is None or entry.outcome() is outcome)
            and (since is None or entry.fired_at() >= since)
            and (until is None or entry.fired_at() < until)
        ]
        found.sort(key=lambda entry: (entry.fired_at(), entry.delivery_id), reverse=True)
        return found

    def prune(self) -> int:
        """Forget every expired entry; how many were forgotten."""
        now = self.clock()
        forgotten = 0
        for webhook_id in list(self._entries):
            entries = self._entries[webhook_id]
            for delivery_id in [d for d, e in entries.items() if not self._visible(e, now)]:
                del entries[delivery_id]
                forgotten += 1
            if not entries:
                del self._entries[webhook_id]
        return forgotten


class _StoreFeed(CompactedFeed):
    """Follows one topic from its beginning into the store; undecodable records are skipped
    (the sender dead-letters bad jobs; the status topic is written by hookstream only)."""

    def __init__(
        self,
        store: DeliveryStore,
        bootstrap: str,
        topic: str,
        client_id: str,
        security: KafkaSecuritySettings | None = None,
    ) -> None:
        super().__init__(bootstrap, topic, client_id, security=security)
        self.store = store
        self.undecodable = 0

    def add(self, value: bytes) -> None:
        raise NotImplementedError

    def apply(self, record: Any) -> None:
        try:
            self.add(record.value)
        except DecodeError as exc:
            self.undecodable += 1
            log.warning(
                "notification status skips %s[%d]@%d: %s",
                record.topic,
                record.partition,
                record.offset,
                exc,
                extra={"topic": record.topic, "partition": record.partition},
            )

    def caught_up(self) -> None:
        log.info("notification status caught up with %s (%d entries)", self.topic, len(self.store))


class JobFeed(_StoreFeed):
    """The deliveries topic: what fired each delivery, and redeliveries."""

    def add(self, value: bytes) -> None:
        self.store.add_job(decode(value, DeliveryJob))


class StatusFeed(_StoreFeed):
    """The status topic: one record per attempt."""

    def add(self, value: bytes) -> None:
        self.store.add_status(decode(value, DeliveryStatus))
