"""The history store's recovery bookkeeping and its bounded counting, on both backends."""

from __future__ import annotations

import pytest
from test_history_store import DELIVERIES, STATUS, T0, _job, _status

from history_support import HistoryDatabase
from hookstream.history import store as store_module
from hookstream.history.query import DeliveryQuery
from hookstream.records.models import DeliveryJob, DeliveryStatus, Outcome

pytestmark = pytest.mark.integration


def _fired(count: int, failed_every: int = 2) -> list[DeliveryJob | DeliveryStatus]:
    records: list[DeliveryJob | DeliveryStatus] = []
    for n in range(count):
        failed = n % failed_every == 0
        records.append(_job(f"d{n:02d}", at=T0 + n))
        records.append(
            _status(f"d{n:02d}", T0 + n + 1, Outcome.FAILED if failed else Outcome.DELIVERED, True)
        )
    return records


def test_a_recovery_walks_the_failed_deliveries_since_a_time_once(
    history_db: HistoryDatabase,
) -> None:
    store = history_db.open()
    store.ingest(_fired(20), {(DELIVERIES, 0): 20, (STATUS, 0): 20})
    now = T0 + 1000
    job = store.recoveries.create("rcv_1", "w", T0 + 4, now)
    # Failed (even) deliveries fired at T0+4 or later: d04, d06, ..., d18.
    assert (job.state, job.total, job.queued) == ("running", 8, 0)
    assert store.recoveries.create("rcv_1", "w", T0 + 4, now + 5) == job  # the same job
    walked: list[str] = []
    while rows := store.recoveries.batch(job, now, 3):
        walked += [row.delivery_id for row in rows]
        store.recoveries.advance(
            job.job_id, (rows[-1].fired_at(), rows[-1].delivery_id), len(rows), 0
        )
        found = store.recoveries.get(job.job_id)
        assert found is not None
        job = found
    assert walked == [f"d{n:02d}" for n in range(4, 20, 2)]
    assert job.queued == 8 and store.recoveries.running() == ["rcv_1"]
    store.recoveries.finish(job.job_id, now, "broker gone")
    failed = store.recoveries.get(job.job_id)
    assert failed is not None and failed.state == "failed" and failed.error == "broker gone"
    store.recoveries.resume(job.job_id)
    assert store.recoveries.running() == ["rcv_1"]
    store.recoveries.finish(job.job_id, now)
    done = store.recoveries.get(job.job_id)
    assert done is not None and (done.state, done.error) == ("done", None)
    assert store.recoveries.get("rcv_none") is None


def test_total_is_counted_up_to_the_cap_and_not_on_cursor_pages(
    history_db: HistoryDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "COUNT_CAP", 7)
    store = history_db.open()
    store.ingest(_fired(20), {(DELIVERIES, 0): 20, (STATUS, 0): 20})
    first = store.search(DeliveryQuery(webhook_id="w"), T0 + 1000, limit=5)
    assert first.total == 7 and first.next_cursor is not None  # at least 7
    few = store.search(DeliveryQuery(since=T0 + 17), T0 + 1000, limit=5)
    assert few.total == 3  # under the cap: exact
    second = store.search(DeliveryQuery(), T0 + 1000, limit=5, cursor=first.next_cursor)
    assert second.total is None and len(second.deliveries) == 5
