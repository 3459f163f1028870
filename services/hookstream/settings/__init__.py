"""The one settings object: everything configurable, read from ``HOOKSTREAM_*`` variables.

Only ``Settings`` reads the environment; its parts are defined by concern in the modules of this
package and exported here, so every caller imports them from ``hookstream.settings``."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from hookstream.settings.delivery import DeliverySettings, SecuritySettings
from hookstream.settings.kafka import KafkaSecuritySettings, LocalKafkaSettings
from hookstream.settings.services import AdminSettings, MatcherSettings, OpsSettings
from hookstream.settings.topics import TopicSettings

__all__ = [
    "AdminSettings",
    "DeliverySettings",
    "KafkaSecuritySettings",
    "LocalKafkaSettings",
    "MatcherSettings",
    "OpsSettings",
    "SecuritySettings",
    "Settings",
    "TopicSettings",
    "get_settings",
]


class Settings(BaseSettings):
    """Every setting of every hookstream service; only this object reads the environment."""

    model_config = SettingsConfigDict(
        env_prefix="HOOKSTREAM_",
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
    )

    kafka_bootstrap: str | None = Field(
        default=None,
        validation_alias=AliasChoices("HOOKSTREAM_KAFKA_BOOTSTRAP", "KAFKA_BOOTSTRAP_SERVERS"),
        description="Bootstrap servers of an existing cluster; unset means the local broker.",
    )
    kafka_security: KafkaSecuritySettings = KafkaSecuritySettings()
    app_id: str = Field(
        default="hookstream",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Prefix of consumer groups and client ids; one per hookstream installation.",
    )
    group_session_timeout_s: float = Field(
        default=6.0,
        ge=6.0,
        le=300.0,
        description="How soon a crashed matcher or sender loses its partitions to the others.",
    )
    group_instance_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._-]{1,200}$",
        description=(
            "A stable name of this process in its consumer group (static membership, e.g. the "
            "pod's name): restarted under it, the process takes its partitions back at once. "
            "Unique per process; unset means a new member at every start."
        ),
    )
    directory_cache_size: int = Field(
        default=4096,
        ge=1,
        le=10_000_000,
        description=(
            "Webhook configs the matcher and the sender keep decoded (the most recently used); "
            "the others are held as their records and decoded when needed."
        ),
    )
    topics: TopicSettings = TopicSettings()
    delivery: DeliverySettings = DeliverySettings()
    matcher: MatcherSettings = MatcherSettings()
    admin: AdminSettings = AdminSettings()
    security: SecuritySettings = SecuritySettings()
    ops: OpsSettings = OpsSettings()
    local_kafka: LocalKafkaSettings = LocalKafkaSettings()
    log_level: str = Field(
        default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$", description="Log level."
    )
    log_format: str = Field(
        default="json", pattern=r"^(json|text)$", description="json: one object per line."
    )

    @property
    def group_heartbeat_interval_s(self) -> float:
        """A sixth of the session timeout, at most 3 s: a dead member's partitions move soon
        after its session ends, since the others hear of the rebalance at their next beat."""
        return min(3.0, self.group_session_timeout_s / 6)

    def masked(self) -> dict[str, Any]:
        """The settings as a dict with every secret masked, for the start-up log line."""
        return self.model_dump(mode="json")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return Settings()
