"""One row per delivery: how jobs and attempt statuses merge into it, whatever order they come in.

Pure: the store reads the rows a batch touches, merges the batch here and writes them back in the
same transaction as the consumer offsets. Merging is idempotent (a record applied twice changes
nothing), so a replay of records already applied is harmless.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pydantic import TypeAdapter

from hookstream.history.schemas import DeliveryOutcome
from hookstream.records.models import DeliveryJob, DeliveryStatus, DomainEvent, Outcome

#: Serialises a job's events straight from the decoded models (no dict round trip).
_EVENTS: TypeAdapter[list[DomainEvent]] = TypeAdapter(list[DomainEvent])


@dataclass
class DeliveryRow:
    """What is known of one delivery; attempts themselves are stored beside it."""

    webhook_id: str
    delivery_id: str
    webhook_name: str = ""
    trigger: str | None = None
    #: When the matcher fired it (the first, non-redelivery job).
    triggered_at: int | None = None
    first_attempt_at: int | None = None
    #: The job's events as JSON (None while the job is unseen).
    events_json: str | None = None
    event_ids: list[str] = field(default_factory=list)
    payload: str | None = None
    #: Due time of the newest redelivery job; pending until an attempt follows it.
    redelivered_at: int | None = None
    last_at: int | None = None
    last_attempt: int | None = None
    last_final: bool = False
    last_outcome: str | None = None
    last_http_status: int | None = None

    def fired_at(self) -> int:
        """When the webhook fired (the first attempt stands in while the job is unseen)."""
        if self.triggered_at is not None:
            return self.triggered_at
        return self.first_attempt_at or 0

    def outcome(self) -> DeliveryOutcome:
        if self.last_at is None or not self.last_final:
            return DeliveryOutcome.PENDING
        if self.redelivered_at is not None and self.redelivered_at > self.last_at:
            return DeliveryOutcome.PENDING
        if self.last_outcome == Outcome.DELIVERED.value:
            return DeliveryOutcome.DELIVERED
        return DeliveryOutcome.FAILED

    def activity_at(self) -> int:
        return max(self.fired_at(), self.redelivered_at or 0, self.last_at or 0)

    def expires_at(
        self, success_ms: int, failure_ms: int, outcome: DeliveryOutcome | None = None
    ) -> int:
        """Delivered: listed ``success_ms`` after its last attempt; failed or pending:
        ``failure_ms`` after its last activity. ``outcome`` saves recomputing a known one."""
        if outcome is None:
            outcome = self.outcome()
        if outcome is DeliveryOutcome.DELIVERED and self.last_at is not None:
            return self.last_at + success_ms
        return self.activity_at() + failure_ms

    def events(self) -> list[DomainEvent]:
        if self.events_json is None:
            return []
        return [DomainEvent.model_validate(item) for item in json.loads(self.events_json)]

    def apply_job(self, job: DeliveryJob) -> None:
        """A job from the deliveries topic: the matcher's first one, or a redelivery."""
        self.trigger = job.trigger
        self.events_json = _EVENTS.dump_json(job.events).decode()
        self.event_ids = [event.event_id for event in job.events]
        if self.triggered_at is None or not job.redelivery:
            self.triggered_at = job.triggered_at
        if job.redelivery:
            self.redelivered_at = max(self.redelivered_at or 0, job.due_at)

    def apply_status(self, status: DeliveryStatus) -> None:
        """An attempt's status record (the attempt row itself is stored by the caller)."""
        at = status.attempted_at
        if self.first_attempt_at is None or at < self.first_attempt_at:
            self.first_attempt_at = at
        if status.webhook_name:
            self.webhook_name = status.webhook_name
        if not self.event_ids:
            self.event_ids = list(status.event_ids)
        if self.trigger is None:
            self.trigger = status.trigger
        newest = self.last_at is None or (at, status.attempt) >= (
            self.last_at,
            self.last_attempt or 0,
        )
        if newest:
            self.last_at = at
            self.last_attempt = status.attempt
            self.last_final = status.final
            self.last_outcome = status.outcome.value
            self.last_http_status = status.http_status
            if status.payload is not None:
                self.payload = status.payload
