"""A hot webhook can use several senders: two sender processes share one busy webhook's load."""

from __future__ import annotations

import re
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from hookstream.client import HookstreamClient
from hookstream.records.ids import delivery_id_for
from hookstream.records.models import WebhookConfig
from hookstream.settings import Settings
from support import (
    Behaviour,
    Pipeline,
    Receiver,
    ServiceProcess,
    make_event,
    register_and_wait,
    wait_until,
)

pytestmark = pytest.mark.integration

EVENTS = 300
ANSWER_S = 0.1
PER_WEBHOOK = 4


def _delivered(sender: ServiceProcess) -> float:
    """Deliveries this sender made, from its /metrics (its ops address is in its log)."""
    found = re.search(r"ops endpoints on (http://[0-9.]+:[0-9]+)", sender.log_text())
    assert found, "the sender did not log its ops address"
    with urllib.request.urlopen(found.group(1) + "/metrics", timeout=10) as response:  # noqa: S310
        text = response.read().decode()
    series = 'hookstream_delivery_attempts_total{outcome="delivered"} '
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(series)]
    return values[0] if values else 0.0


def _peak_overlap(arrivals: list[float], answer_s: float) -> int:
    """Most requests being answered at one moment, from their arrival times."""
    edges = sorted([(at, 1) for at in arrivals] + [(at + answer_s, -1) for at in arrivals])
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def test_two_senders_share_one_busy_webhook(
    make_settings: Callable[..., Settings],
    pipeline_factory: Callable[[Settings], Pipeline],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    settings: Settings = make_settings(per_webhook_concurrency=PER_WEBHOOK)
    pipeline: Pipeline = pipeline_factory(settings)
    client = HookstreamClient(settings.kafka_bootstrap or "", settings.topics)
    senders: list[ServiceProcess] = []
    try:
        pipeline.start_matcher()
        for _ in range(2):
            sender = ServiceProcess("sender", settings, tmp_path)
            senders.append(sender)
            sender.wait_for_log("sender ready")
        first, second = senders

        def both_assigned() -> bool:
            # The first sender was assigned everything, then its share after the second joined.
            return (
                first.log_text().count("sender assigned") >= 2
                and f"{settings.topics.deliveries}[" in second.log_text()
            )

        wait_until(both_assigned, 90, "both senders to own delivery partitions")
        busy = WebhookConfig(
            webhook_id=f"busy-{uuid.uuid4().hex[:8]}",
            name="Busy",
            payload_url=receiver.url("/busy", Behaviour(delay_s=ANSWER_S)),
            triggers=["/items/update"],
        )
        register_and_wait(client, busy)
        events = [make_event("items", "update", f"i{n}") for n in range(EVENTS)]
        for event in events:
            client.publish_event(event)
        wanted = {delivery_id_for(event.event_id, busy.webhook_id) for event in events}
        wait_until(
            lambda: {r.headers["webhook-id"] for r in receiver.on("/busy")} >= wanted,
            180,
            "every delivery to the busy webhook",
        )
        wait_until(
            lambda: sum(_delivered(s) for s in senders) >= EVENTS, 30, "both senders' metrics"
        )
        shares = [_delivered(sender) / EVENTS for sender in senders]
        assert all(share >= 0.25 for share in shares), f"shares of the deliveries: {shares}"
        # Both carried it at the same time: more requests in flight to the one webhook than
        # one sender's per-webhook limit allows.
        arrivals = [request.at for request in receiver.on("/busy")]
        assert _peak_overlap(arrivals, ANSWER_S) > PER_WEBHOOK
    finally:
        client.close()
        for sender in senders:
            sender.stop()
