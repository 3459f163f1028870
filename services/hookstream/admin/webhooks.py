"""Routes of /api/v1/webhooks: create, list, show, update, delete, activate, deactivate.

Every write is a command to the registry (the config topic's only writer); the answer comes once
the admin's own view of the config topic shows the change, or is a 503 after
``HOOKSTREAM_ADMIN__WRITE_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Body, HTTPException, Query, Response
from pydantic import ValidationError

from hookstream.admin.deps import Num, Start, Webhooks, find_webhook, next_start
from hookstream.admin.event_types import Catalog
from hookstream.admin.problems import invalid_field, raise_invalid
from hookstream.admin.schemas import (
    CircuitOut,
    DeactivateRequest,
    WebhookCreate,
    WebhookOut,
    WebhookPage,
    WebhookPatch,
    problem_responses,
)
from hookstream.admin.state import AdminState
from hookstream.core.certificates import check_current
from hookstream.core.triggers import OPEN_VOCABULARY, TriggerError, parse_trigger, parse_triggers
from hookstream.net.oauth import token_url_refusal
from hookstream.net.ssrf import AddressPolicy, BlockedAddressError
from hookstream.records.models import CommandKind, WebhookCommand, WebhookConfig

log = logging.getLogger(__name__)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


def _validated(fields: dict[str, Any], state: AdminState) -> WebhookConfig:
    """The config these fields make by the rules of ``WebhookConfig``, or a 422 naming the field.

    The payload URL is refused by the same rule (and canonical reading of its host) as every
    attempt applies, so what is registered can be sent. No message echoes the submitted value.
    """
    try:
        config = WebhookConfig.model_validate(fields)
    except ValidationError as exc:
        raise_invalid(exc)
    refusal = url_refusal(state, config.payload_url)
    if refusal is not None:
        invalid_field("payload_url", refusal)
    if config.auth.token_url is not None:
        settings = state.settings
        refusal = token_url_refusal(
            config.auth.token_url,
            AddressPolicy(settings.security.allow_networks),
            settings.delivery.allow_plain_http,
        )
        if refusal is not None:
            invalid_field("auth.token_url", refusal)
    # Checked here, not in the model: a stored config must stay readable after its certificate
    # expires (the attempt then fails saying so).
    for field in ("ca_bundle", "client_cert"):
        pem = getattr(config, field)
        if pem is not None:
            try:
                check_current(pem, field)
            except ValueError as exc:
                invalid_field(field, str(exc))
    return config


def url_refusal(state: AdminState, url: str) -> str | None:
    """Why a payload URL may not be used (plain http, a refused or unusable host), or None;
    the reason never repeats the URL."""
    if urlsplit(url).scheme != "https" and not state.settings.delivery.allow_plain_http:
        return (
            "payload_url must be an https:// URL (plain http is allowed only in development, "
            "with HOOKSTREAM_DELIVERY__ALLOW_PLAIN_HTTP=true)"
        )
    try:
        AddressPolicy(state.settings.security.allow_networks).check_url(url)
    except BlockedAddressError as exc:
        return exc.without_host
    return None


async def _apply(
    state: AdminState, command: WebhookCommand, applied: Callable[[], bool]
) -> WebhookConfig | None:
    """Send a command, then wait until the view shows it; 503 if the registry is too slow."""
    await state.command(command)
    timeout_s = state.settings.admin.write_timeout_s
    if not await state.webhooks.watch.wait_for(applied, timeout_s):
        raise HTTPException(
            status_code=503,
            detail=f"the {command.kind} of webhook {command.webhook_id!r} was queued but the "
            f"registry did not apply it within {timeout_s:g} s; is the matcher (which runs the "
            f"registry) running? It will be applied when the registry runs",
            headers={"Retry-After": "5"},
        )
    return state.directory.get(command.webhook_id)


def _newer_than(state: AdminState, webhook_id: str, revision: int) -> Callable[[], bool]:
    def check() -> bool:
        config = state.directory.get(webhook_id)
        return config is not None and config.revision > revision

    return check


async def _upsert(state: AdminState, config: WebhookConfig) -> WebhookOut:
    webhook_id = config.webhook_id
    before = state.directory.revision(webhook_id)
    command = WebhookCommand(webhook_id=webhook_id, kind=CommandKind.UPSERT, config=config)
    result = await _apply(state, command, _newer_than(state, webhook_id, before))
    if result is None:  # deleted meanwhile by someone else
        raise HTTPException(status_code=404, detail=f"webhook {webhook_id!r} was deleted")
    return WebhookOut.of(result)


@router.post(
    "",
    status_code=201,
    summary="Create a webhook",
    responses=problem_responses(401, 409, 422, 503),
)
async def create_webhook(body: WebhookCreate, state: Webhooks, response: Response) -> WebhookOut:
    webhook_id = body.id or uuid.uuid4().hex
    if state.directory.get(webhook_id) is not None:
        raise HTTPException(status_code=409, detail=f"a webhook with id {webhook_id!r} exists")
    fields = {name: getattr(body, name) for name in type(body).model_fields if name != "id"}
    config = _validated({**fields, "webhook_id": webhook_id}, state)
    created = await _upsert(state, config)
    response.headers["Location"] = f"/api/v1/webhooks/{webhook_id}"
    return created


@router.get("", summary="List webhooks", responses=problem_responses(401, 422, 503))
async def list_webhooks(
    state: Webhooks,
    catalog: Catalog,
    start: Start = 1,
    num: Num = 10,
    active: Annotated[bool | None, Query(description="Only active or inactive ones.")] = None,
    trigger: Annotated[
        str | None, Query(max_length=512, description="Only those subscribed to this trigger.")
    ] = None,
) -> WebhookPage:
    key = None
    if trigger is not None:
        try:
            # The same rules as a webhook's triggers: an undeclared type is refused, with hints.
            key = parse_trigger(trigger, catalog=catalog.catalog).key
        except TriggerError as exc:
            invalid_field("trigger", str(exc), part="query")
    found = [
        config
        for config in state.directory.all()
        if (active is None or config.active is active)
        and (
            key is None
            or any(t.key == key for t in parse_triggers(config.triggers, None, OPEN_VOCABULARY))
        )
    ]
    found.sort(key=lambda config: (config.created_at, config.webhook_id))
    page = found[start - 1 : start - 1 + num]
    circuits = await _open_circuits(state, page)
    return WebhookPage(
        total=len(found),
        start=start,
        num=len(page),
        next_start=next_start(start, num, len(found)),
        webhooks=[WebhookOut.of(config, circuits.get(config.webhook_id)) for config in page],
    )


@router.get(
    "/{webhook_id}", summary="Show a webhook", responses=problem_responses(401, 404, 422, 503)
)
async def show_webhook(webhook_id: str, state: Webhooks) -> WebhookOut:
    config = find_webhook(state, webhook_id)
    circuits = await _open_circuits(state, [config])
    return WebhookOut.of(config, circuits.get(webhook_id))


async def _open_circuits(state: AdminState, configs: list[WebhookConfig]) -> dict[str, CircuitOut]:
    """The open circuits among ``configs``, from the notification status (held deliveries)."""
    held = await asyncio.to_thread(state.store.open_circuits, [c.webhook_id for c in configs])
    return {
        webhook_id: CircuitOut(
            held_at=back.held_at, next_probe_at=back.next_probe_at, reason=back.reason
        )
        for webhook_id, back in held.items()
    }


@router.patch(
    "/{webhook_id}",
    summary="Change a webhook",
    responses=problem_responses(401, 404, 422, 503),
)
async def update_webhook(webhook_id: str, body: WebhookPatch, state: Webhooks) -> WebhookOut:
    current = find_webhook(state, webhook_id)
    if not body.model_fields_set:
        return WebhookOut.of(current)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    config = _validated({**current.model_dump(), **changes}, state)
    return await _upsert(state, config)


@router.delete(
    "/{webhook_id}",
    status_code=204,
    summary="Delete a webhook",
    responses=problem_responses(401, 404, 422, 503),
)
async def delete_webhook(webhook_id: str, state: Webhooks) -> Response:
    find_webhook(state, webhook_id)
    command = WebhookCommand(webhook_id=webhook_id, kind=CommandKind.DELETE)
    await _apply(state, command, lambda: state.directory.get(webhook_id) is None)
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/activate",
    summary="Activate a webhook (and clear its failure count)",
    responses=problem_responses(401, 404, 422, 503),
)
async def activate_webhook(webhook_id: str, state: Webhooks) -> WebhookOut:
    before = find_webhook(state, webhook_id).revision
    command = WebhookCommand(webhook_id=webhook_id, kind=CommandKind.ACTIVATE)
    result = await _apply(state, command, _newer_than(state, webhook_id, before))
    return WebhookOut.of(result or find_webhook(state, webhook_id))


@router.post(
    "/{webhook_id}/deactivate",
    summary="Deactivate a webhook: nothing is sent until it is activated",
    responses=problem_responses(401, 404, 422, 503),
)
async def deactivate_webhook(
    webhook_id: str, state: Webhooks, body: Annotated[DeactivateRequest | None, Body()] = None
) -> WebhookOut:
    current = find_webhook(state, webhook_id)
    if not current.active:
        return WebhookOut.of(current)
    reason = body.reason if body is not None else None
    command = WebhookCommand(webhook_id=webhook_id, kind=CommandKind.DEACTIVATE, reason=reason)
    result = await _apply(state, command, _newer_than(state, webhook_id, current.revision))
    return WebhookOut.of(result or find_webhook(state, webhook_id))
