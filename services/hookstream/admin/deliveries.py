"""Routes of the delivery history (per webhook and across webhooks), redelivery and ping."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import Field

from hookstream.admin.deps import Num, Start, Statuses, Webhooks, find_webhook
from hookstream.admin.ping import ping
from hookstream.admin.problems import invalid_field
from hookstream.admin.recovery import router as recovery_router
from hookstream.admin.schemas import DeliveryPage, PingResult, RedeliveryAccepted, problem_responses
from hookstream.admin.state import AdminState
from hookstream.history.query import COUNT_CAP, DeliveryQuery, HistoryQueryError
from hookstream.history.schemas import DeliveryOut, DeliveryOutcome
from hookstream.records.codec import encode
from hookstream.records.models import DeliveryJob, now_ms

log = logging.getLogger(__name__)

webhook_router = APIRouter(prefix="/webhooks/{webhook_id}", tags=["deliveries"])
search_router = APIRouter(tags=["deliveries"])

EpochMs = Annotated[int | None, Query(ge=0, le=2**53, description="Epoch milliseconds.")]
HttpStatus = Annotated[
    int | None, Query(ge=100, le=599, description="HTTP status of the last attempt.")
]
EventId = Annotated[
    str | None, Query(min_length=1, max_length=200, description="Only deliveries of this event.")
]
Trigger = Annotated[
    str | None, Query(min_length=1, max_length=512, description="Only deliveries of this trigger.")
]
Cursor = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=2000,
        description="The next_cursor of the previous page: pages stay stable while new "
        "deliveries arrive (start must then be 1).",
    ),
]

LIST_DESCRIPTION = (
    "Newest first. Delivered entries are listed for HOOKSTREAM_ADMIN__SUCCESS_RETENTION_S after "
    "their last attempt (one day by default), failed ones for "
    "HOOKSTREAM_ADMIN__FAILURE_RETENTION_S (seven days). `since` (inclusive) and `until` "
    "(exclusive) bound when the webhook fired; `http_status` is that of the last attempt. Page "
    "with `start` and `num`, or with `cursor` (the `next_cursor` of the previous page)."
)


class DeliverySearchPage(DeliveryPage):
    """A page of deliveries, with the cursor of the next page."""

    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null on the last page."
    )
    total_exact: bool = Field(
        default=True,
        description=f"False when `total` is only a lower bound: more than {COUNT_CAP:,} "
        "deliveries matched (counting stops there), or a cursor page (which does not count).",
    )


async def _search(
    state: AdminState, query: DeliveryQuery, start: int, num: int, cursor: str | None
) -> DeliverySearchPage:
    if query.since is not None and query.until is not None and query.until < query.since:
        invalid_field("until", "until must not be before since", part="query")
    if cursor is not None and start != 1:
        invalid_field("start", "start must be 1 (or absent) when a cursor is given", part="query")
    try:
        found = await asyncio.to_thread(
            state.store.search, query, state.clock(), num, start - 1, cursor
        )
    except HistoryQueryError as exc:
        invalid_field("cursor", str(exc), part="query")
    shown = len(found.deliveries)
    if found.total is None:
        # A cursor page: what it shows (and one more, if a next page exists) is all we know.
        total, exact = shown + (found.next_cursor is not None), False
    else:
        total, exact = found.total, found.total < COUNT_CAP
    return DeliverySearchPage(
        total=total,
        total_exact=exact,
        start=start,
        num=shown,
        # Whether more follow is known from the page itself (the count may stop at the cap).
        next_start=start + num if cursor is None and found.next_cursor is not None else None,
        next_cursor=found.next_cursor,
        deliveries=found.deliveries,
    )


@webhook_router.get(
    "/deliveries",
    summary="Notification status: the webhook's recent deliveries, newest first",
    description=LIST_DESCRIPTION,
    responses=problem_responses(401, 404, 422, 503),
)
async def list_deliveries(
    webhook_id: str,
    state: Statuses,
    start: Start = 1,
    num: Num = 10,
    outcome: Annotated[DeliveryOutcome | None, Query()] = None,
    http_status: HttpStatus = None,
    since: EpochMs = None,
    until: EpochMs = None,
    event_id: EventId = None,
    trigger: Trigger = None,
    cursor: Cursor = None,
) -> DeliverySearchPage:
    find_webhook(state, webhook_id)
    query = DeliveryQuery(webhook_id, outcome, http_status, since, until, event_id, trigger)
    return await _search(state, query, start, num, cursor)


@search_router.get(
    "/deliveries",
    summary="Deliveries of every webhook, newest first, searched by outcome, time, event...",
    description=LIST_DESCRIPTION,
    responses=problem_responses(401, 422, 503),
)
async def search_deliveries(
    state: Statuses,
    start: Start = 1,
    num: Num = 10,
    webhook_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    outcome: Annotated[DeliveryOutcome | None, Query()] = None,
    http_status: HttpStatus = None,
    since: EpochMs = None,
    until: EpochMs = None,
    event_id: EventId = None,
    trigger: Trigger = None,
    cursor: Cursor = None,
) -> DeliverySearchPage:
    query = DeliveryQuery(webhook_id, outcome, http_status, since, until, event_id, trigger)
    return await _search(state, query, start, num, cursor)


@search_router.get(
    "/deliveries/{delivery_id}",
    summary="One delivery of any webhook: its events, attempts, responses and payload",
    responses=problem_responses(401, 404, 422, 503),
)
async def show_any_delivery(delivery_id: str, state: Statuses) -> DeliveryOut:
    found = await asyncio.to_thread(state.store.get, delivery_id, state.clock())
    if found is None:
        raise HTTPException(status_code=404, detail=f"no delivery {delivery_id!r} is recorded")
    return found


@webhook_router.get(
    "/deliveries/{delivery_id}",
    summary="One delivery: its events, attempts and payload",
    responses=problem_responses(401, 404, 422, 503),
)
async def show_delivery(webhook_id: str, delivery_id: str, state: Statuses) -> DeliveryOut:
    found = await asyncio.to_thread(state.store.get, delivery_id, state.clock(), webhook_id)
    if found is None:
        raise HTTPException(
            status_code=404, detail=f"no delivery {delivery_id!r} of webhook {webhook_id!r}"
        )
    return found


@webhook_router.post(
    "/deliveries/{delivery_id}/redeliver",
    status_code=202,
    summary="Send a recorded delivery again (same delivery id, attempts start at 1)",
    responses=problem_responses(401, 404, 409, 422, 503),
)
async def redeliver(webhook_id: str, delivery_id: str, state: Statuses) -> RedeliveryAccepted:
    entry = await asyncio.to_thread(state.store.get_row, webhook_id, delivery_id, state.clock())
    if entry is None:
        raise HTTPException(
            status_code=404, detail=f"no delivery {delivery_id!r} of webhook {webhook_id!r}"
        )
    config = find_webhook(state, webhook_id)
    if not config.active:
        raise HTTPException(
            status_code=409,
            detail=f"webhook {webhook_id!r} is inactive; activate it before redelivering",
        )
    events = entry.events()
    if not events or entry.trigger is None:
        raise HTTPException(
            status_code=409,
            detail=f"the events of delivery {delivery_id!r} are no longer on the deliveries "
            f"topic, so it cannot be sent again",
        )
    now = now_ms()
    job = DeliveryJob(
        delivery_id=delivery_id,
        webhook_id=webhook_id,
        trigger=entry.trigger,
        events=events,
        attempt=1,
        due_at=now,
        triggered_at=entry.triggered_at or now,
        redelivery=True,
    )
    await state.publish_job(state.settings.topics.deliveries, webhook_id.encode(), encode(job))
    log.info(
        "redelivery of %s to webhook %s queued",
        delivery_id,
        webhook_id,
        extra={"delivery_id": delivery_id, "webhook_id": webhook_id},
    )
    return RedeliveryAccepted(delivery_id=delivery_id, webhook_id=webhook_id)


@webhook_router.post(
    "/ping",
    summary="POST a test event to the payload URL now and report the answer",
    description="Not a delivery: it is not recorded and does not count against the "
    "deactivation policy. The receiver sees the header X-Hookstream-Ping: true.",
    responses=problem_responses(401, 404, 422, 503),
)
async def ping_webhook(webhook_id: str, state: Webhooks) -> PingResult:
    return await ping(state, find_webhook(state, webhook_id))


#: Every route of this module, as the app includes them.
router = APIRouter()
router.include_router(webhook_router)
router.include_router(search_router)
router.include_router(recovery_router)
