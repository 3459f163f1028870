"""What the fault tests on the three-broker cluster share: settings replicated three times, a
ledger of every (event, webhook) pair, and the cluster's health and leaders."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from hookstream.kafka.topics import create_topics
from hookstream.localkafka.cluster import LocalCluster, partition_states
from hookstream.records.ids import delivery_id_for
from hookstream.records.models import Outcome, WebhookConfig
from hookstream.settings import Settings
from support import Receiver, StatusReader, unique_settings, wait_until

#: Replicas of every test topic, and so min.insync.replicas 2 (kafka/topics.py): a write is
#: acknowledged only once two brokers hold it.
REPLICATION_FACTOR = 3


def replicated_settings(bootstrap: str, **delivery: object) -> Settings:
    """Unique test topics with three replicas each, created on the cluster."""
    base = unique_settings(bootstrap, **delivery)
    topics = base.topics.model_copy(update={"replication_factor": REPLICATION_FACTOR})
    settings = base.model_copy(update={"topics": topics})
    create_topics(bootstrap, settings.topics)
    return settings


class Ledger:
    """Every (event, webhook) pair a test published, and what became of each: delivered (the
    receiver got it), recorded as finally failed, or skipped by policy. Anything else is lost."""

    def __init__(self, receiver: Receiver, statuses: StatusReader) -> None:
        self.receiver = receiver
        self.statuses = statuses
        self.expected: set[str] = set()

    def expect(self, event_ids: Iterable[str], webhooks: Iterable[WebhookConfig]) -> None:
        """Record pairs as expected; the delivery id names the pair (event id, webhook id)."""
        hooks = list(webhooks)
        self.expected |= {delivery_id_for(e, w.webhook_id) for e in event_ids for w in hooks}

    def received(self) -> Counter[str]:
        """How often each delivery id reached the receiver (more than once: a duplicate)."""
        return Counter(request.headers.get("webhook-id", "") for request in self.receiver.requests)

    def ended_without_delivery(self) -> set[str]:
        """Delivery ids with a final FAILED or SKIPPED status record."""
        return {
            s.delivery_id
            for s in self.statuses.snapshot()
            if s.final and s.outcome in (Outcome.FAILED, Outcome.SKIPPED)
        }

    def unaccounted(self) -> set[str]:
        """Expected pairs neither delivered nor ended by a final status: lost, so far."""
        return self.expected - set(self.received()) - self.ended_without_delivery()

    def unexpected(self) -> set[str]:
        """Deliveries of pairs no test published: must never happen."""
        return set(self.received()) - self.expected

    def duplicates(self) -> int:
        """Deliveries beyond the first of each pair (at-least-once allows them)."""
        return sum(count - 1 for count in self.received().values() if count > 1)

    def duplicated_pairs(self) -> int:
        """Pairs delivered more than once."""
        return sum(1 for count in self.received().values() if count > 1)

    def wait_all_accounted(self, timeout_s: float) -> None:
        def done() -> bool:
            return not self.unaccounted()

        try:
            wait_until(done, timeout_s, "every (event, webhook) pair to be accounted for", 0.25)
        except AssertionError as exc:
            missing = self.unaccounted()
            raise AssertionError(
                f"{exc}: {len(missing)} of {len(self.expected)} pairs unaccounted, e.g. "
                f"{sorted(missing)[:5]}"
            ) from None


def busiest_leader(cluster: LocalCluster, topics: list[str]) -> int:
    """The broker that leads most partitions of ``topics``."""
    leaders = Counter(
        state.leader for state in partition_states(cluster.bootstrap, topics) if state.leader >= 0
    )
    assert leaders, f"no partition of {topics} has a leader"
    return leaders.most_common(1)[0][0]


def wait_fully_replicated(cluster: LocalCluster, topics: list[str], timeout_s: float) -> None:
    """Wait until every partition of ``topics`` has all its replicas in sync, so that stopping
    one more broker keeps min.insync.replicas."""

    def replicated() -> bool:
        states = partition_states(cluster.bootstrap, topics)
        return bool(states) and all(
            len(state.isr) == len(state.replicas) and state.leader >= 0 for state in states
        )

    wait_until(replicated, timeout_s, f"every replica of {topics} to be in sync", 0.5)
