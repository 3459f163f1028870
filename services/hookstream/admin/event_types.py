"""Routes of /api/v1/event-types: the event-type catalog, and the catalog check of triggers.

Declared types are records of the compacted event-types topic (key = ``source.operation``); the
admin writes them and answers once its own view shows the change. ``GET`` lists the built-in
vocabularies beside the declared types, so a UI or a receiver's developer can discover them.
``check_triggers`` runs before the webhook routes: a trigger on an undeclared source or type is
refused with the close matches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import ValidationError

from hookstream.admin.deps import Webhooks
from hookstream.admin.event_type_schemas import EventTypeIn, EventTypeList, EventTypeOut
from hookstream.admin.problems import invalid_field, raise_invalid
from hookstream.admin.schemas import problem_responses
from hookstream.admin.state import Watch
from hookstream.core.eventtypes import EventType, type_name
from hookstream.core.triggers import TriggerError, TriggerFamily, parse_triggers
from hookstream.records.codec import encode
from hookstream.records.models import now_ms
from hookstream.settings import Settings
from hookstream.views.catalog import CatalogFeed, EventCatalog, builtin_types

log = logging.getLogger(__name__)

router = APIRouter(prefix="/event-types", tags=["event types"])


class WatchedCatalogFeed(CatalogFeed):
    """The catalog view, waking waiters after every record."""

    def __init__(self, catalog: EventCatalog, settings: Settings, bootstrap: str) -> None:
        super().__init__(
            catalog,
            bootstrap,
            settings.topics.event_types,
            f"{settings.app_id}-admin-catalog",
            settings.kafka_security,
        )
        self.watch = Watch()

    def apply(self, record: Any) -> None:
        super().apply(record)
        self.watch.notify()


@contextlib.asynccontextmanager
async def open_catalog(settings: Settings, bootstrap: str) -> AsyncIterator[WatchedCatalogFeed]:
    """Follow the event-types topic for the admin's lifetime."""
    feed = WatchedCatalogFeed(EventCatalog(), settings, bootstrap)
    await feed.start()
    try:
        yield feed
    finally:
        await feed.stop()


def get_catalog(request: Request) -> WatchedCatalogFeed:
    """The catalog view once it holds everything the topic held at start, else 503."""
    feed: WatchedCatalogFeed = request.app.state.catalog
    if not feed.ready.is_set():
        raise HTTPException(
            status_code=503,
            detail="the admin service is starting: its event-types view has not caught up yet; "
            "retry",
            headers={"Retry-After": "1"},
        )
    return feed


Catalog = Annotated[WatchedCatalogFeed, Depends(get_catalog)]


async def check_triggers(request: Request) -> None:
    """Refuse a webhook write whose triggers name an undeclared catalog source or type (422
    under ``triggers``, with the close matches). Other faults are left to the route's model."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    try:
        body = json.loads(await request.body())
    except ValueError:
        return
    if not isinstance(body, dict):
        return
    triggers = body.get("triggers")
    if not isinstance(triggers, list) or not all(isinstance(t, str) for t in triggers):
        return
    group = body.get("smart_group_id")
    catalog = get_catalog(request).catalog
    try:
        parse_triggers(triggers, group if isinstance(group, str) else None, catalog)
    except TriggerError as exc:
        invalid_field("triggers", str(exc))


def _declared(event_type: EventType) -> EventTypeOut:
    source, operation = event_type.source, event_type.operation
    return EventTypeOut(
        name=event_type.name,
        family="catalog",
        source=source,
        operation=operation,
        triggers=[f"/{source}", f"/{source}/{operation}", f"/{source}/<id>/{operation}"],
        description=event_type.description,
        json_schema=event_type.json_schema,
        schema_mode=event_type.schema_mode,
        example=event_type.example,
        created_at=event_type.created_at,
        modified_at=event_type.modified_at,
    )


def _builtin() -> list[EventTypeOut]:
    return [
        EventTypeOut(
            name=entry["name"],
            family="portal" if entry["family"] == "portal" else "device",
            source=entry["source"],
            operation=entry["operation"],
            triggers=[entry["trigger"]],
        )
        for entry in builtin_types()
    ]


@router.get(
    "",
    summary="List every event type: built in (portal, device) and declared",
    responses=problem_responses(401, 503),
)
async def list_event_types(feed: Catalog) -> EventTypeList:
    items = [*_builtin(), *(_declared(t) for t in feed.catalog.all())]
    return EventTypeList(total=len(items), items=items)


def _find(feed: WatchedCatalogFeed, name: str) -> EventType:
    source, _, operation = name.partition(".")
    found = feed.catalog.get(source, operation) if operation else None
    if found is None:
        raise HTTPException(status_code=404, detail=f"no declared event type named {name!r}")
    return found


@router.get(
    "/{name}", summary="Show a declared event type", responses=problem_responses(401, 404, 503)
)
async def show_event_type(name: str, feed: Catalog) -> EventTypeOut:
    return _declared(_find(feed, name))


async def _write(state: Webhooks, feed: WatchedCatalogFeed, name: str, value: bytes | None) -> None:
    """Write a type (or its tombstone) and wait until the view shows it; 503 if it does not."""
    topic = state.settings.topics.event_types
    timeout_s = state.settings.admin.write_timeout_s
    await asyncio.wait_for(
        state.producer.send_and_wait(topic, value=value, key=name.encode()), timeout_s
    )

    def applied() -> bool:
        source, _, operation = name.partition(".")
        held = feed.catalog.get(source, operation)
        return held is None if value is None else held is not None and encode(held) == value

    if not await feed.watch.wait_for(applied, timeout_s):
        raise HTTPException(
            status_code=503,
            detail=f"event type {name!r} was written to {topic!r} but not read back within "
            f"{timeout_s:g} s",
        )
    log.info("event type %s %s", name, "deleted" if value is None else "written")


def _validated(body: EventTypeIn, created_at: int | None) -> EventType:
    now = now_ms()
    try:
        return EventType.model_validate(
            {**body.model_dump(), "created_at": created_at or now, "modified_at": now}
        )
    except ValidationError as exc:
        raise_invalid(exc)


@router.post(
    "",
    status_code=201,
    summary="Declare an event type",
    responses=problem_responses(401, 409, 422, 503),
)
async def create_event_type(body: EventTypeIn, state: Webhooks, feed: Catalog) -> EventTypeOut:
    event_type = _validated(body, None)
    if feed.catalog.get(event_type.source, event_type.operation) is not None:
        raise HTTPException(
            status_code=409,
            detail=f"event type {event_type.name!r} is already declared; change it with PUT "
            f"/api/v1/event-types/{event_type.name}",
        )
    await _write(state, feed, event_type.name, encode(event_type))
    return _declared(event_type)


@router.put(
    "/{name}",
    summary="Change a declared event type (its source and operation stay)",
    responses=problem_responses(401, 404, 422, 503),
)
async def replace_event_type(
    name: str, body: EventTypeIn, state: Webhooks, feed: Catalog
) -> EventTypeOut:
    current = _find(feed, name)
    if type_name(body.source, body.operation) != current.name:
        invalid_field(
            "operation",
            f"the body names {type_name(body.source, body.operation)!r}, the path {name!r}; "
            f"a type's source and operation cannot change (declare a new type instead)",
        )
    event_type = _validated(body, current.created_at)
    await _write(state, feed, event_type.name, encode(event_type))
    return _declared(event_type)


@router.delete(
    "/{name}",
    status_code=204,
    summary="Remove a declared event type no webhook subscribes to",
    responses=problem_responses(401, 404, 409, 503),
)
async def delete_event_type(name: str, state: Webhooks, feed: Catalog) -> Response:
    current = _find(feed, name)
    users = sorted(
        config.webhook_id
        for config in state.directory.all()
        if _names_type(config.triggers, current, feed.catalog)
    )
    if users:
        raise HTTPException(
            status_code=409,
            detail=f"webhooks {', '.join(users[:10])} subscribe to event type {current.name!r}; "
            f"change their triggers first",
        )
    await _write(state, feed, current.name, None)
    return Response(status_code=204)


def _names_type(triggers: list[str], event_type: EventType, catalog: EventCatalog) -> bool:
    """Whether triggers name this type itself (a trigger on its whole source does not)."""
    try:
        parsed = parse_triggers(triggers, None, catalog.lenient())
    except TriggerError:
        return False
    return any(
        trigger.family is TriggerFamily.CATALOG
        and type_name(trigger.key.source, trigger.key.operation) == event_type.name
        for trigger in parsed
    )
