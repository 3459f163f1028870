"""The records hookstream exchanges, as validated pydantic models (Avro is the contract)."""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hookstream.core.certificates import MAX_PEM_CHARS, check_client_key, load_certificates
from hookstream.core.triggers import DEVICE_EVENTS, OPEN_VOCABULARY, TriggerError, parse_triggers
from hookstream.records.checks import (
    HEADER_VALUE,
    MAX_AUTH_HEADERS,
    MAX_AUTH_HEADERS_SIZE,
    check_absolute_url,
    check_fields,
    check_header,
    check_properties,
)
from hookstream.records.ids import signing_key

_ID = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
_NAME = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds, the unit of every timestamp in hookstream."""
    return time.time_ns() // 1_000_000


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _utf8(self) -> Self:
        """Every string field, secret, list item and map entry must be encodable as UTF-8."""
        check_fields(self.__dict__)  # the fields (extra ones are forbidden)
        return self


class AuthKind(StrEnum):
    NONE = "none"
    BASIC = "basic"
    HEADER = "header"
    #: OAuth2 client credentials: a bearer token fetched from ``token_url`` (hookstream.net.oauth).
    OAUTH2 = "oauth2"


class PayloadFormat(StrEnum):
    JSON = "json"
    XML = "xml"


class PayloadShape(StrEnum):
    """The body of a webhook on declared event types: Standard Webhooks, or the portal's."""

    STANDARD = "standard"
    PORTAL = "portal"


class Outcome(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"
    SKIPPED = "skipped"
    DEACTIVATED = "deactivated"
    ACTIVATED = "activated"
    #: The schema's enum default: what a reader holding this schema reads for an outcome added
    #: later (docs/schemas.md). hookstream never writes it.
    UNKNOWN = "unknown"
    #: Not attempted: held back while the receiver's circuit is open; not final, not a failure.
    HELD = "held"


class CommandKind(StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"
    ACTIVATE = "activate"
    DEACTIVATE = "deactivate"
    RECORD_FAILURE = "record_failure"


class DomainEvent(_Record):
    """Something happened to a resource; the envelope of both products' events."""

    event_id: str = Field(min_length=1, max_length=200)
    source: str = Field(pattern=_NAME, description="items, groups, users, roles, computers, ...")
    operation: str = Field(pattern=_NAME, description="add, update, signin, checkIn, ...")
    resource_id: str | None = Field(default=None, min_length=1, max_length=512)
    actor_username: str | None = Field(default=None, max_length=256)
    actor_user_id: str | None = Field(default=None, max_length=256)
    occurred_at: int = Field(ge=0, description="Epoch milliseconds.")
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("properties")
    @classmethod
    def _json(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_properties(value)
        return value

    @field_validator("resource_id")
    @classmethod
    def _no_slash(cls, value: str | None) -> str | None:
        if value is not None and "/" in value:
            raise ValueError("resource_id cannot contain '/', it is a segment of trigger URIs")
        return value

    @classmethod
    def for_device_event(
        cls,
        event_name: str,
        properties: dict[str, Any],
        *,
        event_id: str | None = None,
        resource_id: str | None = None,
        occurred_at: int | None = None,
    ) -> DomainEvent:
        """Build the envelope of a device-manager event name (``ComputerAdded``, ...)."""
        if event_name not in DEVICE_EVENTS:
            raise ValueError(
                f"unknown device event {event_name!r}; known: {', '.join(sorted(DEVICE_EVENTS))}"
            )
        source, operation = DEVICE_EVENTS[event_name]
        jss_id = properties.get("jssID", properties.get("jssid"))
        return cls(
            event_id=event_id or str(uuid.uuid4()),
            source=source,
            operation=operation,
            resource_id=resource_id or (str(jss_id) if jss_id is not None else None),
            occurred_at=occurred_at if occurred_at is not None else now_ms(),
            properties=properties,
        )


class WebhookAuth(_Record):
    """How the sender authenticates to the payload URL; secrets never leave as plain text."""

    kind: AuthKind = AuthKind.NONE
    username: str | None = Field(default=None, max_length=256)
    password: SecretStr | None = Field(default=None, max_length=1024)
    headers: dict[str, SecretStr] = Field(default_factory=dict, max_length=MAX_AUTH_HEADERS)
    token_url: str | None = Field(
        default=None,
        max_length=2048,
        description="OAuth2: the token endpoint the client credentials are posted to (https).",
    )
    client_id: str | None = Field(default=None, min_length=1, max_length=1024)
    client_secret: SecretStr | None = Field(default=None, min_length=1, max_length=4096)
    scope: str | None = Field(default=None, min_length=1, max_length=1024)
    audience: str | None = Field(default=None, min_length=1, max_length=1024)

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_absolute_url(value, "token_url")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.kind is AuthKind.BASIC:
            if not self.username or self.password is None:
                raise ValueError("basic authentication needs both username and password")
            if ":" in self.username:
                raise ValueError("a basic-authentication username cannot contain ':'")
        elif self.username or self.password is not None:
            raise ValueError(f"username and password are only for basic auth, not {self.kind}")
        if self.kind is AuthKind.HEADER:
            if not self.headers:
                raise ValueError("header authentication needs at least one header")
            for name, value in self.headers.items():
                check_header(name, value.get_secret_value())
            size = sum(
                len(name) + len(value.get_secret_value()) for name, value in self.headers.items()
            )
            if size > MAX_AUTH_HEADERS_SIZE:
                raise ValueError(
                    f"the headers of header authentication hold more than "
                    f"{MAX_AUTH_HEADERS_SIZE} characters (names and values together)"
                )
        elif self.headers:
            raise ValueError(f"headers are only for header authentication, not {self.kind}")
        oauth = ("token_url", "client_id", "client_secret", "scope", "audience")
        if self.kind is AuthKind.OAUTH2:
            missing = [
                n for n in ("token_url", "client_id", "client_secret") if not getattr(self, n)
            ]
            if missing:
                raise ValueError(f"oauth2 authentication needs {', '.join(missing)}")
            for name in ("client_id", "scope", "audience"):
                value = getattr(self, name)
                if value is not None and not HEADER_VALUE.match(value):
                    raise ValueError(f"{name} must be printable ASCII")
        elif any(getattr(self, name) is not None for name in oauth):
            raise ValueError(
                f"{', '.join(oauth)} are only for oauth2 authentication, not {self.kind}"
            )
        return self


class DeactivationPolicy(_Record):
    """Deactivate after ``number_of_failures`` failed deliveries within ``days_in_past`` days."""

    number_of_failures: int = Field(default=5, ge=1, le=1000)
    days_in_past: int = Field(default=5, ge=1, le=365)


class FailureMark(_Record):
    """A delivery that failed all its attempts, counted against the deactivation policy."""

    delivery_id: str
    at: int


class WebhookConfig(_Record):
    """One webhook, as held in the compacted config topic."""

    webhook_id: str = Field(pattern=_ID)
    name: str = Field(min_length=1, max_length=128)
    payload_url: str = Field(max_length=2048)
    triggers: list[str] = Field(min_length=1, max_length=100)
    smart_group_id: str | None = Field(default=None, min_length=1, max_length=128)
    auth: WebhookAuth = WebhookAuth()
    connect_timeout_s: float | None = Field(default=None, gt=0, le=60)
    read_timeout_s: float | None = Field(default=None, gt=0, le=60)
    payload_format: PayloadFormat = PayloadFormat.JSON
    #: Only for declared event types (None: standard); portal and device triggers keep theirs.
    payload_shape: PayloadShape | None = None
    deactivation_policy: DeactivationPolicy = DeactivationPolicy()
    active: bool = True
    deactivated_reason: str | None = None
    deactivated_at: int | None = None
    recent_failures: list[FailureMark] = Field(default_factory=list)
    owner_id: str | None = None
    created_at: int = Field(default_factory=now_ms)
    modified_at: int = Field(default_factory=now_ms)
    revision: int = 0
    secret: SecretStr | None = Field(
        default=None, description="Signing secret, whsec_ + base64 of 24 to 64 random bytes."
    )
    previous_secret: SecretStr | None = None
    previous_secret_expires_at: int | None = None
    esri_signature: bool = False
    numeric_id: int | None = Field(
        default=None,
        ge=1,
        le=2**53 - 1,
        description="Stable number handed out once by the registry (device payloads' webhook.id).",
    )
    ca_bundle: str | None = Field(
        default=None,
        max_length=MAX_PEM_CHARS,
        description="PEM CA certificates the receiver's certificate may chain to, beside the "
        "public CAs and the operator's extra bundle.",
    )
    client_cert: str | None = Field(
        default=None,
        max_length=MAX_PEM_CHARS,
        description="PEM client certificate (then its chain) shown to the receiver: mutual TLS.",
    )
    client_key: SecretStr | None = Field(
        default=None,
        max_length=MAX_PEM_CHARS,
        validate_default=True,
        description="Unencrypted PEM private key of client_cert; encrypted at rest.",
    )

    @field_validator("ca_bundle", "client_cert")
    @classmethod
    def _pem(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            load_certificates(value, info.field_name or "certificate")
        return value

    @field_validator("client_key")
    @classmethod
    def _client_key(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if "client_cert" not in info.data:
            return value  # client_cert itself was refused; that error says why
        key = None if value is None else value.get_secret_value()
        check_client_key(info.data["client_cert"], key)
        return value

    @field_validator("secret", "previous_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            signing_key(value.get_secret_value())
        return value

    @field_validator("payload_url")
    @classmethod
    def _url(cls, value: str) -> str:
        check_absolute_url(value, "payload_url")
        return value

    @model_validator(mode="after")
    def _triggers(self) -> Self:
        try:
            # Catalog triggers are checked against the catalog where a webhook is written (the
            # admin API); a record must stay readable before, or after, the catalog changes.
            parse_triggers(self.triggers, self.smart_group_id, OPEN_VOCABULARY)
        except TriggerError as exc:
            raise ValueError(str(exc)) from exc
        return self


class WebhookCommand(_Record):
    """A change to one webhook; the registry applies them one key at a time."""

    command_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    webhook_id: str = Field(pattern=_ID)
    kind: CommandKind
    config: WebhookConfig | None = None
    reason: str | None = None
    delivery_id: str | None = None
    issued_at: int = Field(default_factory=now_ms)

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.kind is CommandKind.UPSERT:
            if self.config is None or self.config.webhook_id != self.webhook_id:
                raise ValueError("an upsert carries the config of the same webhook_id")
        if self.kind is CommandKind.RECORD_FAILURE and not self.delivery_id:
            raise ValueError("record_failure names the failed delivery_id")
        return self


class DeliveryJob(_Record):
    """One delivery of event(s) to one webhook; its id stays the same across retries."""

    delivery_id: str
    webhook_id: str
    trigger: str
    events: list[DomainEvent] = Field(min_length=1)
    attempt: int = Field(default=1, ge=1)
    due_at: int
    triggered_at: int
    redelivery: bool = False


class DeliveryStatus(_Record):
    """The result of one attempt (or a change of a webhook's state), for the status topic."""

    delivery_id: str | None = None
    webhook_id: str
    webhook_name: str
    event_ids: list[str] = Field(default_factory=list)
    trigger: str | None = None
    attempt: int = 0
    max_attempts: int = 0
    attempted_at: int = Field(default_factory=now_ms)
    duration_ms: float = 0.0
    outcome: Outcome
    final: bool
    next_attempt_at: int | None = None
    http_status: int | None = None
    response_excerpt: str | None = None
    error: str | None = None
    payload: str | None = None


class DeliveryPolicy(_Record):
    """Global delivery settings every sender follows live (the portal's advanced parameters)."""

    max_attempts: int = Field(default=3, ge=1, le=5)
    retry_interval_s: float = Field(default=30.0, ge=1.0, le=100.0)
    request_timeout_s: float = Field(default=10.0, gt=0, le=60.0)
    modified_at: int = Field(default_factory=now_ms)


class DeadLetter(_Record):
    """A record that could not be used, with where it came from and why."""

    source_topic: str
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes | None = None
    reason: str
    service: str
    dead_at: int = Field(default_factory=now_ms)
