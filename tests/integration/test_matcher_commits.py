"""The matcher commits its place in the event topics while it runs (not only when it stops):
a restarted matcher must not match everything since its last start again, and consumer lag,
which operators alert on, must fall as events are matched."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka import KafkaAdminClient

from hookstream.client import HookstreamClient
from hookstream.settings import Settings
from support import Pipeline, make_event, wait_until

pytestmark = pytest.mark.integration

EVENTS = 30


def test_the_matcher_commits_event_offsets_while_running(
    make_settings: Callable[..., Settings], pipeline_factory: Callable[[Settings], Pipeline]
) -> None:
    settings = make_settings()
    bootstrap = settings.kafka_bootstrap
    assert bootstrap is not None
    pipeline = pipeline_factory(settings)
    matcher = pipeline.start_matcher()
    with HookstreamClient(bootstrap, settings.topics) as client:
        for number in range(EVENTS):
            client.publish_event(make_event("items", "update", f"r{number}"))
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    events_topic = settings.topics.events[0]

    def committed() -> int | None:
        groups = admin.list_group_offsets(f"{settings.app_id}-matcher")
        offsets = groups.get(f"{settings.app_id}-matcher", {})
        total = sum(meta.offset for tp, meta in offsets.items() if tp.topic == events_topic)
        return total if total >= EVENTS else None

    try:
        assert wait_until(committed, 60, f"the matcher to commit past {EVENTS} events") == EVENTS
        assert matcher.process.poll() is None, "committed while running, not on the way out"
    finally:
        admin.close()
