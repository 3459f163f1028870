"""Routes of a webhook's deliveries (the notification status), redelivery and ping."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from hookstream.admin.deps import Num, Start, Statuses, Webhooks, find_webhook, next_start
from hookstream.admin.ping import ping
from hookstream.admin.problems import invalid_field
from hookstream.admin.schemas import (
    DeliveryOut,
    DeliveryOutcome,
    DeliveryPage,
    PingResult,
    RedeliveryAccepted,
    problem_responses,
)
from hookstream.codec import encode
from hookstream.models import DeliveryJob, now_ms

log = logging.getLogger(__name__)

router = APIRouter(prefix="/webhooks/{webhook_id}", tags=["deliveries"])

EpochMs = Annotated[int | None, Query(ge=0, le=2**53, description="Epoch milliseconds.")]


@router.get(
    "/deliveries",
    summary="Notification status: the webhook's recent deliveries, newest first",
    description="Delivered entries are listed for HOOKSTREAM_ADMIN__SUCCESS_RETENTION_S after "
    "their last attempt (one day by default), failed ones for "
    "HOOKSTREAM_ADMIN__FAILURE_RETENTION_S (seven days). `since` (inclusive) and `until` "
    "(exclusive) bound when the webhook fired.",
    responses=problem_responses(401, 404, 422, 503),
)
async def list_deliveries(
    webhook_id: str,
    state: Statuses,
    start: Start = 1,
    num: Num = 10,
    outcome: Annotated[DeliveryOutcome | None, Query()] = None,
    since: EpochMs = None,
    until: EpochMs = None,
) -> DeliveryPage:
    find_webhook(state, webhook_id)
    if since is not None and until is not None and until < since:
        invalid_field("until", "until must not be before since", part="query")
    found = state.store.list(webhook_id, outcome=outcome, since=since, until=until)
    page = found[start - 1 : start - 1 + num]
    return DeliveryPage(
        total=len(found),
        start=start,
        num=len(page),
        next_start=next_start(start, num, len(found)),
        deliveries=[entry.to_api() for entry in page],
    )


@router.get(
    "/deliveries/{delivery_id}",
    summary="One delivery: its events, attempts and payload",
    responses=problem_responses(401, 404, 422, 503),
)
async def show_delivery(webhook_id: str, delivery_id: str, state: Statuses) -> DeliveryOut:
    entry = state.store.get(webhook_id, delivery_id)
    if entry is None:
        raise HTTPException(
            status_code=404, detail=f"no delivery {delivery_id!r} of webhook {webhook_id!r}"
        )
    return entry.to_api()


@router.post(
    "/deliveries/{delivery_id}/redeliver",
    status_code=202,
    summary="Send a recorded delivery again (same delivery id, attempts start at 1)",
    responses=problem_responses(401, 404, 409, 422, 503),
)
async def redeliver(webhook_id: str, delivery_id: str, state: Statuses) -> RedeliveryAccepted:
    entry = state.store.get(webhook_id, delivery_id)
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
    if not entry.events or entry.trigger is None:
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
        events=entry.events,
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


@router.post(
    "/ping",
    summary="POST a test event to the payload URL now and report the answer",
    description="Not a delivery: it is not recorded and does not count against the "
    "deactivation policy. The receiver sees the header X-Hookstream-Ping: true.",
    responses=problem_responses(401, 404, 422, 503),
)
async def ping_webhook(webhook_id: str, state: Webhooks) -> PingResult:
    return await ping(state, find_webhook(state, webhook_id))
