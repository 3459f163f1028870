"""Console pages of webhooks: the list, the create and edit forms, activate, deactivate,
delete (after a confirmation page) and ping. Every change goes through the API's own route
function, so the console applies exactly the API's rules."""

from __future__ import annotations

import asyncio
import logging
from enum import Enum
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from hookstream.admin import webhooks
from hookstream.admin.console.forms import (
    AUTH_KINDS,
    form_values,
    trigger_groups,
    values_of,
    webhook_fields,
)
from hookstream.admin.console.pages import (
    ConsoleRoute,
    Posted,
    Signed,
    field_errors,
    form_key,
    render,
    see_other,
)
from hookstream.admin.deps import Webhooks, find_webhook
from hookstream.admin.event_types import Catalog
from hookstream.admin.ping import ping
from hookstream.admin.problems import field_problems
from hookstream.admin.schemas import DeactivateRequest, WebhookCreate, WebhookFields, WebhookPatch
from hookstream.admin.state import AdminState
from hookstream.core.triggers import TriggerError, parse_triggers
from hookstream.history.query import DeliveryQuery
from hookstream.records.models import PayloadFormat, WebhookConfig

log = logging.getLogger(__name__)

router = APIRouter(prefix="/webhooks", route_class=ConsoleRoute)

#: Outcomes of a form, shown on the page it leads to (fixed texts: nothing from the URL is shown).
NOTICES = {
    "created": "The webhook was created.",
    "saved": "The changes were saved.",
    "activated": "The webhook is active; its failure count starts again from zero.",
    "deactivated": "The webhook is deactivated: nothing is sent until it is activated.",
    "deleted": "The webhook was deleted.",
    "redelivered": "The delivery was queued to be sent again.",
    "settings": "The delivery settings were saved; every sender follows them now.",
}


def notice(request: Request) -> str | None:
    return NOTICES.get(request.query_params.get("notice", ""))


async def _last_deliveries(state: AdminState, configs: list[WebhookConfig]) -> dict[str, Any]:
    """The newest recorded delivery of each webhook (none while the history catches up)."""
    if not all(feed.ready.is_set() for feed in state.store_feeds):
        return {}
    now = state.clock()

    def newest() -> dict[str, Any]:
        found: dict[str, Any] = {}
        for config in configs:
            page = state.store.search(DeliveryQuery(webhook_id=config.webhook_id), now, 1)
            if page.deliveries:
                found[config.webhook_id] = page.deliveries[0]
        return found

    return await asyncio.to_thread(newest)


@router.get("", include_in_schema=False)
async def list_page(request: Request, session: Signed, state: Webhooks) -> Response:
    configs = sorted(state.directory.all(), key=lambda c: (c.created_at, c.webhook_id))
    return render(
        request,
        "webhooks.html",
        session=session,
        webhooks=configs,
        last=await _last_deliveries(state, configs),
        notice=notice(request),
    )


def _form_page(
    request: Request,
    session: Any,
    catalog: Catalog,
    config: WebhookConfig | None,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    shapes = WebhookFields.model_fields.get("payload_shape")
    groups = trigger_groups(catalog.catalog)
    listed = {value for group in groups for value, _ in group.choices}
    ticked = set(values.get("triggers", []))
    other = values.get("triggers_extra")
    if other is None:
        other = "\n".join(t for t in values.get("triggers", []) if t not in listed)
    return render(
        request,
        "webhook_form.html",
        status,
        session,
        webhook=config,
        values=values,
        errors=errors or {},
        groups=groups,
        open_groups={g.title for g in groups if ticked & {value for value, _ in g.choices}},
        other_triggers=other,
        auth_kinds=AUTH_KINDS,
        formats=[f.value for f in PayloadFormat],
        shapes=_choices(shapes.annotation) if shapes is not None else [],
    )


def _choices(annotation: Any) -> list[str]:
    """The values of an optional enum field, for a select."""
    for member in getattr(annotation, "__args__", (annotation,)):
        if isinstance(member, type) and issubclass(member, Enum):
            return [str(m.value) for m in member]
    return []


@router.get("/new", include_in_schema=False)
async def new_page(request: Request, session: Signed, catalog: Catalog) -> Response:
    return _form_page(request, session, catalog, None, form_values(None))


def _check_triggers(fields: dict[str, Any], catalog: Catalog) -> dict[str, str]:
    """The catalog check the API runs before its webhook routes (undeclared sources, types)."""
    try:
        parse_triggers(fields.get("triggers") or [], fields.get("smart_group_id"), catalog.catalog)
    except TriggerError as exc:
        return {"triggers": str(exc)}
    return {}


async def _apply(
    fields: dict[str, Any], errors: dict[str, str], catalog: Catalog, write: Any
) -> tuple[Any, dict[str, str]]:
    """Validate by the API's model, then run the API's route; the faults keyed by form field."""
    if errors:
        return None, errors
    try:
        result = await write()
    except ValidationError as exc:
        problems = field_problems(exc.errors(include_url=False, include_input=False))
        found: dict[str, str] = {}
        for problem in problems:
            found.setdefault(form_key(problem.field), problem.message)
        return None, found
    except RequestValidationError as exc:
        return None, field_errors(exc)
    except HTTPException as exc:
        if exc.status_code == 409:
            return None, {"id": str(exc.detail)}
        raise
    return result, {}


@router.post("/new", include_in_schema=False)
async def create(
    request: Request, session: Signed, form: Posted, state: Webhooks, catalog: Catalog
) -> Response:
    read = webhook_fields(form, None)
    errors = read.errors or _check_triggers(read.fields, catalog)

    async def write() -> Any:
        body = WebhookCreate.model_validate(read.fields)
        return await webhooks.create_webhook(body, state, Response())

    created, errors = await _apply(read.fields, errors, catalog, write)
    if created is None:
        values = {**form_values(None), **values_of(form)}
        return _form_page(request, session, catalog, None, values, errors, 422)
    log.info("webhook %s created in the console", created.id, extra={"webhook_id": created.id})
    if read.generated_secret is not None:
        return render(
            request,
            "secret.html",
            session=session,
            webhook_id=created.id,
            secret=read.generated_secret,
            notice=NOTICES["created"],
        )
    return see_other(f"/webhooks/{created.id}?notice=created")


@router.get("/{webhook_id}/edit", include_in_schema=False)
async def edit_page(
    request: Request, webhook_id: str, session: Signed, state: Webhooks, catalog: Catalog
) -> Response:
    config = find_webhook(state, webhook_id)
    return _form_page(request, session, catalog, config, form_values(config))


@router.post("/{webhook_id}/edit", include_in_schema=False)
async def edit(
    request: Request,
    webhook_id: str,
    session: Signed,
    form: Posted,
    state: Webhooks,
    catalog: Catalog,
) -> Response:
    config = find_webhook(state, webhook_id)
    read = webhook_fields(form, config)
    errors = read.errors or _check_triggers(read.fields, catalog)

    async def write() -> Any:
        body = WebhookPatch.model_validate(read.fields)
        return await webhooks.update_webhook(webhook_id, body, state)

    saved, errors = await _apply(read.fields, errors, catalog, write)
    if saved is None:
        values = {**form_values(config), **values_of(form)}
        return _form_page(request, session, catalog, config, values, errors, 422)
    if read.generated_secret is not None:
        return render(
            request,
            "secret.html",
            session=session,
            webhook_id=webhook_id,
            secret=read.generated_secret,
            notice=NOTICES["saved"],
        )
    return see_other(f"/webhooks/{webhook_id}?notice=saved")


@router.post("/{webhook_id}/activate", include_in_schema=False)
async def activate(webhook_id: str, session: Signed, form: Posted, state: Webhooks) -> Response:
    await webhooks.activate_webhook(webhook_id, state)
    return see_other(f"/webhooks/{webhook_id}?notice=activated")


@router.post("/{webhook_id}/deactivate", include_in_schema=False)
async def deactivate(webhook_id: str, session: Signed, form: Posted, state: Webhooks) -> Response:
    try:
        body = DeactivateRequest(reason=form.optional("reason"))
    except ValidationError as exc:
        reasons = "; ".join(p.message for p in field_problems(exc.errors()))
        raise HTTPException(422, f"reason: {reasons}") from None
    await webhooks.deactivate_webhook(webhook_id, state, body)
    return see_other(f"/webhooks/{webhook_id}?notice=deactivated")


@router.get("/{webhook_id}/delete", include_in_schema=False)
async def delete_page(
    request: Request, webhook_id: str, session: Signed, state: Webhooks
) -> Response:
    config = find_webhook(state, webhook_id)
    return render(request, "confirm_delete.html", session=session, webhook=config)


@router.post("/{webhook_id}/delete", include_in_schema=False)
async def delete(webhook_id: str, session: Signed, form: Posted, state: Webhooks) -> Response:
    await webhooks.delete_webhook(webhook_id, state)
    log.info("webhook %s deleted in the console", webhook_id, extra={"webhook_id": webhook_id})
    return see_other("/webhooks?notice=deleted")


@router.post("/{webhook_id}/ping", include_in_schema=False)
async def ping_page(
    request: Request, webhook_id: str, session: Signed, form: Posted, state: Webhooks
) -> Response:
    config = find_webhook(state, webhook_id)
    try:
        result = await ping(state, config)
    except RequestValidationError as exc:
        return render(
            request,
            "ping.html",
            422,
            session,
            webhook=config,
            result=None,
            refusal="; ".join(field_errors(exc).values()),
        )
    return render(request, "ping.html", session=session, webhook=config, result=result)
