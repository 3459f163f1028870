"""Broker faults on a real three-broker cluster while a real matcher and sender deliver: every
(event, webhook) pair ends delivered, finally failed, or skipped by policy, and nothing else."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from cluster.cluster_support import Ledger, busiest_leader, wait_fully_replicated
from hookstream.client import HookstreamClient
from hookstream.localkafka.cluster import LocalCluster, live_broker_ids, partition_states
from hookstream.records.models import DeactivationPolicy, WebhookConfig
from hookstream.settings import Settings
from support import (
    Behaviour,
    Pipeline,
    Receiver,
    StatusReader,
    make_event,
    register_and_wait,
    wait_until,
)

pytestmark = [
    pytest.mark.integration,
    # kafka-python leaks a socket per refused connection; the test's own readers and producer
    # make them while a broker is down, and they surface as unraisable ResourceWarnings.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

#: Generous: two cores are shared by three brokers, the services and the receiver.
ACCOUNTED_S = 150.0


def _webhooks(receiver: Receiver) -> list[WebhookConfig]:
    """Two that answer 200 and one that always answers 500 (never deactivated, so each of its
    pairs ends as a final failure)."""
    tag = uuid.uuid4().hex[:6]
    hooks = [
        WebhookConfig(
            webhook_id=f"ok{n}-{tag}",
            name=f"Ok {n}",
            payload_url=receiver.url(f"/ok{n}-{tag}", Behaviour(delay_s=0.01)),
            triggers=["/items/update"],
        )
        for n in (1, 2)
    ]
    hooks.append(
        WebhookConfig(
            webhook_id=f"down-{tag}",
            name="Down",
            payload_url=receiver.url(f"/down-{tag}", Behaviour(status=500)),
            triggers=["/items/update"],
            deactivation_policy=DeactivationPolicy(number_of_failures=1000, days_in_past=1),
        )
    )
    return hooks


def _publish(client: HookstreamClient, ledger: Ledger, hooks: list[WebhookConfig], n: int) -> None:
    events = [make_event("items", "update", f"r{uuid.uuid4().hex[:8]}") for _ in range(n)]
    for event in events:
        client.publish_event(event)
    ledger.expect((event.event_id for event in events), hooks)


def _data_topics(settings: Settings) -> list[str]:
    return [*settings.topics.events, settings.topics.deliveries, settings.topics.status]


def test_kill_9_of_the_busiest_leader_mid_stream_loses_no_pair(
    cluster: LocalCluster,
    cluster_settings: Callable[..., Settings],
    pipeline_factory: Callable[[Settings], Pipeline],
    status_reader_factory: Callable[[Settings], StatusReader],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    settings = cluster_settings(max_attempts=2, retry_interval_s=1)
    statuses = status_reader_factory(settings)
    ledger = Ledger(receiver, statuses)
    pipeline = pipeline_factory(settings)
    client = HookstreamClient(cluster.bootstrap, settings.topics)
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        hooks = _webhooks(receiver)
        register_and_wait(client, *hooks)
        # Chosen before the stream: asking the cluster takes long enough for a quiet pipeline to
        # deliver every pair published so far, and then the kill would prove nothing.
        victim = busiest_leader(cluster, _data_topics(settings))
        _publish(client, ledger, hooks, 100)
        wait_until(lambda: len(receiver.requests) >= 40, 60, "deliveries before the kill")
        _publish(client, ledger, hooks, 20)  # acknowledged just now: not yet delivered
        cluster.node(victim).kill()
        assert ledger.unaccounted(), "every pair was done before the kill: it proved nothing"
        # Produced while the victim's partitions elect new leaders.
        _publish(client, ledger, hooks, 100)
        wait_until(
            lambda: (
                victim
                not in {
                    s.leader for s in partition_states(cluster.bootstrap, _data_topics(settings))
                }
            ),
            60,
            f"new leaders for broker {victim}'s partitions",
        )
        cluster.start_node(victim)
        _publish(client, ledger, hooks, 50)

        ledger.wait_all_accounted(ACCOUNTED_S)
        assert not ledger.unexpected()
        assert set(live_broker_ids(cluster.bootstrap)) == {1, 2, 3}
        for service in (pipeline.matcher, pipeline.sender):
            assert service is not None and service.process.poll() is None, "a service died"
    finally:
        client.close()


def test_rolling_restart_of_every_broker_loses_no_pair(
    cluster: LocalCluster,
    cluster_settings: Callable[..., Settings],
    pipeline_factory: Callable[[Settings], Pipeline],
    status_reader_factory: Callable[[Settings], StatusReader],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    """A controlled shutdown of each broker in turn, as an operator upgrading Kafka does: the
    next one stops only once every replica is back in sync."""
    settings = cluster_settings(max_attempts=2, retry_interval_s=1)
    statuses = status_reader_factory(settings)
    ledger = Ledger(receiver, statuses)
    pipeline = pipeline_factory(settings)
    client = HookstreamClient(cluster.bootstrap, settings.topics)
    watched = [*_data_topics(settings), settings.topics.retries, "__consumer_offsets"]
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        hooks = _webhooks(receiver)
        register_and_wait(client, *hooks)
        _publish(client, ledger, hooks, 40)
        for node_id in cluster.node_ids:
            wait_fully_replicated(cluster, watched, 90)
            node = cluster.node(node_id)
            assert node.signal_stop(), f"broker {node_id} was not running"
            _publish(client, ledger, hooks, 40)
            node.wait_stopped(60)
            _publish(client, ledger, hooks, 20)
            cluster.start_node(node_id)

        ledger.wait_all_accounted(ACCOUNTED_S)
        assert not ledger.unexpected()
        for service in (pipeline.matcher, pipeline.sender):
            assert service is not None and service.process.poll() is None, "a service died"
    finally:
        client.close()
