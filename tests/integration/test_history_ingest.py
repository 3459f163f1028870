"""The history's consumer against the real broker, on both backends: it resumes from the offsets
stored with the data (no gap, nothing twice) and skips what it cannot decode."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from kafka import KafkaProducer

from history_support import HistoryDatabase
from hookstream.history.ingest import HistoryIngest
from hookstream.history.query import DeliveryQuery
from hookstream.history.schemas import DeliveryOutcome
from hookstream.history.store import HistoryStore
from hookstream.records.codec import encode
from hookstream.records.models import DeliveryJob, DeliveryStatus, DomainEvent, Outcome, now_ms
from hookstream.settings import Settings

pytestmark = pytest.mark.integration


def _records(first: int, count: int) -> list[tuple[str, DeliveryJob | DeliveryStatus]]:
    """Jobs and final statuses of deliveries ``first`` .. ``first + count - 1``."""
    now = now_ms()
    out: list[tuple[str, DeliveryJob | DeliveryStatus]] = []
    for n in range(first, first + count):
        event = DomainEvent(event_id=f"e{n}", source="items", operation="add", occurred_at=now)
        out.append(
            (
                "deliveries",
                DeliveryJob(
                    delivery_id=f"d{n}",
                    webhook_id="w",
                    trigger="/items",
                    events=[event],
                    due_at=now,
                    triggered_at=now + n,
                ),
            )
        )
        out.append(
            (
                "status",
                DeliveryStatus(
                    delivery_id=f"d{n}",
                    webhook_id="w",
                    webhook_name="W",
                    event_ids=[f"e{n}"],
                    attempt=1,
                    attempted_at=now + n,
                    outcome=Outcome.DELIVERED,
                    final=True,
                    http_status=200,
                ),
            )
        )
    return out


def _publish(settings: Settings, records: list[tuple[str, DeliveryJob | DeliveryStatus]]) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        for topic, record in records:
            name = settings.topics.deliveries if topic == "deliveries" else settings.topics.status
            producer.send(name, key=record.webhook_id.encode(), value=encode(record))
        producer.send(settings.topics.status, key=b"w", value=b"\x00not avro")
        producer.flush(timeout=30)
    finally:
        producer.close()


async def _ingest(settings: Settings, store: HistoryStore, until: Callable[[], bool]) -> int:
    """Run an ingest until it is ready and ``until()`` holds; how many records it skipped."""
    ingest = HistoryIngest(
        store,
        settings.kafka_bootstrap or "",
        settings.topics.deliveries,
        settings.topics.status,
        f"{settings.app_id}-history-test",
    )
    await ingest.start()
    try:
        await asyncio.wait_for(ingest.ready.wait(), 60)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not until():
            assert ingest.failure is None, ingest.failure
            assert loop.time() < deadline, "the ingest did not apply every record within 60 s"
            await asyncio.sleep(0.05)
        return ingest.undecodable
    finally:
        await ingest.stop()


def test_a_restarted_ingest_resumes_where_the_stored_data_ends(
    make_settings: Callable[[], Settings], history_db: HistoryDatabase
) -> None:
    settings = make_settings()
    _publish(settings, _records(0, 30))
    store = history_db.open()
    skipped = asyncio.run(_ingest(settings, store, lambda: store.count() == 30))
    assert skipped == 1  # the undecodable record: counted, logged, the rest goes on
    first_offsets = store.stored_offsets()
    assert sum(first_offsets.values()) == 61  # 30 jobs + 30 statuses + 1 undecodable
    store.close()

    # A restart reads only what came after: nothing is applied twice, nothing is missed.
    _publish(settings, _records(30, 20))
    reopened = history_db.open()
    asyncio.run(_ingest(settings, reopened, lambda: reopened.count() == 50))
    assert sum(reopened.stored_offsets().values()) == 61 + 41
    found = reopened.search(DeliveryQuery(webhook_id="w"), now_ms(), limit=100)
    assert found.total == 50
    assert {len(d.attempts) for d in found.deliveries} == {1}
    assert {d.outcome for d in found.deliveries} == {DeliveryOutcome.DELIVERED}
