"""The delivery history's answers, as the admin API serves them: one delivery and its attempts."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from hookstream.records.models import DomainEvent, Outcome


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"
    PENDING = "pending"


class AttemptOut(BaseModel):
    """One attempt of a delivery as the sender recorded it."""

    attempt: int
    at: int = Field(description="Epoch milliseconds.")
    outcome: Outcome
    final: bool
    http_status: int | None
    response_excerpt: str | None
    error: str | None
    duration_ms: float
    next_attempt_at: int | None


class DeliveryOut(BaseModel):
    """One delivery (an event sent to a webhook): what fired it, what was sent, what came back."""

    delivery_id: str
    webhook_id: str
    webhook_name: str
    trigger: str | None
    triggered_at: int = Field(description="When the webhook fired, epoch milliseconds.")
    outcome: DeliveryOutcome
    redelivered: bool
    event_ids: list[str]
    events: list[DomainEvent]
    attempts: list[AttemptOut]
    payload: str | None = Field(description="The last body sent (it carries no credentials).")
