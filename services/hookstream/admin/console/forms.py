"""The webhook form: the choices it offers, and its fields read into the API's request models.

The console validates nothing itself: a form becomes a ``WebhookCreate`` or ``WebhookPatch``
(the API's request models, so the same rules), and the API's own route then checks the rest.
Secrets are write-only here as in the API: an empty secret field keeps the stored value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from hookstream.admin.console.pages import Form
from hookstream.admin.schemas import WebhookFields
from hookstream.records.ids import generate_secret
from hookstream.records.models import AuthKind, DeactivationPolicy, WebhookConfig
from hookstream.views.catalog import EventCatalog, builtin_types

AUTH_KINDS = [kind.value for kind in AuthKind]


@dataclass
class TriggerGroup:
    """One family of triggers the picker offers as checkboxes."""

    title: str
    choices: list[tuple[str, str]] = field(default_factory=list)


def trigger_groups(catalog: EventCatalog) -> list[TriggerGroup]:
    """Portal URIs, device events and declared event types, as the picker lists them."""
    portal = TriggerGroup("Portal trigger URIs", [("/", "/ (everything)")])
    device = TriggerGroup("Device events")
    sources: list[str] = []
    for entry in builtin_types():
        if entry["family"] == "portal":
            if entry["source"] not in sources:
                sources.append(entry["source"])
                portal.choices.append((f"/{entry['source']}", f"/{entry['source']} (all)"))
            portal.choices.append((entry["trigger"], entry["trigger"]))
        else:
            device.choices.append((entry["trigger"], entry["trigger"]))
    declared = TriggerGroup("Declared event types")
    for event_type in catalog.all():
        trigger = f"/{event_type.source}/{event_type.operation}"
        declared.choices.append((trigger, f"{trigger} ({event_type.description or 'declared'})"))
    return [group for group in (portal, device, declared) if group.choices]


def picked_triggers(form: Form) -> list[str]:
    """The ticked triggers, then those typed one per line (item ids, whole sources...)."""
    typed = [line.strip() for line in form.get("triggers_extra").splitlines() if line.strip()]
    return list(dict.fromkeys([*form.all("triggers"), *typed]))


def _headers(form: Form, current: dict[str, SecretStr]) -> dict[str, str] | str:
    """``Name: value`` lines; ``Name:`` alone keeps the stored value. A malformed line is
    returned as the text of the error."""
    headers: dict[str, str] = {}
    for number, line in enumerate(form.get("auth_headers").splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not name:
            return f"line {number} of the headers is not 'Name: value'"
        if not value and name in current:
            value = current[name].get_secret_value()
        headers[name] = value
    return headers


def _kept(new: str | None, current: SecretStr | None, same_kind: bool) -> str | None:
    if new is not None:
        return new
    return current.get_secret_value() if current is not None and same_kind else None


def auth_fields(form: Form, current: WebhookConfig | None) -> dict[str, Any] | str:
    """The ``auth`` object of the form; empty secret fields keep those stored for the same kind."""
    kind = form.get("auth_kind", AuthKind.NONE.value)
    stored = current.auth if current is not None else None
    same = stored is not None and stored.kind.value == kind
    auth: dict[str, Any] = {"kind": kind}
    if kind == AuthKind.BASIC.value:
        auth["username"] = form.optional("auth_username")
        password = form.get("auth_password") or None
        auth["password"] = _kept(password, stored.password if stored else None, same)
    elif kind == AuthKind.HEADER.value:
        headers = _headers(form, stored.headers if stored and same else {})
        if isinstance(headers, str):
            return headers
        auth["headers"] = headers
    elif kind == AuthKind.OAUTH2.value:
        for name in ("token_url", "client_id", "scope", "audience"):
            auth[name] = form.optional(f"auth_{name}")
        secret = form.get("auth_client_secret") or None
        auth["client_secret"] = _kept(secret, stored.client_secret if stored else None, same)
    return auth


@dataclass
class ReadForm:
    """The request fields a form gave, the signing secret it generated (shown once), and the
    faults found before the API's models saw it."""

    fields: dict[str, Any]
    generated_secret: str | None = None
    errors: dict[str, str] = field(default_factory=dict)


def webhook_fields(form: Form, current: WebhookConfig | None) -> ReadForm:
    """The form as the fields of ``WebhookCreate`` (``current`` None) or ``WebhookPatch``."""
    read = ReadForm(fields={})
    fields = read.fields
    fields["name"] = form.get("name").strip()
    fields["payload_url"] = form.get("payload_url").strip()
    fields["triggers"] = picked_triggers(form)
    fields["smart_group_id"] = form.optional("smart_group_id")
    auth = auth_fields(form, current)
    if isinstance(auth, str):
        read.errors["auth"] = auth
    else:
        fields["auth"] = auth
    fields["connect_timeout_s"] = form.optional("connect_timeout_s")
    fields["read_timeout_s"] = form.optional("read_timeout_s")
    fields["payload_format"] = form.get("payload_format", "json")
    if "payload_shape" in WebhookFields.model_fields:
        fields["payload_shape"] = form.optional("payload_shape")
    fields["deactivation_policy"] = {
        "number_of_failures": form.optional("number_of_failures")
        or DeactivationPolicy().number_of_failures,
        "days_in_past": form.optional("days_in_past") or DeactivationPolicy().days_in_past,
    }
    fields["esri_signature"] = form.get("esri_signature") == "on"
    fields["owner_id"] = form.optional("owner_id")
    fields["ca_bundle"] = form.optional("ca_bundle")
    fields["client_cert"] = form.optional("client_cert")
    key = form.optional("client_key")
    if key is not None or current is None:
        fields["client_key"] = key
    action = form.get("secret_action", "generate" if current is None else "keep")
    if action == "generate":
        read.generated_secret = generate_secret()
        fields["secret"] = read.generated_secret
    elif action == "set":
        fields["secret"] = form.get("secret").strip()
    if current is None and form.optional("id") is not None:
        fields["id"] = form.optional("id")
    return read


def form_values(config: WebhookConfig | None) -> dict[str, Any]:
    """What the form shows: a stored webhook's values (never its secrets), or the defaults."""
    if config is None:
        policy = DeactivationPolicy()
        return {
            "auth_kind": "none",
            "payload_format": "json",
            "number_of_failures": policy.number_of_failures,
            "days_in_past": policy.days_in_past,
            "triggers": [],
            "secret_action": "generate",
        }
    auth = config.auth
    return {
        "name": config.name,
        "payload_url": config.payload_url,
        "triggers": config.triggers,
        "smart_group_id": config.smart_group_id or "",
        "auth_kind": auth.kind.value,
        "auth_username": auth.username or "",
        "auth_headers": "\n".join(f"{name}:" for name in sorted(auth.headers)),
        "auth_token_url": auth.token_url or "",
        "auth_client_id": auth.client_id or "",
        "auth_scope": auth.scope or "",
        "auth_audience": auth.audience or "",
        "has_password": auth.password is not None,
        "has_client_secret": auth.client_secret is not None,
        "connect_timeout_s": config.connect_timeout_s or "",
        "read_timeout_s": config.read_timeout_s or "",
        "payload_format": config.payload_format.value,
        "payload_shape": getattr(config, "payload_shape", None) or "",
        "number_of_failures": config.deactivation_policy.number_of_failures,
        "days_in_past": config.deactivation_policy.days_in_past,
        "esri_signature": config.esri_signature,
        "owner_id": config.owner_id or "",
        "ca_bundle": config.ca_bundle or "",
        "client_cert": config.client_cert or "",
        "has_client_key": config.client_key is not None,
        "has_secret": config.secret is not None,
        "secret_action": "keep",
    }


def values_of(form: Form) -> dict[str, Any]:
    """A submitted form's values, to show it again beside its errors (never its secrets)."""
    shown: dict[str, Any] = {
        name: values[0] for name, values in form.fields.items() if values and name != "csrf"
    }
    for secret in ("auth_password", "auth_client_secret", "secret", "client_key"):
        shown.pop(secret, None)
    shown["triggers"] = form.all("triggers")
    # Header values are credentials: the form comes back with the names only.
    names = [line.partition(":")[0].strip() for line in form.get("auth_headers").splitlines()]
    shown["auth_headers"] = "\n".join(f"{name}:" for name in names if name)
    shown["esri_signature"] = form.get("esri_signature") == "on"
    return shown
