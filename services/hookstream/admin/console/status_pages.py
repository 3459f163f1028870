"""Console pages of the notification status: a webhook with its deliveries (filters, pictures
of the last day), one delivery with its attempts and payload, redelivery, and the global
delivery settings. Reads and writes go through the API's own route functions."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any
from xml.dom import minidom

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from hookstream.admin import deliveries, policy_routes
from hookstream.admin.console.charts import HOUR_MS, HOURS, hours_of, latency_svg, volume_svg
from hookstream.admin.console.pages import (
    ConsoleRoute,
    Posted,
    Signed,
    field_errors,
    form_key,
    render,
    see_other,
)
from hookstream.admin.console.webhook_pages import notice
from hookstream.admin.deps import Policy, Statuses, find_webhook
from hookstream.admin.problems import field_problems
from hookstream.admin.schemas import SettingsPatch
from hookstream.history.query import DeliveryQuery
from hookstream.history.schemas import DeliveryOutcome
from hookstream.records.models import DeliveryPolicy

router = APIRouter(route_class=ConsoleRoute)

PAGE_SIZE = 20
#: At most this many deliveries of the last day are drawn (the newest).
CHART_LIMIT = 5000
_FILTERS: dict[str, TypeAdapter[Any]] = {
    "outcome": TypeAdapter(DeliveryOutcome | None),
    "http_status": TypeAdapter(deliveries.HttpStatus),
    "event_id": TypeAdapter(deliveries.EventId),
    "trigger": TypeAdapter(deliveries.Trigger),
    "cursor": TypeAdapter(deliveries.Cursor),
}
_TIMES = ("since", "until")


def _filters(request: Request) -> tuple[dict[str, Any], dict[str, str]]:
    """The filter form's values by the API's rules for its query parameters; empty fields are
    no filter. Times come from datetime-local fields, read as UTC."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, adapter in _FILTERS.items():
        raw = request.query_params.get(name, "").strip()
        try:
            values[name] = adapter.validate_python(raw or None)
        except ValidationError as exc:
            errors[name] = "; ".join(p.message for p in field_problems(exc.errors()))
    for name in _TIMES:
        raw = request.query_params.get(name, "").strip()
        values[name] = None
        if raw:
            try:
                moment = datetime.fromisoformat(raw).replace(tzinfo=UTC)
            except ValueError:
                errors[name] = "a date and time such as 2026-01-31T13:45"
            else:
                values[name] = int(moment.timestamp() * 1000)
    return values, errors


@router.get("/webhooks/{webhook_id}", include_in_schema=False)
async def webhook_page(
    request: Request, webhook_id: str, session: Signed, state: Statuses
) -> Response:
    config = find_webhook(state, webhook_id)
    values, errors = _filters(request)
    page = None
    if not errors:
        try:
            page = await deliveries.list_deliveries(
                webhook_id,
                state,
                start=1,
                num=PAGE_SIZE,
                outcome=values["outcome"],
                http_status=values["http_status"],
                since=values["since"],
                until=values["until"],
                event_id=values["event_id"],
                trigger=values["trigger"],
                cursor=values["cursor"],
            )
        except RequestValidationError as exc:
            errors = field_errors(exc)
    now = state.clock()
    day = DeliveryQuery(webhook_id=webhook_id, since=now - HOURS * HOUR_MS)
    recent = await asyncio.to_thread(state.store.search, day, now, CHART_LIMIT)
    hours = hours_of(recent.deliveries, now)
    next_href = None
    if page is not None and page.next_cursor is not None:
        following = request.url.include_query_params(cursor=page.next_cursor)
        next_href = f"{following.path}?{following.query}"
    shown = {k: request.query_params.get(k, "") for k in (*_FILTERS, *_TIMES) if k != "cursor"}
    return render(
        request,
        "webhook.html",
        session=session,
        webhook=config,
        page=page,
        next_href=next_href,
        filters=shown,
        errors=errors,
        outcomes=[o.value for o in DeliveryOutcome],
        volume=volume_svg(hours),
        latency=latency_svg(hours),
        charted=len(recent.deliveries),
        notice=notice(request),
    )


def pretty(payload: str | None) -> str:
    """The payload indented for reading: JSON or XML, as it is; anything else unchanged."""
    if not payload:
        return ""
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except ValueError:
        pass
    if payload.lstrip().startswith("<"):
        try:
            # Only the service's own payloads reach here (built by hookstream.core.payloads).
            parsed = minidom.parseString(payload)  # noqa: S318
        except Exception:  # noqa: BLE001 - not well-formed: show it as it is
            return payload
        lines = parsed.toprettyxml(indent="  ").splitlines()
        return "\n".join(line for line in lines if line.strip())
    return payload


@router.get("/webhooks/{webhook_id}/deliveries/{delivery_id}", include_in_schema=False)
async def delivery_page(
    request: Request, webhook_id: str, delivery_id: str, session: Signed, state: Statuses
) -> Response:
    config = find_webhook(state, webhook_id)
    delivery = await deliveries.show_delivery(webhook_id, delivery_id, state)
    return render(
        request,
        "delivery.html",
        session=session,
        webhook=config,
        delivery=delivery,
        payload=pretty(delivery.payload),
        events=json.dumps([e.model_dump(mode="json") for e in delivery.events], indent=2),
        notice=notice(request),
    )


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", include_in_schema=False)
async def redeliver(
    webhook_id: str, delivery_id: str, session: Signed, form: Posted, state: Statuses
) -> Response:
    await deliveries.redeliver(webhook_id, delivery_id, state)
    return see_other(f"/webhooks/{webhook_id}/deliveries/{delivery_id}?notice=redelivered")


def _ranges() -> list[dict[str, Any]]:
    """Each delivery setting with its range and default, read from ``DeliveryPolicy``."""
    rows = []
    for name in ("max_attempts", "retry_interval_s", "request_timeout_s"):
        info = DeliveryPolicy.model_fields[name]
        low = high = None
        low_open = False
        for rule in info.metadata:
            if hasattr(rule, "ge"):
                low = rule.ge
            if hasattr(rule, "gt"):
                low, low_open = rule.gt, True
            if hasattr(rule, "le"):
                high = rule.le
        rows.append(
            {
                "name": name,
                "default": info.default,
                "range": f"{'above ' if low_open else ''}{low:g} to {high:g}",
                "min": None if low_open else low,
                "max": high,
                "step": "1" if info.annotation is int else "any",
            }
        )
    return rows


def _settings_page(
    request: Request, session: Any, state: Policy, errors: dict[str, str], status: int = 200
) -> Response:
    return render(
        request,
        "settings.html",
        status,
        session,
        policy=state.policy.current,
        rows=_ranges(),
        errors=errors,
        notice=notice(request),
    )


@router.get("/settings", include_in_schema=False)
async def settings_page(request: Request, session: Signed, state: Policy) -> Response:
    return _settings_page(request, session, state, {})


@router.post("/settings", include_in_schema=False)
async def save_settings(request: Request, session: Signed, form: Posted, state: Policy) -> Response:
    changes = {name: form.optional(name) for name in SettingsPatch.model_fields}
    try:
        body = SettingsPatch.model_validate(changes)
        await policy_routes.update_settings(body, state)
    except ValidationError as exc:
        found = {form_key(p.field): p.message for p in field_problems(exc.errors())}
        return _settings_page(request, session, state, found, 422)
    except RequestValidationError as exc:
        return _settings_page(request, session, state, field_errors(exc), 422)
    return see_other("/settings?notice=settings")
