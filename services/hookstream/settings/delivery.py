"""How the sender delivers, and what protects the operator's network and the users'
credentials on the way."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from hookstream.core.certificates import load_certificates


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
            _check_ca_file(value)
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


def check_proxy_url(value: str) -> None:
    """Refuse a proxy setting that is not ``http(s)://host:port`` (credentials are not taken:
    settings are logged, and the URL would carry them in clear)."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"the proxy URL cannot be parsed: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the proxy must be an http://host:port URL (or https:// for TLS to it)")
    if parts.username or parts.password:
        raise ValueError(
            "the proxy URL cannot carry credentials; allow the senders' addresses at the proxy"
        )
    if port is None:
        raise ValueError("the proxy URL needs its port, e.g. http://proxy.internal:3128")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("the proxy URL is scheme, host and port only")


def _check_ca_file(path: Path) -> None:
    """Refuse an extra CA bundle setting that is not a readable PEM file of certificates."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} cannot be read as a PEM file: {exc}") from None
    load_certificates(text, str(path))
