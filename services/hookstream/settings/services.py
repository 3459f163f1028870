"""The settings of each process: the matcher, the ops endpoints, the admin API."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import NoDecode


class MatcherSettings(BaseModel):
    """How the Faust matcher runs."""

    commit_interval_s: float = Field(
        default=0.2,
        gt=0,
        le=60,
        description="Jobs are published when the offsets of their events are committed.",
    )
    ready_timeout_s: float = Field(default=120.0, gt=0, description="Wait for the config view.")
    producer_linger_s: float = Field(
        default=0.005,
        ge=0,
        le=1,
        description="How long the producer gathers jobs into one batch (0: send each at once).",
    )
    data_dir: Path = Field(
        default=Path(tempfile.gettempdir()) / "hookstream-matcher",
        description="Faust's working files (nothing durable: state lives in Kafka).",
    )


class OpsSettings(BaseModel):
    """Where each service serves /metrics, /healthz and /readyz."""

    host: str = Field(
        default="127.0.0.1", description="Address of the ops endpoints (0.0.0.0 in containers)."
    )
    matcher_port: int = Field(default=9101, ge=0, le=65535, description="Matcher's ops port.")
    sender_port: int = Field(default=9102, ge=0, le=65535, description="Sender's ops port.")


class AdminSettings(BaseModel):
    """The admin REST API (``hookstream admin``) and the CLI commands that talk to it."""

    host: str = Field(default="127.0.0.1", description="Address the admin API listens on.")
    port: int = Field(default=8080, ge=0, le=65535, description="Port of the admin API.")
    tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Bearer tokens allowed to manage webhooks (comma-separated; several for "
        "rotation). Empty refuses every request.",
    )
    url: str = Field(
        default="http://127.0.0.1:8080", description="Where the CLI finds the admin API."
    )
    token: SecretStr | None = Field(default=None, description="Bearer token the CLI sends.")
    success_retention_s: int = Field(
        default=24 * 3600, ge=60, description="How long successful deliveries are listed."
    )
    failure_retention_s: int = Field(
        default=7 * 24 * 3600, ge=60, description="How long failed deliveries are listed."
    )
    write_timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="How long a write waits to be applied."
    )
    history_backend: Literal["sqlite", "postgres"] = Field(
        default="sqlite",
        description="Where the delivery history is kept: sqlite (a file, one admin replica) or "
        "postgres (shared by replicas).",
    )
    history_path: Path | None = Field(
        default=None,
        description="SQLite file of the delivery history, on a volume; unset: "
        "<temp dir>/hookstream-admin/<app id>-history.sqlite3 (not durable).",
    )
    history_dsn: SecretStr | None = Field(
        default=None,
        description="PostgreSQL connection string of the delivery history (postgres backend).",
    )
    session_secret: SecretStr | None = Field(
        default=None,
        description="Key signing the console's session cookies (32+ characters; the same on "
        "every admin replica); unset: a random key per process, so a restart signs everyone out.",
        min_length=32,
    )
    session_ttl_s: int = Field(
        default=8 * 3600, ge=60, le=7 * 24 * 3600, description="How long a console sign-in lasts."
    )

    @field_validator("tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [token.strip() for token in value.split(",") if token.strip()]
        return value
