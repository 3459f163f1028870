"""The topics hookstream reads and writes: their names and layout."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode


class TopicSettings(BaseModel):
    """Names and layout of every topic hookstream reads or writes."""

    events: Annotated[list[str], NoDecode] = Field(
        default=["hookstream.events"],
        description="Input topics of domain events (comma-separated in the environment); each "
        "`name` (Avro) or `name=json` or `name=cloudevents`.",
    )
    webhooks: str = Field(
        default="hookstream.webhooks", description="Compacted webhook configs, key = webhook id."
    )
    webhook_commands: str = Field(
        default="hookstream.webhook-commands",
        description="Changes to webhooks (upsert, activate, failures...), applied by one writer.",
    )
    deliveries: str = Field(default="hookstream.deliveries", description="Delivery jobs.")
    retries: str = Field(default="hookstream.retries", description="Delivery jobs due later.")
    status: str = Field(default="hookstream.status", description="One record per attempt.")
    deadletter: str = Field(default="hookstream.deadletter", description="Undecodable input.")
    settings: str = Field(
        default="hookstream.settings",
        description="Compacted global delivery settings, changed at run time without restarts.",
    )
    partitions: int = Field(default=6, ge=1, le=1000, description="Partitions per topic.")
    replication_factor: int = Field(default=1, ge=1, le=10, description="Replicas per topic.")
    status_retention_ms: int = Field(
        default=7 * 24 * 3600 * 1000, ge=60_000, description="How long status records are kept."
    )
    deadletter_retention_ms: int = Field(
        default=14 * 24 * 3600 * 1000, ge=60_000, description="How long dead letters are kept."
    )
    deliveries_retention_ms: int = Field(
        default=7 * 24 * 3600 * 1000,
        ge=60_000,
        description="How long the deliveries and retries topics keep jobs: at least the "
        "delivery history's retention (HOOKSTREAM_ADMIN__FAILURE_RETENTION_S), so a lost history "
        "database is rebuilt whole and a sender down for days still finds its work.",
    )

    @field_validator("events", mode="before")
    @classmethod
    def _split_events(cls, value: Any) -> Any:
        if isinstance(value, str):
            stripped = value.strip()
            if stripped.startswith("["):
                return json.loads(stripped)
            return [name.strip() for name in stripped.split(",") if name.strip()]
        return value

    @property
    def event_types(self) -> str:
        """The compacted event-type catalog, named beside the webhook configs (``x.webhooks``
        makes ``x.event-types``), so every deployment's prefix carries over."""
        prefix, dot, last = self.webhooks.rpartition(".")
        if dot and last == "webhooks":
            return f"{prefix}.event-types"
        return f"{self.webhooks}.event-types"

    def all_names(self) -> list[str]:
        """Every topic name, for provisioning and clean-up (event topics without their format)."""
        return [
            *(name.partition("=")[0].strip() for name in self.events),
            self.webhooks,
            self.event_types,
            self.webhook_commands,
            self.deliveries,
            self.retries,
            self.status,
            self.deadletter,
            self.settings,
        ]
