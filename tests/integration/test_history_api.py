"""Searching the delivery history through the admin API and the CLI, on both backends: the
cross-webhook list with its filters, cursor paging, one delivery by id, `deliveries show`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from kafka import KafkaProducer
from test_admin_support import TOKEN, AdminServer, with_admin

from history_support import HistoryDatabase
from hookstream.cli.main import main
from hookstream.records.codec import encode
from hookstream.records.models import DeliveryJob, DeliveryStatus, DomainEvent, Outcome, now_ms
from hookstream.settings import Settings

pytestmark = pytest.mark.integration

API = "/api/v1"
PAYLOAD = json.dumps({"event": {"id": 7}, "ok": True})


def _publish(settings: Settings, count: int) -> int:
    """``count`` deliveries to webhooks a and b (every third one failed with 503); fired at."""
    fired = now_ms()
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        for n in range(count):
            webhook = "a" if n % 2 else "b"
            event = DomainEvent(
                event_id=f"e{n}", source="items", operation="add", occurred_at=fired
            )
            job = DeliveryJob(
                delivery_id=f"d{n:03d}",
                webhook_id=webhook,
                trigger=f"/items/{n % 2}",
                events=[event],
                due_at=fired,
                triggered_at=fired + n,
            )
            failed = n % 3 == 0
            status = DeliveryStatus(
                delivery_id=job.delivery_id,
                webhook_id=webhook,
                webhook_name=webhook.upper(),
                event_ids=[event.event_id],
                attempt=1,
                attempted_at=fired + n + 1,
                outcome=Outcome.FAILED if failed else Outcome.DELIVERED,
                final=True,
                http_status=503 if failed else 200,
                response_excerpt="busy" if failed else "thanks",
                payload=PAYLOAD,
            )
            producer.send(settings.topics.deliveries, key=webhook.encode(), value=encode(job))
            producer.send(settings.topics.status, key=webhook.encode(), value=encode(status))
        producer.flush(timeout=30)
    finally:
        producer.close()
    return fired


def test_search_page_and_show_deliveries_of_every_webhook(
    make_settings: Callable[[], Settings],
    history_db: HistoryDatabase,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = with_admin(make_settings())
    fired = _publish(settings, 25)
    with AdminServer(settings, history=history_db.open()) as server, server.client() as http:

        def listed(**params: Any) -> dict[str, Any]:
            response = http.get(f"{API}/deliveries", params=params)
            assert response.status_code == 200, response.text
            page: dict[str, Any] = response.json()
            return page

        first = listed(num=10)
        assert first["total"] == 25 and first["next_start"] == 11
        seen = [d["delivery_id"] for d in first["deliveries"]]
        cursor = first["next_cursor"]
        while cursor:
            page = listed(num=10, cursor=cursor)
            seen += [d["delivery_id"] for d in page["deliveries"]]
            cursor = page["next_cursor"]
        assert seen == [f"d{n:03d}" for n in reversed(range(25))]

        failed = listed(outcome="failed", num=100)
        assert [d["delivery_id"] for d in failed["deliveries"]] == [
            f"d{n:03d}" for n in reversed(range(0, 25, 3))
        ]
        assert listed(http_status=503, num=100)["total"] == 9
        assert [d["delivery_id"] for d in listed(event_id="e7")["deliveries"]] == ["d007"]
        assert listed(webhook_id="a", trigger="/items/1", num=100)["total"] == 12
        assert listed(since=fired + 20, until=fired + 22)["total"] == 2
        refused = http.get(f"{API}/deliveries", params={"cursor": "nonsense"})
        assert refused.status_code == 422 and "next_cursor" in refused.text
        refused = http.get(f"{API}/deliveries", params={"cursor": cursor or "x", "start": 3})
        assert refused.status_code == 422

        one = http.get(f"{API}/deliveries/d007").json()
        assert one["webhook_id"] == "a" and one["outcome"] == "delivered"
        assert one["attempts"][0]["response_excerpt"] == "thanks"
        assert one["payload"] == PAYLOAD and one["events"][0]["event_id"] == "e7"
        assert http.get(f"{API}/deliveries/no-such").status_code == 404

        assert main(["deliveries", "show", "d006", "--url", server.url, "--token", TOKEN]) == 0
        shown = capsys.readouterr().out
        assert "outcome    failed" in shown and "busy" in shown
        assert '"ok": true' in shown  # the payload, pretty-printed
