"""Routes of bulk recovery (redeliver every failed delivery of a webhook since a time) and of
replay from Kafka (match the event topics again for one webhook from a time)."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from hookstream.admin.deps import Statuses, Webhooks, find_webhook
from hookstream.admin.recovery_jobs import recovery_id
from hookstream.admin.replay_jobs import Replay, replay_id
from hookstream.admin.schemas import problem_responses
from hookstream.history.recoveries import Recovery

log = logging.getLogger(__name__)

router = APIRouter(tags=["deliveries"])


class RecoverRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: int = Field(
        ge=0,
        le=2**53,
        description="Epoch milliseconds: failed deliveries fired at or after this are sent again.",
    )


class RecoveryOut(BaseModel):
    """A bulk recovery and how far it got."""

    job_id: str
    webhook_id: str
    since: int
    created_at: int = Field(description="Deliveries fired before this are included.")
    state: Literal["running", "done", "failed"]
    total: int = Field(description="Failed deliveries the job found when it was created.")
    queued: int = Field(description="Queued as redeliveries so far.")
    skipped: int = Field(description="Whose events are no longer kept, so not sent again.")
    finished_at: int | None
    error: str | None = Field(description="Why it stopped; repeat the request to resume.")

    @classmethod
    def of(cls, job: Recovery) -> RecoveryOut:
        return cls(
            job_id=job.job_id,
            webhook_id=job.webhook_id,
            since=job.since,
            created_at=job.created_at,
            state=job.state,
            total=job.total,
            queued=job.queued,
            skipped=job.skipped,
            finished_at=job.finished_at,
            error=job.error,
        )


@router.post(
    "/webhooks/{webhook_id}/recover",
    status_code=202,
    summary="Send every failed delivery of the webhook since a time again, as one job",
    description="Returns the job at once; follow it at /recoveries/{job_id}. The same request "
    "(webhook and since) always names the same job: repeating it returns the job (and resumes "
    "it if it failed) rather than sending anything twice. Redeliveries go through the webhook's "
    "own delivery lane, so the receiver gets them at the pace of its ordinary deliveries.",
    responses=problem_responses(401, 404, 409, 422, 503),
)
async def recover(webhook_id: str, body: RecoverRequest, state: Statuses) -> RecoveryOut:
    config = find_webhook(state, webhook_id)
    if not config.active:
        raise HTTPException(
            status_code=409,
            detail=f"webhook {webhook_id!r} is inactive; activate it before recovering",
        )
    job_id = recovery_id(webhook_id, body.since)
    job = await asyncio.to_thread(
        state.store.recoveries.create, job_id, webhook_id, body.since, state.clock()
    )
    if job.state == "failed":
        await asyncio.to_thread(state.store.recoveries.resume, job_id)
    if job.state != "done":
        state.start_recovery(job_id)
    log.info(
        "recovery %s of webhook %s since %d: %d failed deliveries",
        job_id,
        webhook_id,
        body.since,
        job.total,
        extra={"webhook_id": webhook_id},
    )
    found = await asyncio.to_thread(state.store.recoveries.get, job_id)
    return RecoveryOut.of(found or job)


@router.get(
    "/recoveries/{job_id}",
    summary="Progress of a bulk recovery",
    responses=problem_responses(401, 404, 422, 503),
)
async def get_recovery(job_id: str, state: Statuses) -> RecoveryOut:
    found = await asyncio.to_thread(state.store.recoveries.get, job_id)
    if found is None:
        raise HTTPException(status_code=404, detail=f"no recovery job {job_id!r}")
    return RecoveryOut.of(found)


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: int = Field(
        ge=0,
        le=2**53,
        description="Epoch milliseconds: events written to the event topics at or after this "
        "are matched again (Kafka's record timestamps).",
    )


class ReplayOut(BaseModel):
    """A replay from Kafka and how far it got."""

    job_id: str
    webhook_id: str
    since: int
    started_at: int
    state: Literal["running", "done", "failed"]
    events_read: int = Field(description="Records read from the event topics so far.")
    undecodable: int = Field(description="Records that were not events (skipped).")
    queued: int = Field(description="Delivery jobs queued for the webhook.")
    finished_at: int | None
    error: str | None = Field(description="Why it stopped; repeat the request to start again.")

    @classmethod
    def of(cls, replay: Replay) -> ReplayOut:
        return cls.model_validate(replay, from_attributes=True)


@router.post(
    "/webhooks/{webhook_id}/replay",
    status_code=202,
    summary="Match the event topics again for this webhook from a time (replay from Kafka)",
    description="For a webhook created or reactivated after an outage: events still on the "
    "event topics (from the first record at or after `since`, up to the end when the replay "
    "starts) are matched against this webhook only, and its deliveries queued with the delivery "
    "ids a live match gives (event id + webhook id), so a receiver can drop copies of what it "
    "already got. Returns the job at once; follow it at /replays/{job_id}. While this admin "
    "process runs, the same request names the same job (a failed one starts again).",
    responses=problem_responses(401, 404, 409, 422, 503),
)
async def replay(webhook_id: str, body: ReplayRequest, state: Webhooks) -> ReplayOut:
    config = find_webhook(state, webhook_id)
    if not config.active:
        raise HTTPException(
            status_code=409,
            detail=f"webhook {webhook_id!r} is inactive; activate it before replaying",
        )
    job_id = replay_id(webhook_id, body.since)
    found = state.replays.get(job_id)
    if found is None or found.state == "failed":
        found = Replay(job_id, webhook_id, body.since, state.clock())
        state.start_replay(found, config)
        log.info(
            "replay %s for webhook %s from %d started",
            job_id,
            webhook_id,
            body.since,
            extra={"webhook_id": webhook_id},
        )
    return ReplayOut.of(found)


@router.get(
    "/replays/{job_id}",
    summary="Progress of a replay from Kafka",
    responses=problem_responses(401, 404, 422, 503),
)
async def get_replay(job_id: str, state: Webhooks) -> ReplayOut:
    found = state.replays.get(job_id)
    if found is None:
        raise HTTPException(
            status_code=404,
            detail=f"no replay {job_id!r} in this admin process (replays are kept in memory "
            f"until it restarts; repeat the replay request)",
        )
    return ReplayOut.of(found)
