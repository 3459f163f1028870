"""The delivery history at size: ingest status records into each backend, then query it.

Measures records/s of ``HistoryStore.ingest`` (the consumer's write path after decoding:
batches of 2,000 as it reads them, one transaction each; building the records is not timed), the
process's peak RSS at the end (the admin keeps nothing per delivery in memory, so it must stay
flat), and the p99 latency of the admin's searches at that size (a first page of 20 with its
capped ``total``, and a cursor page). PostgreSQL runs on a throwaway server from
scripts/postgres.sh.

    python bench/history_store.py --records 1000000 [--backend sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from history_support import postgres_server  # noqa: E402
from hookstream.history.config import postgres_store, sqlite_store  # noqa: E402
from hookstream.history.query import DeliveryQuery
from hookstream.history.schemas import DeliveryOutcome
from hookstream.history.store import HistoryStore
from hookstream.records.models import DeliveryStatus, Outcome  # noqa: E402

T0 = 1_700_000_000_000
WEBHOOKS = 1000
BATCH = 2000
PAYLOAD = json.dumps({"event": {"id": 1, "name": "x" * 400}, "webhook": {"id": 1}})


def _status(n: int) -> DeliveryStatus:
    failed = n % 10 == 0
    # Built without validation: the codec hands the consumer models it has already checked.
    return DeliveryStatus.model_construct(
        delivery_id=f"d{n:09d}",
        webhook_id=f"w{n % WEBHOOKS:04d}",
        webhook_name="bench",
        event_ids=[f"e{n}"],
        trigger=f"/items/{n % 7}",
        attempt=1,
        max_attempts=3,
        attempted_at=T0 + n,
        outcome=Outcome.FAILED if failed else Outcome.DELIVERED,
        final=True,
        http_status=503 if failed else 200,
        response_excerpt="ok",
        payload=PAYLOAD,
    )


def ingest(store: HistoryStore, records: int) -> float:
    """Records per second."""
    spent = 0.0
    for first in range(0, records, BATCH):
        batch = [_status(n) for n in range(first, min(first + BATCH, records))]
        started = time.perf_counter()
        store.ingest(batch, {("bench.status", 0): first + len(batch)})
        spent += time.perf_counter() - started
    return records / spent


def query_p99(store: HistoryStore, records: int, runs: int = 200) -> dict[str, float]:
    """p99 in ms of each search the admin serves, a page of 20."""
    now = T0 + records
    searches: dict[str, Callable[[int], DeliveryQuery]] = {
        "webhook": lambda i: DeliveryQuery(webhook_id=f"w{i % WEBHOOKS:04d}"),
        "webhook+failed": lambda i: DeliveryQuery(
            webhook_id=f"w{i % WEBHOOKS:04d}", outcome=DeliveryOutcome.FAILED
        ),
        "all": lambda i: DeliveryQuery(),
        "http_status": lambda i: DeliveryQuery(http_status=503),
        "time range": lambda i: DeliveryQuery(since=T0 + i * 1000, until=T0 + i * 1000 + 5000),
        "event": lambda i: DeliveryQuery(event_id=f"e{(i * 7919) % records}"),
        "trigger": lambda i: DeliveryQuery(trigger=f"/items/{i % 7}"),
    }
    result = {}
    for name, make in searches.items():
        times, cursor_times = [], []
        for i in range(runs):
            started = time.perf_counter()
            first = store.search(make(i), now, limit=20)
            times.append((time.perf_counter() - started) * 1000)
            if first.next_cursor is not None:
                started = time.perf_counter()
                store.search(make(i), now, limit=20, cursor=first.next_cursor)
                cursor_times.append((time.perf_counter() - started) * 1000)
        result[name] = statistics.quantiles(times, n=100)[98]
        if len(cursor_times) > 1:
            result[f"{name} (cursor page)"] = statistics.quantiles(cursor_times, n=100)[98]
    return result


def run(name: str, store: HistoryStore, records: int) -> dict[str, object]:
    rate = ingest(store, records)
    p99 = query_p99(store, records)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    store.close()
    return {
        "backend": name,
        "records": records,
        "records_per_s": round(rate),
        "peak_rss_mb": round(rss_mb),
        "query_p99_ms": {search: round(ms, 1) for search, ms in p99.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    day = 24 * 3600
    # Retention long enough that nothing expires during the run.
    keep = 3650 * day
    with tempfile.TemporaryDirectory() as workdir:
        if args.backend in ("sqlite", "both"):
            store = sqlite_store(Path(workdir) / "history.sqlite3", keep, keep)
            sys.stdout.write(json.dumps(run("sqlite", store, args.records)) + "\n")
        if args.backend in ("postgres", "both"):
            with postgres_server(Path(workdir) / "pg") as dsn:
                store = postgres_store(dsn, keep, keep)
                sys.stdout.write(json.dumps(run("postgres", store, args.records)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
