"""An administrator sees a dead receiver's open circuit: in the admin API and in the CLI.

Processes as deployed (matcher, sender, `hookstream admin`), a webhook whose receiver refuses
connections: after ``circuit_failures`` failed attempts its circuit opens, later jobs are held
(status records with outcome ``held``, not failures), and the webhook shows the circuit open.
"""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_admin_cli import TOKEN, AdminProcess, _run

from hookstream.client import HookstreamClient
from hookstream.kafka.topics import create_topics
from hookstream.records.models import WebhookConfig
from support import (
    Pipeline,
    make_event,
    register_and_wait,
    settings_env,
    unique_settings,
    wait_until,
)

pytestmark = pytest.mark.integration


def _refused_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def dead_receiver_session(
    kafka_bootstrap: str, tmp_path: Path
) -> Iterator[tuple[dict[str, str], AdminProcess, HookstreamClient]]:
    settings = unique_settings(
        kafka_bootstrap,
        circuit_failures=2,
        circuit_open_s=60,
        retry_interval_s=1,
        max_attempts=5,
    )
    create_topics(kafka_bootstrap, settings.topics)
    pipeline = Pipeline(settings, tmp_path)
    client = HookstreamClient(kafka_bootstrap, settings.topics)
    admin: AdminProcess | None = None
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        admin = AdminProcess(settings, tmp_path)
        admin.wait_ready()
        env = settings_env(settings)
        env.update({"HOOKSTREAM_ADMIN__URL": admin.url, "HOOKSTREAM_ADMIN__TOKEN": TOKEN})
        yield env, admin, client
    finally:
        if admin is not None:
            admin.stop()
        pipeline.stop()
        client.close()


def test_an_open_circuit_shows_in_the_api_and_the_cli(
    dead_receiver_session: tuple[dict[str, str], AdminProcess, HookstreamClient],
) -> None:
    env, admin, client = dead_receiver_session
    resource = f"i{uuid.uuid4().hex[:6]}"
    dead = WebhookConfig(
        webhook_id=f"dead-{resource}",
        name="Dead receiver",
        payload_url=f"http://127.0.0.1:{_refused_port()}/hook",
        triggers=[f"/items/{resource}"],
    )
    register_and_wait(client, dead)
    http = httpx.Client(
        base_url=admin.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    )
    try:
        assert http.get(f"/api/v1/webhooks/{dead.webhook_id}").json()["circuit"] is None
        for number in range(6):
            client.publish_event(make_event("items", "update", resource, n=number))

        def circuit() -> dict[str, Any] | None:
            found: dict[str, Any] | None = http.get(f"/api/v1/webhooks/{dead.webhook_id}").json()[
                "circuit"
            ]
            return found

        shown = wait_until(circuit, 60, "the webhook's circuit to show as open")
        assert shown["state"] == "open"
        assert shown["next_probe_at"] > shown["held_at"]
        assert "circuit is open" in shown["reason"]
        listed = http.get("/api/v1/webhooks", params={"num": 100}).json()["webhooks"]
        assert [hook["circuit"] is not None for hook in listed] == [True]
        # Held jobs are deliveries waiting, with their reason: not failed attempts.
        deliveries = http.get(f"/api/v1/webhooks/{dead.webhook_id}/deliveries").json()
        held = [
            attempt
            for delivery in deliveries["deliveries"]
            for attempt in delivery["attempts"]
            if attempt["outcome"] == "held"
        ]
        assert held and all(not attempt["final"] for attempt in held)
    finally:
        http.close()

    table = _run(env, "webhooks", "list")
    assert table.returncode == 0, table.stderr
    assert re.search(
        rf"^{dead.webhook_id}\s+Dead receiver\s+yes, circuit open\s", table.stdout, re.M
    )
    detail = _run(env, "webhooks", "show", dead.webhook_id)
    assert detail.returncode == 0, detail.stderr
    assert "circuit open, deliveries held since" in detail.stdout
