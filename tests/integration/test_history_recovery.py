"""Bulk recovery on both history backends, against the real broker, matcher, sender and a real
receiver: every failed delivery of a webhook since a time is sent again as one job."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from test_admin_support import AdminServer, with_admin

from history_support import HistoryDatabase
from hookstream.cli.main import main
from hookstream.client import HookstreamClient
from hookstream.settings import Settings
from support import Behaviour, Pipeline, Receiver, make_event, wait_until

pytestmark = pytest.mark.integration

API = "/api/v1"


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def test_recover_resends_every_failed_delivery_once_as_one_job(
    make_settings: Callable[..., Settings],
    pipeline_factory: Callable[[Settings], Pipeline],
    receiver: Receiver,
    history_db: HistoryDatabase,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = with_admin(make_settings(retry_interval_s=1.0, max_attempts=1))
    pipeline = pipeline_factory(settings)
    pipeline.start_matcher()
    pipeline.start_sender()
    assert settings.kafka_bootstrap is not None
    kafka = HookstreamClient(settings.kafka_bootstrap, settings.topics)
    receiver.behaviours["/down"] = Behaviour(status=503)
    tag = uuid.uuid4().hex[:8]
    with AdminServer(settings, history=history_db.open()) as server, server.client() as http:
        hook = _ok(
            http.post(
                f"{API}/webhooks",
                json={
                    "name": "Outage",
                    "payload_url": receiver.url("/down"),
                    "triggers": [f"/items/{tag}{n}" for n in range(3)],
                },
            ),
            201,
        )
        base = f"{API}/webhooks/{hook['id']}"
        events = [make_event("items", "update", f"{tag}{n}") for n in range(3)]
        for event in events:
            kafka.publish_event(event)

        def failed() -> list[dict[str, Any]] | None:
            page = _ok(http.get(f"{base}/deliveries", params={"outcome": "failed", "num": 100}))
            found: list[dict[str, Any]] = page["deliveries"]
            return found if len(found) == len(events) else None

        lost = wait_until(failed, 60, "the deliveries to fail")
        since = min(entry["triggered_at"] for entry in lost)
        receiver.behaviours["/down"] = Behaviour(status=200)

        job = _ok(http.post(f"{base}/recover", json={"since": since}), 202)
        assert job["job_id"].startswith("rcv_") and job["total"] == len(events)
        done = wait_until(
            lambda: (
                j
                if (j := _ok(http.get(f"{API}/recoveries/{job['job_id']}")))["state"] == "done"
                else None
            ),
            60,
            "the recovery job",
        )
        assert done["queued"] == len(events) and done["skipped"] == 0 and done["error"] is None

        # Each failed delivery arrives once more, under its own delivery id.
        def resent() -> list[str] | None:
            ids = [r.headers["webhook-id"] for r in receiver.on("/down")]
            return ids if len(ids) >= 2 * len(events) else None

        ids = wait_until(resent, 60, "the redeliveries")
        expected = sorted(entry["delivery_id"] for entry in lost)
        assert sorted(ids[: len(events)]) == sorted(ids[len(events) :]) == expected

        def delivered() -> bool:
            page = _ok(http.get(f"{base}/deliveries", params={"outcome": "delivered"}))
            return bool(page["total"] == len(events))

        wait_until(delivered, 60, "the history to show the redeliveries delivered")

        # The same request names the same job and sends nothing again; others are refused.
        again = _ok(http.post(f"{base}/recover", json={"since": since}), 202)
        assert again["job_id"] == job["job_id"] and again["state"] == "done"
        assert again["queued"] == len(events) and again["created_at"] == job["created_at"]
        assert http.get(f"{API}/recoveries/rcv_none").status_code == 404
        assert http.post(f"{API}/webhooks/nope/recover", json={"since": 0}).status_code == 404
        assert http.post(f"{base}/recover", json={"since": -1}).status_code == 422

        # The CLI starts (or finds) the job by the same request and shows its progress.
        capsys.readouterr()
        assert (
            main(["deliveries", "recover", hook["id"], "--since", str(since), *_cli(server)]) == 0
        )
        out = capsys.readouterr().out
        assert job["job_id"] in out and "done" in out
        assert main(["deliveries", "recover-status", job["job_id"], "--json", *_cli(server)]) == 0
        assert '"queued": 3' in capsys.readouterr().out
    kafka.close()


def _cli(server: AdminServer) -> list[str]:
    from test_admin_support import TOKEN

    return ["--url", server.url, "--token", TOKEN]
