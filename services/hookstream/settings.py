"""The one settings object: everything configurable, read from ``HOOKSTREAM_*`` variables."""

from __future__ import annotations

import ipaddress
import json
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hookstream.net.proxy import check_proxy_url
from hookstream.net.tls import check_ca_file


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


class DeliverySettings(BaseModel):
    """How the sender delivers: attempts, spacing, timeouts, concurrency."""

    max_attempts: int = Field(default=3, ge=1, le=5, description="Attempts per delivery.")
    retry_interval_s: float = Field(
        default=30.0, ge=1.0, le=100.0, description="Time between two attempts of one delivery."
    )
    request_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=60.0,
        description="How long an attempt waits for the answer (the portal's notification "
        "timeout), unless the webhook sets its own read timeout.",
    )
    default_connect_timeout_s: float = Field(
        default=5.0, gt=0, le=60.0, description="Connect timeout unless the webhook sets one."
    )
    concurrency: int = Field(default=64, ge=1, le=4096, description="Requests in flight at once.")
    per_webhook_concurrency: int = Field(
        default=8,
        ge=1,
        le=4096,
        description="Requests in flight at once to one webhook, per sender (within concurrency).",
    )
    reserved_slots: int = Field(
        default=16,
        ge=0,
        le=4096,
        description="Request slots (of concurrency, at most all but one) only webhooks answering "
        "within 1 s may take, so slow receivers never hold every slot.",
    )
    lane_max_wait_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="A job predicted to wait longer than this for its webhook's slots is moved "
        "to the retry topic, due when a slot should be free, so other webhooks keep flowing.",
    )
    circuit_failures: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Connection failures or timeouts in a row that open a webhook's circuit.",
    )
    circuit_open_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="How long an open circuit holds jobs back before one probe may go.",
    )
    circuit_max_open_s: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="Longest wait between probes (it doubles after each failed probe).",
    )
    retry_jitter: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Up to this fraction of the retry interval is added at random to each retry.",
    )
    max_scheduled: int = Field(
        default=10_000, ge=10, description="Retries held in memory before the retry topic pauses."
    )
    max_parked: int = Field(
        default=10_000,
        ge=10,
        description="Parked jobs (moved aside by a slow or dead webhook) held in memory until "
        "due before the retry topic pauses; counted apart from max_scheduled.",
    )
    commit_interval_s: float = Field(
        default=0.5, gt=0, le=60, description="How often finished offsets are committed."
    )
    response_excerpt_bytes: int = Field(
        default=2048, ge=0, le=65536, description="Bytes of the answer kept in status records."
    )
    allow_plain_http: bool = Field(
        default=False, description="Allow http:// payload URLs (development and tests only)."
    )
    portal_url: str = Field(
        default="https://hookstream.invalid/portal/",
        description="Value of info.portalURL in portal-shaped payloads.",
    )

    @model_validator(mode="after")
    def _circuit(self) -> Self:
        if self.circuit_max_open_s < self.circuit_open_s:
            raise ValueError(
                "HOOKSTREAM_DELIVERY__CIRCUIT_MAX_OPEN_S must be at least "
                "HOOKSTREAM_DELIVERY__CIRCUIT_OPEN_S"
            )
        return self


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


class SecuritySettings(BaseModel):
    """What protects the operator's network and the users' credentials."""

    allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Networks payload URLs may reach although private, loopback or link-local "
        "(comma-separated CIDRs, e.g. 10.20.0.0/16). Empty allows public addresses only.",
    )
    secrets_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Fernet keys encrypting webhook secrets in Kafka, newest first "
        "(comma-separated; older keys still decrypt during a rotation). Unset: a development "
        "key in the local home.",
    )
    secret_grace_s: int = Field(
        default=24 * 3600,
        ge=0,
        le=30 * 24 * 3600,
        description="How long a replaced signing secret still signs, beside the new one.",
    )
    max_event_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        le=10 * 1024 * 1024,
        description="Largest event record accepted; larger ones are dead-lettered.",
    )

    ca_bundle: Path | None = Field(
        default=None,
        description="PEM file of extra CAs receivers' certificates may chain to (an internal "
        "CA), trusted beside the public ones; a webhook may add its own ca_bundle.",
    )

    proxy: str | None = Field(
        default=None,
        description="Egress proxy every request to receivers and token endpoints goes through "
        "(http://host:port; CONNECT for https targets). The target is still resolved and "
        "checked by the SSRF guard first; the proxy's own address is allowed as configured.",
    )
    no_proxy: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Targets reached without the proxy (comma-separated): host names with their "
        "subdomains (example.com, .example.com) or networks (10.0.0.0/8).",
    )

    @field_validator("proxy", mode="before")
    @classmethod
    def _proxy(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None  # HOOKSTREAM_SECURITY__PROXY= (empty) is unset, as in compose files
        if isinstance(value, str):
            check_proxy_url(value)
        return value

    @field_validator("no_proxy", mode="before")
    @classmethod
    def _split_no_proxy(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle(cls, value: Path | None) -> Path | None:
        if value is not None:
            check_ca_file(value)
        return value

    @field_validator("allow_networks", "secrets_keys", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ValueError(f"{network!r} is not a network in CIDR notation") from exc
        return value


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


class LocalKafkaSettings(BaseModel):
    """The broker that ``hookstream kafka start`` runs when no cluster is configured."""

    version: str = Field(default="4.0.2", description="Apache Kafka version fetched from Maven.")
    port: int = Field(default=9092, ge=0, le=65535, description="Client port; 0 picks a free one.")
    controller_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free one.")
    home: Path = Field(
        default=Path.home() / ".cache" / "hookstream",
        description="The broker's storage, logs and pid file live here.",
    )
    jars_dir: Path = Field(
        default=Path.home() / ".cache" / "hookstream",
        description="Where the Kafka jars are cached (kafka-<version>/), shared by every home.",
    )
    heap: str = Field(default="512m", pattern=r"^\d+[mMgG]$", description="Java heap.")
    start_timeout_s: float = Field(
        default=90.0, gt=0, le=600, description="How long `kafka start` waits for readiness."
    )
    brokers: int = Field(
        default=1,
        ge=1,
        le=5,
        description="Nodes `kafka start` runs (broker and controller each); --brokers overrides.",
    )
    cluster_heap: str = Field(
        default="320m",
        pattern=r"^\d+[mMgG]$",
        description="Java heap of each node when brokers > 1.",
    )


class KafkaSecuritySettings(BaseModel):
    """How every hookstream client authenticates to Kafka and protects the connection."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="Kafka security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="SCRAM-SHA-512", description="SASL mechanism (with a SASL_* protocol)."
    )
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password (secret).")
    ssl_cafile: Path | None = Field(
        default=None,
        description="PEM file of the CAs that sign the brokers' certificates; unset: the system's.",
    )
    ssl_certfile: Path | None = Field(
        default=None, description="PEM client certificate, for clusters that require mutual TLS."
    )
    ssl_keyfile: Path | None = Field(
        default=None, description="PEM private key of the client certificate."
    )
    ssl_check_hostname: bool = Field(
        default=True, description="Check that broker certificates name the broker's host."
    )

    @model_validator(mode="after")
    def _complete(self) -> Self:
        prefix = "HOOKSTREAM_KAFKA_SECURITY__"
        if self.protocol.startswith("SASL_") and not (self.sasl_username and self.sasl_password):
            raise ValueError(
                f"protocol {self.protocol} needs {prefix}SASL_USERNAME and {prefix}SASL_PASSWORD"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError(f"set both {prefix}SSL_CERTFILE and {prefix}SSL_KEYFILE, or neither")
        uses_tls = self.protocol in ("SSL", "SASL_SSL")
        if not uses_tls and (self.ssl_cafile or self.ssl_certfile):
            raise ValueError(
                f"TLS files are set but protocol {self.protocol} does not use TLS; "
                f"set {prefix}PROTOCOL to SSL or SASL_SSL"
            )
        return self


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
