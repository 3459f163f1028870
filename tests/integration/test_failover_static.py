"""Fail-over with static group membership: a service killed with SIGKILL and restarted under the
same group instance id (as a pod's container restarts in its pod) takes its partitions back, and
no (event, webhook) pair is lost. How fast is measured by bench/failover.py, not here."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from test_crash_recovery import _events, _received_ids

from hookstream.client import HookstreamClient
from hookstream.records.ids import delivery_id_for
from hookstream.records.models import WebhookConfig
from hookstream.settings import Settings
from support import Behaviour, Pipeline, Receiver, register_and_wait, wait_until

pytestmark = pytest.mark.integration

WEBHOOKS = 3


@pytest.mark.parametrize("victim", ["sender", "matcher"])
def test_killed_static_member_restarted_under_its_id_loses_no_pair(
    victim: str,
    make_settings: Callable[..., Settings],
    pipeline_factory: Callable[[Settings], Pipeline],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    """Events published before, during and after the outage all reach every webhook."""
    settings: Settings = make_settings(concurrency=4)
    # Each service in its own group under its own stable name, as two pods would be.
    matchers: Pipeline = pipeline_factory(
        settings.model_copy(update={"group_instance_id": "matcher-0"})
    )
    senders: Pipeline = pipeline_factory(
        settings.model_copy(update={"group_instance_id": "sender-0"})
    )
    with HookstreamClient(settings.kafka_bootstrap or "", settings.topics) as client:
        matchers.start_matcher()
        senders.start_sender()
        tag = uuid.uuid4().hex[:6]
        hooks = [
            WebhookConfig(
                webhook_id=f"static{n}-{tag}",
                name=f"Static {n}",
                payload_url=receiver.url(f"/static{n}", Behaviour(delay_s=0.02)),
                triggers=["/items/update"],
            )
            for n in range(WEBHOOKS)
        ]
        register_and_wait(client, *hooks)
        events = _events("s")
        before, during, after = events[:50], events[50:100], events[100:]

        def delivered() -> int:
            return sum(len(_received_ids(receiver, f"/static{n}")) for n in range(WEBHOOKS))

        for event in before:
            client.publish_event(event)
        wait_until(lambda: delivered() >= 20, 60, "some deliveries before the crash")
        service = senders.sender if victim == "sender" else matchers.matcher
        assert service is not None
        service.stop(sig=signal.SIGKILL)
        assert delivered() < len(before) * WEBHOOKS, "the crash came too late to prove anything"
        for event in during:
            client.publish_event(event)
        if victim == "sender":
            senders.start_sender()
        else:
            matchers.start_matcher()
        for event in after:
            client.publish_event(event)

        wanted = {
            n: {delivery_id_for(event.event_id, hook.webhook_id) for event in events}
            for n, hook in enumerate(hooks)
        }

        def missing() -> int:
            return sum(
                len(wanted[n] - _received_ids(receiver, f"/static{n}")) for n in range(WEBHOOKS)
            )

        wait_until(
            lambda: missing() == 0, 120, f"all {len(events) * WEBHOOKS} (event, webhook) pairs"
        )
        assert missing() == 0
        assert {n: _received_ids(receiver, f"/static{n}") for n in range(WEBHOOKS)} == wanted
