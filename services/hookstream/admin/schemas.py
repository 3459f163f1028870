"""The admin API's request and response models, kept apart from the Kafka records.

Requests are checked by the rules of ``hookstream.records.models`` (a request becomes a
``WebhookConfig`` or a ``DeliveryPolicy`` before anything is written), so every rule lives in one
place. Responses never carry a secret: a password is ``has_password``, header authentication shows
header names only, an OAuth2 client secret is ``has_client_secret``, a signing secret is
``has_secret``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from hookstream.core.registry import numeric_id_of
from hookstream.core.triggers import OPEN_VOCABULARY, parse_triggers
from hookstream.history.schemas import DeliveryOut
from hookstream.records.models import (
    AuthKind,
    DeactivationPolicy,
    FailureMark,
    PayloadFormat,
    PayloadShape,
    WebhookAuth,
    WebhookConfig,
)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_triggers(value: list[str] | None) -> list[str] | None:
    """The trigger rules of ``hookstream.core.triggers``, reported under the ``triggers`` field;
    that catalog sources and types exist is checked against the catalog (``admin.event_types``)."""
    if value:
        parse_triggers(value, catalog=OPEN_VOCABULARY)
    return value


class WebhookFields(_Request):
    """What an administrator sets on a webhook; the rules are those of ``WebhookConfig``."""

    name: str = Field(description="1 to 128 characters.")
    payload_url: str = Field(
        description="https:// URL the payloads are POSTed to (http:// only where the operator "
        "allows it for development)."
    )
    triggers: list[str] = Field(
        description="Portal trigger URIs (`/`, `/items`, `/items/update`, `/items/<id>/share`, "
        "...) or device event names (`ComputerAdded`, ...), all of one family."
    )
    smart_group_id: str | None = Field(
        default=None, description="Narrows smart-group device events to one smart group."
    )
    auth: WebhookAuth = Field(
        default_factory=WebhookAuth,
        description="none, basic (username, password), header (header name to value) or "
        "oauth2 (token_url, client_id, client_secret, optional scope and audience: client "
        "credentials, the bearer token fetched and kept by the sender). Write-only secrets: "
        "responses show `has_password`, header names and `has_client_secret` only.",
    )
    connect_timeout_s: float | None = Field(default=None, description="Seconds, up to 60.")
    read_timeout_s: float | None = Field(default=None, description="Seconds, up to 60.")
    payload_format: PayloadFormat = PayloadFormat.JSON
    payload_shape: PayloadShape | None = Field(
        default=None,
        description="For webhooks on declared event types: standard (Standard Webhooks "
        "type/timestamp/data, the default) or portal (the portal's info/events body).",
    )
    deactivation_policy: DeactivationPolicy = Field(default_factory=DeactivationPolicy)
    secret: SecretStr | None = Field(
        default=None,
        description="Signing secret, `whsec_` + base64 of 24 to 64 bytes. Write-only.",
    )
    esri_signature: bool = Field(
        default=False, description="Also send the x-esriHook-Signature header."
    )
    owner_id: str | None = Field(default=None, max_length=256)
    ca_bundle: str | None = Field(
        default=None,
        description="PEM CA certificates the receiver's certificate may chain to (a private CA), "
        "trusted beside the public CAs and the operator's extra bundle.",
    )
    client_cert: str | None = Field(
        default=None,
        description="PEM client certificate (then its chain) for receivers that require mutual "
        "TLS; must not be expired.",
    )
    client_key: SecretStr | None = Field(
        default=None,
        description="Unencrypted PEM private key of `client_cert`. Write-only: responses show "
        "`has_client_key`; encrypted at rest.",
    )

    _triggers = field_validator("triggers")(_check_triggers)


class WebhookCreate(WebhookFields):
    """A new webhook; the server picks the id (uuid4 hex) unless one is given."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Item updates",
                    "payload_url": "https://receiver.example.com/hooks/items",
                    "triggers": ["/items/update", "/items/9f3c2b"],
                    "auth": {"kind": "basic", "username": "hook", "password": "s3cret"},
                    "deactivation_policy": {"number_of_failures": 5, "days_in_past": 5},
                },
                {
                    "id": "new-computers",
                    "name": "New computers",
                    "payload_url": "https://receiver.example.com/hooks/computers",
                    "triggers": ["ComputerAdded"],
                    "payload_format": "xml",
                    "auth": {"kind": "header", "headers": {"X-Api-Key": "k-123"}},
                    "read_timeout_s": 10,
                },
            ]
        }
    )

    id: str | None = Field(
        default=None, description="Letters, digits and ._:@- (up to 128); generated if absent."
    )


class WebhookPatch(_Request):
    """The fields to change; absent fields stay as they are, ``null`` resets optional ones.

    ``auth`` replaces the whole authentication. ``active`` is changed only by the activate and
    deactivate operations.
    """

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Renamed", "triggers": ["/items", "/groups"]}]}
    )

    name: str | None = None
    payload_url: str | None = None
    triggers: list[str] | None = None
    smart_group_id: str | None = None
    auth: WebhookAuth | None = None
    connect_timeout_s: float | None = None
    read_timeout_s: float | None = None
    payload_format: PayloadFormat | None = None
    payload_shape: PayloadShape | None = None
    deactivation_policy: DeactivationPolicy | None = None
    secret: SecretStr | None = None
    esri_signature: bool | None = None
    owner_id: str | None = Field(default=None, max_length=256)
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: SecretStr | None = None

    _triggers = field_validator("triggers")(_check_triggers)


class DeactivateRequest(_Request):
    reason: str | None = Field(default=None, max_length=500)


class AuthOut(BaseModel):
    """A webhook's authentication without its secrets."""

    kind: AuthKind
    username: str | None = None
    has_password: bool = False
    header_names: list[str] = Field(default_factory=list)
    token_url: str | None = Field(default=None, description="oauth2: the token endpoint.")
    client_id: str | None = Field(default=None, description="oauth2: the client id.")
    has_client_secret: bool = Field(
        default=False, description="oauth2: whether a client secret is stored (write-only)."
    )
    scope: str | None = None
    audience: str | None = None


class CircuitOut(BaseModel):
    """An open circuit: the receiver failed to answer again and again, so its deliveries wait
    (held, not failed) while a sender sends one probe at a time until it answers."""

    state: Literal["open"] = "open"
    held_at: int = Field(description="When a delivery was last held back (epoch milliseconds).")
    next_probe_at: int | None = Field(description="When the next probe is due (epoch ms).")
    reason: str | None


class WebhookOut(BaseModel):
    """A webhook as the registry holds it, secrets removed."""

    id: str
    numeric_id: int = Field(
        description="The webhook's number, sent as webhook.id in device payloads: handed out once "
        "by the registry; a webhook written before numbers shows one derived from its id until "
        "its next change."
    )
    name: str
    payload_url: str
    triggers: list[str]
    smart_group_id: str | None
    auth: AuthOut
    connect_timeout_s: float | None
    read_timeout_s: float | None
    payload_format: PayloadFormat
    payload_shape: PayloadShape | None
    deactivation_policy: DeactivationPolicy
    active: bool
    deactivated_reason: str | None
    deactivated_at: int | None = Field(description="Epoch milliseconds.")
    recent_failures: list[FailureMark]
    owner_id: str | None
    created_at: int = Field(description="Epoch milliseconds.")
    modified_at: int = Field(description="Epoch milliseconds.")
    revision: int
    has_secret: bool
    previous_secret_expires_at: int | None = Field(
        description="While a replaced secret still signs beside the new one: until when."
    )
    esri_signature: bool
    ca_bundle: str | None = Field(default=None, description="PEM CA certificates (public).")
    client_cert: str | None = Field(default=None, description="PEM client certificate (public).")
    has_client_key: bool = Field(default=False, description="Whether a client key is stored.")
    circuit: CircuitOut | None = Field(
        default=None,
        description="Set while the receiver's circuit is open, as the notification status last "
        "reported it; null when it answers.",
    )

    @classmethod
    def of(cls, config: WebhookConfig, circuit: CircuitOut | None = None) -> WebhookOut:
        auth = config.auth
        rotating = config.previous_secret is not None
        return cls(
            id=config.webhook_id,
            numeric_id=numeric_id_of(config),
            name=config.name,
            payload_url=config.payload_url,
            triggers=config.triggers,
            smart_group_id=config.smart_group_id,
            auth=AuthOut(
                kind=auth.kind,
                username=auth.username,
                has_password=auth.password is not None,
                header_names=sorted(auth.headers),
                token_url=auth.token_url,
                client_id=auth.client_id,
                has_client_secret=auth.client_secret is not None,
                scope=auth.scope,
                audience=auth.audience,
            ),
            connect_timeout_s=config.connect_timeout_s,
            read_timeout_s=config.read_timeout_s,
            payload_format=config.payload_format,
            payload_shape=config.payload_shape,
            deactivation_policy=config.deactivation_policy,
            active=config.active,
            deactivated_reason=config.deactivated_reason,
            deactivated_at=config.deactivated_at,
            recent_failures=config.recent_failures,
            owner_id=config.owner_id,
            created_at=config.created_at,
            modified_at=config.modified_at,
            revision=config.revision,
            has_secret=config.secret is not None,
            previous_secret_expires_at=config.previous_secret_expires_at if rotating else None,
            esri_signature=config.esri_signature,
            ca_bundle=config.ca_bundle,
            client_cert=config.client_cert,
            has_client_key=config.client_key is not None,
            circuit=circuit,
        )


class Page(BaseModel):
    """The portal's paging: ``start`` is 1-based, ``next_start`` is null on the last page."""

    total: int
    start: int
    num: int
    next_start: int | None


class WebhookPage(Page):
    webhooks: list[WebhookOut]


class SettingsOut(BaseModel):
    """The global delivery settings every sender follows (the portal's advanced parameters)."""

    max_attempts: int = Field(description="Delivery attempts per payload (1 to 5).")
    retry_interval_s: float = Field(description="Seconds between two attempts (1 to 100).")
    request_timeout_s: float = Field(
        description="Notification timeout: how long an attempt waits for the answer (up to 60 s)."
    )
    modified_at: int = Field(description="Epoch milliseconds; 0 while the defaults apply.")


class SettingsPatch(_Request):
    """The settings to change; the ranges are those of ``DeliveryPolicy``."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"max_attempts": 5}]})

    max_attempts: int | None = Field(default=None, description="1 to 5.")
    retry_interval_s: float | None = Field(default=None, description="1 to 100 seconds.")
    request_timeout_s: float | None = Field(default=None, description="Above 0, up to 60 s.")


class DeliveryPage(Page):
    deliveries: list[DeliveryOut]


class RedeliveryAccepted(BaseModel):
    delivery_id: str
    webhook_id: str
    status: Literal["queued"] = "queued"


class PingResult(BaseModel):
    """What the payload URL answered to a test event (not a delivery: nothing is recorded)."""

    ping_id: str
    delivered: bool
    http_status: int | None
    response_excerpt: str | None
    error: str | None
    duration_ms: float


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """An error, as RFC 9457 problem details; ``errors`` names each invalid field."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None


class Health(BaseModel):
    status: str
    waiting_for: list[str] = Field(default_factory=list)


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI descriptions of the error answers a route may give."""
    return {code: {"model": Problem, "description": _DESCRIPTIONS[code]} for code in codes}


_DESCRIPTIONS = {
    401: "Missing or invalid bearer token.",
    404: "No such webhook, delivery or event type.",
    409: "The request conflicts with the webhook's state (or the catalog's).",
    422: "Invalid input; `errors` names each field and what is allowed.",
    503: "Not ready yet, or the change was not applied in time (is the matcher running?).",
}
