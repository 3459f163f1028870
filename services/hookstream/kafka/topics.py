"""Provisioning of every topic hookstream uses, with its settings, through kafka-python's admin;
and the checks that existing topics are as hookstream needs them."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import (
    NodeNotReadyError,
    NotControllerError,
    TopicAlreadyExistsError,
    UnknownBrokerIdError,
)

from hookstream.core.errors import ConfigurationError
from hookstream.kafka.security import kafka_python_options
from hookstream.records.intake import event_topic_names
from hookstream.settings import KafkaSecuritySettings, TopicSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    """One topic as hookstream wants it."""

    name: str
    partitions: int
    configs: dict[str, str]


#: How long ``require_topics`` waits for missing topics: on Kubernetes the topics Job and the
#: services start together.
REQUIRE_TIMEOUT_S = 60.0


def min_insync_replicas(replication_factor: int) -> int:
    """2 when there are at least 3 replicas (a write survives one broker down), else 1."""
    return 2 if replication_factor >= 3 else 1


def topic_specs(topics: TopicSettings) -> list[TopicSpec]:
    """The topics and their settings: the webhook configs compacted, the rest time-retained."""
    isr = {"min.insync.replicas": str(min_insync_replicas(topics.replication_factor))}
    delete = {"cleanup.policy": "delete", **isr}
    # Jobs and retries are kept as long as the delivery history (see deliveries_retention_ms).
    jobs = {**delete, "retention.ms": str(topics.deliveries_retention_ms)}
    specs = [TopicSpec(name, topics.partitions, dict(delete)) for name in event_topic_names(topics)]
    specs += [
        TopicSpec(
            topics.webhooks,
            topics.partitions,
            {
                "cleanup.policy": "compact",
                "min.compaction.lag.ms": "0",
                "delete.retention.ms": str(24 * 3600 * 1000),
                **isr,
            },
        ),
        TopicSpec(topics.webhook_commands, topics.partitions, dict(delete)),
        TopicSpec(topics.settings, 1, {"cleanup.policy": "compact", **isr}),
        # One partition: the catalog is small and every reader sees its changes in one order.
        TopicSpec(topics.event_types, 1, {"cleanup.policy": "compact", **isr}),
        TopicSpec(topics.deliveries, topics.partitions, dict(jobs)),
        TopicSpec(topics.retries, topics.partitions, dict(jobs)),
        TopicSpec(
            topics.status,
            topics.partitions,
            {**delete, "retention.ms": str(topics.status_retention_ms)},
        ),
        TopicSpec(
            topics.deadletter,
            topics.partitions,
            {**delete, "retention.ms": str(topics.deadletter_retention_ms)},
        ),
    ]
    return specs


class TopicMismatchError(ConfigurationError):
    """Existing topics differ from what hookstream needs; the message names each difference."""


@dataclass(frozen=True)
class TopicState:
    """An existing topic as the cluster describes it."""

    partitions: int
    replication_factor: int
    configs: dict[str, str]


@dataclass(frozen=True)
class Difference:
    """One way an existing topic differs from its spec, and whether ``--fix`` can change it."""

    topic: str
    what: str
    fixable: bool

    def __str__(self) -> str:
        return f"{self.topic}: {self.what}" + ("" if self.fixable else " (--fix cannot change it)")


def differences(spec: TopicSpec, state: TopicState, replication_factor: int) -> list[Difference]:
    """How ``state`` falls short of ``spec``: fewer partitions or replicas, any other config."""
    found: list[Difference] = []
    if state.partitions < spec.partitions:
        found.append(
            Difference(
                spec.name,
                f"{state.partitions} partitions, needs at least {spec.partitions}",
                fixable=True,
            )
        )
    if state.replication_factor < replication_factor:
        found.append(
            Difference(
                spec.name,
                f"replication factor {state.replication_factor}, needs {replication_factor} "
                f"(reassign the partitions with kafka-reassign-partitions)",
                fixable=False,
            )
        )
    for key, wanted in spec.configs.items():
        actual = state.configs.get(key)
        if actual != wanted:
            found.append(Difference(spec.name, f"{key}={actual}, needs {key}={wanted}", True))
    return found


def _admin(bootstrap: str, security: KafkaSecuritySettings | None) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="hookstream-topics",
        **kafka_python_options(security),
    )


def describe(
    admin: KafkaAdminClient, names: list[str], settle_s: float = 10.0, exist: bool = False
) -> dict[str, TopicState]:
    """The existing topics among ``names`` (metadata requests that never create a topic).

    A topic listed but not complete yet (just created: no partitions, leaders or replicas in
    its metadata) is described again for up to ``settle_s``; after that it counts as missing.
    ``exist``: the topics are known to exist (the broker said so), listed or not yet.
    """
    existing = set(names) if exist else set(admin.list_topics()) & set(names)
    deadline = time.monotonic() + settle_s
    states: dict[str, TopicState] = {}
    while existing:
        ordered = sorted(existing)
        described = {topic["name"]: topic for topic in admin.describe_topics(ordered)}
        complete = [name for name in ordered if _complete(described.get(name))]
        if complete:
            configs = admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name) for name in complete],
                config_filter="all",
            )["topic"]
            for name in complete:
                partitions = described[name]["partitions"]
                states[name] = TopicState(
                    partitions=len(partitions),
                    replication_factor=min(len(p["replica_nodes"]) for p in partitions),
                    configs={key: entry["value"] for key, entry in configs[name].items()},
                )
        existing -= set(complete)
        if not existing or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    return states


def _complete(topic: dict[str, Any] | None) -> bool:
    if not topic or topic.get("error_code"):
        return False
    partitions = topic["partitions"]
    return bool(partitions) and all(p["replica_nodes"] and not p["error_code"] for p in partitions)


#: Errors of a cluster still starting (its controller not yet in the metadata a client got):
#: the whole create-and-check is tried again on a fresh connection, at most this many times.
NOT_READY_ERRORS = (UnknownBrokerIdError, NodeNotReadyError, NotControllerError)
NOT_READY_ATTEMPTS = 10


def create_topics(
    bootstrap: str,
    topics: TopicSettings,
    security: KafkaSecuritySettings | None = None,
    fix: bool = False,
) -> dict[str, str]:
    """Create every missing topic and check every existing one against its spec, again on a
    fresh connection while the cluster is still starting (see ``_create_topics``)."""
    for attempt in range(1, NOT_READY_ATTEMPTS + 1):
        try:
            return _create_topics(bootstrap, topics, security, fix)
        except NOT_READY_ERRORS as exc:
            if attempt == NOT_READY_ATTEMPTS:
                raise
            log.warning(
                "the cluster cannot create topics yet (%s: %s); trying again",
                type(exc).__name__,
                exc,
            )
            time.sleep(1.0)
    raise AssertionError("unreachable")


def _create_topics(
    bootstrap: str,
    topics: TopicSettings,
    security: KafkaSecuritySettings | None,
    fix: bool,
) -> dict[str, str]:
    """Create every missing topic and check every existing one against its spec.

    Returns each name with ``created``, ``ok`` or ``fixed``. A difference raises
    ``TopicMismatchError`` naming all of them, unless ``fix`` is set and Kafka can change them:
    configs are altered incrementally and partitions added (records already written stay where
    they are: a topic that was ``delete`` keeps what it still holds, now compacted).
    """
    admin = _admin(bootstrap, security)
    outcome: dict[str, str] = {}
    try:
        specs = topic_specs(topics)
        states = describe(admin, [spec.name for spec in specs])
        found: list[Difference] = []
        for spec in specs:
            state = states.get(spec.name)
            if state is None:
                if _create(admin, spec, topics.replication_factor):
                    outcome[spec.name] = "created"
                    continue
                # It exists after all: created meanwhile, or listed late by a busy broker.
                state = describe(admin, [spec.name], exist=True).get(spec.name)
                if state is None:
                    raise TopicMismatchError(
                        f"topic {spec.name} exists but its metadata is incomplete; run "
                        "`hookstream topics create` again to check it"
                    )
                states[spec.name] = state
            diff = differences(spec, state, topics.replication_factor)
            found += diff
            outcome[spec.name] = "ok" if not diff else "differs"
        if found and (not fix or not all(d.fixable for d in found)):
            raise TopicMismatchError(
                "existing topics differ from what hookstream needs:\n  "
                + "\n  ".join(str(d) for d in found)
                + (
                    "\nrun `hookstream topics create --fix` to change them"
                    if all(d.fixable for d in found)
                    else "\nchange what --fix cannot by hand, then run `hookstream topics create`"
                )
            )
        for spec in specs:
            state = states.get(spec.name)
            if outcome[spec.name] == "differs" and state is not None:
                _fix(admin, spec, state)
                outcome[spec.name] = "fixed"
    finally:
        admin.close()
    return outcome


def _create(admin: KafkaAdminClient, spec: TopicSpec, replication_factor: int) -> bool:
    """Create the topic; False if it already exists (the caller then checks it)."""
    new = NewTopic(
        name=spec.name,
        num_partitions=spec.partitions,
        replication_factor=replication_factor,
        topic_configs=spec.configs,
    )
    try:
        admin.create_topics([new], timeout_ms=30_000)
    except TopicAlreadyExistsError:
        return False
    log.info("created topic %s (%d partitions, %s)", spec.name, spec.partitions, spec.configs)
    return True


def _fix(admin: KafkaAdminClient, spec: TopicSpec, state: TopicState) -> None:
    changed = {k: v for k, v in spec.configs.items() if state.configs.get(k) != v}
    if changed:
        result = admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, spec.name, configs=changed)],
            incremental=True,
        )
        status = result["topic"][spec.name]
        if status != "OK":
            raise TopicMismatchError(f"Kafka refused to change {spec.name} {changed}: {status}")
    if state.partitions < spec.partitions:
        admin.create_partitions({spec.name: NewPartitions(total_count=spec.partitions)})
    log.warning("changed topic %s: %s, %d partitions", spec.name, changed, spec.partitions)


def require_topics(
    bootstrap: str,
    topics: TopicSettings,
    security: KafkaSecuritySettings | None = None,
    timeout_s: float = REQUIRE_TIMEOUT_S,
) -> None:
    """Refuse to start a service on topics that would lose data or were never created.

    Waits up to ``timeout_s`` for missing topics to appear, then raises ``ConfigurationError``
    naming them. A compacted topic that is not compacted (as topic auto-creation makes it) raises
    at once: its webhook configs or settings would be deleted after the retention period.
    """
    specs = topic_specs(topics)
    names = [spec.name for spec in specs]
    deadline = time.monotonic() + timeout_s
    admin = _admin(bootstrap, security)
    try:
        while True:
            states = describe(admin, names)
            wrong = [
                str(d)
                for spec in specs
                if spec.configs["cleanup.policy"] == "compact" and spec.name in states
                for d in differences(spec, states[spec.name], topics.replication_factor)
                if d.what.startswith("cleanup.policy=")
            ]
            if wrong:
                raise TopicMismatchError(
                    "hookstream cannot start: " + "; ".join(wrong) + ". Run `hookstream topics "
                    "create --fix`, and set auto.create.topics.enable=false on the brokers"
                )
            missing = [name for name in names if name not in states]
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise ConfigurationError(
                    f"hookstream cannot start: topic(s) {', '.join(missing)} do not exist "
                    f"(waited {timeout_s:g} s); run `hookstream topics create`"
                )
            log.warning("waiting for topic(s) %s; run `hookstream topics create`", missing)
            time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
    finally:
        admin.close()
