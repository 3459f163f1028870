"""Bulk recovery jobs: redeliver every failed delivery of a webhook since a time.

A job is a row of the history database (``hs_recoveries``), so its id and progress outlive the
admin process: it works through the failed deliveries oldest first, queues each as a redelivery
on the deliveries topic (keyed by webhook, so the sender's per-webhook lane paces them like any
other delivery of that webhook and the receiver is not flooded), and records how far it got after
every batch. An admin restart resumes running jobs from there.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable

from hookstream.history.store import HistoryStore
from hookstream.records.codec import encode
from hookstream.records.models import DeliveryJob

log = logging.getLogger(__name__)

#: Deliveries read, queued and recorded per step of a job.
BATCH = 200

Publish = Callable[[list[tuple[bytes, bytes]]], Awaitable[None]]
Clock = Callable[[], int]


def recovery_id(webhook_id: str, since: int) -> str:
    """The same request (webhook, since) always names the same job: repeating it is harmless."""
    digest = hashlib.sha256(f"{webhook_id}\0{since}".encode()).hexdigest()
    return f"rcv_{digest[:24]}"


async def run_recovery(store: HistoryStore, job_id: str, publish: Publish, clock: Clock) -> None:
    """Queue every delivery of job ``job_id`` not queued yet; mark it done, or failed with the
    reason (a repeated request resumes it)."""
    try:
        while True:
            job = await asyncio.to_thread(store.recoveries.get, job_id)
            if job is None or job.state != "running":
                return
            rows = await asyncio.to_thread(store.recoveries.batch, job, clock(), BATCH)
            if not rows:
                await asyncio.to_thread(store.recoveries.finish, job_id, clock())
                log.info(
                    "recovery %s of webhook %s done: %d queued, %d skipped",
                    job_id,
                    job.webhook_id,
                    job.queued,
                    job.skipped,
                    extra={"webhook_id": job.webhook_id},
                )
                return
            records: list[tuple[bytes, bytes]] = []
            now = clock()
            for row in rows:
                events = row.events()
                if not events or row.trigger is None:
                    continue  # its job is no longer on the deliveries topic: counted as skipped
                redelivery = DeliveryJob(
                    delivery_id=row.delivery_id,
                    webhook_id=row.webhook_id,
                    trigger=row.trigger,
                    events=events,
                    attempt=1,
                    due_at=now,
                    triggered_at=row.triggered_at or now,
                    redelivery=True,
                )
                records.append((row.webhook_id.encode(), encode(redelivery)))
            await publish(records)
            last = rows[-1]
            await asyncio.to_thread(
                store.recoveries.advance,
                job_id,
                (last.fired_at(), last.delivery_id),
                len(records),
                len(rows) - len(records),
            )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.error("recovery %s stopped: %s; repeat the request to resume it", job_id, exc)
        await asyncio.to_thread(store.recoveries.finish, job_id, clock(), str(exc) or repr(exc))
