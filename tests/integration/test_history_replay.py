"""Replay from Kafka against the real broker, matcher, sender and a real receiver: events
published before a webhook existed are delivered after a replay, with the delivery ids a live
match gives them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from test_admin_support import TOKEN, AdminServer, with_admin

from hookstream.cli.main import main
from hookstream.client import HookstreamClient
from hookstream.records.ids import delivery_id_for
from hookstream.records.models import now_ms
from hookstream.settings import Settings
from support import Pipeline, Receiver, make_event, wait_until

pytestmark = pytest.mark.integration

API = "/api/v1"


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def test_replay_delivers_what_a_new_webhook_missed_with_live_delivery_ids(
    make_settings: Callable[..., Settings],
    pipeline_factory: Callable[[Settings], Pipeline],
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = with_admin(make_settings(retry_interval_s=1.0, max_attempts=2))
    pipeline = pipeline_factory(settings)
    pipeline.start_matcher()
    pipeline.start_sender()
    assert settings.kafka_bootstrap is not None
    kafka = HookstreamClient(settings.kafka_bootstrap, settings.topics)
    tag = uuid.uuid4().hex[:8]
    try:
        # Before the replay's start: matched by the webhook's trigger, but not replayed.
        older = make_event("items", "update", f"{tag}-old")
        kafka.publish_event(older)
        since = now_ms() + 1
        wait_until(lambda: now_ms() > since, 5, "the clock to pass the replay's start")
        missed = [make_event("items", "update", f"{tag}-{n}") for n in range(3)]
        for event in missed:
            kafka.publish_event(event)
        with AdminServer(settings) as server, server.client() as http:
            hook = _ok(
                http.post(
                    f"{API}/webhooks",
                    json={
                        "name": "Late",
                        "payload_url": receiver.url("/late"),
                        "triggers": [f"/items/{tag}-{n}" for n in ("old", 0, 1, 2)]
                        + [f"/items/{tag}-live"],
                    },
                ),
                201,
            )
            job = _ok(http.post(f"{API}/webhooks/{hook['id']}/replay", json={"since": since}), 202)
            assert job["job_id"].startswith("rpl_") and job["state"] in ("running", "done")

            def finished() -> dict[str, Any] | None:
                found: dict[str, Any] = _ok(http.get(f"{API}/replays/{job['job_id']}"))
                return found if found["state"] != "running" else None

            done = wait_until(finished, 60, "the replay")
            assert done["state"] == "done" and done["error"] is None
            assert done["queued"] == len(missed) and done["events_read"] == len(missed)

            expected = {delivery_id_for(event.event_id, hook["id"]) for event in missed}

            def delivered() -> set[str] | None:
                ids = {r.headers["webhook-id"] for r in receiver.on("/late")}
                return ids if expected <= ids else None

            ids = wait_until(delivered, 60, "the replayed deliveries")
            assert delivery_id_for(older.event_id, hook["id"]) not in ids

            # A live match of a new event gives its delivery the same kind of id.
            live = make_event("items", "update", f"{tag}-live")
            kafka.publish_event(live)
            live_id = delivery_id_for(live.event_id, hook["id"])
            wait_until(
                lambda: any(r.headers["webhook-id"] == live_id for r in receiver.on("/late")),
                60,
                "the live delivery",
            )

            # The same request names the same job; unknown ones and bad input are refused.
            again = _ok(
                http.post(f"{API}/webhooks/{hook['id']}/replay", json={"since": since}), 202
            )
            assert again["job_id"] == job["job_id"] and again["state"] == "done"
            assert http.get(f"{API}/replays/rpl_none").status_code == 404
            assert http.post(f"{API}/webhooks/nope/replay", json={"since": 0}).status_code == 404

            cli = ["--url", server.url, "--token", TOKEN]
            capsys.readouterr()
            assert main(["deliveries", "replay-status", job["job_id"], *cli]) == 0
            assert "3 deliveries queued" in capsys.readouterr().out
    finally:
        kafka.close()
