"""Topic checks: `topics create` names every difference and `--fix` repairs it; the services
refuse to start on missing or non-compacted topics, on a broker that auto-creates topics."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from hookstream.kafka.topics import TopicMismatchError, create_topics, describe, require_topics
from hookstream.localkafka.broker import HOST, LocalBroker
from hookstream.settings import LocalKafkaSettings, Settings
from support import ServiceProcess, unique_settings, wait_until

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def auto_creating_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker with Apache Kafka's default ``auto.create.topics.enable=true``."""
    broker = LocalBroker(
        LocalKafkaSettings(port=_free_port(), controller_port=_free_port()),
        workdir=tmp_path_factory.mktemp("auto-create") / "broker",
        extra_properties={"auto.create.topics.enable": "true"},
    )
    info = broker.start()
    try:
        yield info.bootstrap
    finally:
        broker.stop()


def _as_auto_created(bootstrap: str, *names: str) -> None:
    """What auto-creation makes: one partition, cleanup.policy=delete."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, 1, 1) for name in names])
    finally:
        admin.close()


def test_topics_create_names_each_difference_and_fix_repairs_them(kafka_bootstrap: str) -> None:
    settings = unique_settings(kafka_bootstrap)
    topics = settings.topics
    _as_auto_created(kafka_bootstrap, topics.webhooks, topics.deliveries)

    with pytest.raises(TopicMismatchError) as raised:
        create_topics(kafka_bootstrap, topics)
    message = str(raised.value)
    assert f"{topics.webhooks}: cleanup.policy=delete, needs cleanup.policy=compact" in message
    assert f"{topics.webhooks}: 1 partitions, needs at least 3" in message
    assert f"{topics.deliveries}: retention.ms=" not in message  # the broker default: 7 days
    assert "hookstream topics create --fix" in message

    outcome = create_topics(kafka_bootstrap, topics, fix=True)
    assert outcome[topics.webhooks] == "fixed"
    assert outcome[topics.deliveries] == "fixed"  # 1 -> 3 partitions
    assert outcome[topics.status] == "ok"  # created by the first run, which then reported
    assert set(create_topics(kafka_bootstrap, topics).values()) == {"ok"}
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        state = describe(admin, [topics.webhooks])[topics.webhooks]
    finally:
        admin.close()
    assert state.partitions == 3
    assert state.configs["cleanup.policy"] == "compact"
    assert state.configs["min.insync.replicas"] == "1"


def test_require_topics_refuses_a_config_topic_that_is_not_compacted(kafka_bootstrap: str) -> None:
    settings = unique_settings(kafka_bootstrap)
    create_topics(kafka_bootstrap, settings.topics)
    require_topics(kafka_bootstrap, settings.topics, timeout_s=5)  # as created: fine
    other = unique_settings(kafka_bootstrap)
    _as_auto_created(kafka_bootstrap, other.topics.settings)
    with pytest.raises(TopicMismatchError, match="cleanup.policy=delete, needs cleanup.policy"):
        require_topics(kafka_bootstrap, other.topics, timeout_s=5)
    missing = unique_settings(kafka_bootstrap)
    with pytest.raises(Exception, match="run `hookstream topics create`") as raised:
        require_topics(kafka_bootstrap, missing.topics, timeout_s=1)
    assert missing.topics.webhooks in str(raised.value)


def _topic_names(bootstrap: str) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def test_a_sender_started_before_topics_create_creates_nothing_and_waits(
    auto_creating_broker: str, tmp_path: Path
) -> None:
    settings: Settings = unique_settings(auto_creating_broker)
    sender = ServiceProcess("sender", settings, tmp_path)
    try:
        sender.wait_for_log("waiting for topic(s)")
        assert not set(settings.topics.all_names()) & _topic_names(auto_creating_broker)
        create_topics(auto_creating_broker, settings.topics)
        sender.wait_for_log("sender ready")
    finally:
        sender.stop()
    admin = KafkaAdminClient(bootstrap_servers=auto_creating_broker)
    try:
        states = describe(admin, [settings.topics.webhooks, settings.topics.settings])
    finally:
        admin.close()
    assert {state.configs["cleanup.policy"] for state in states.values()} == {"compact"}


def test_a_service_refuses_to_start_on_an_auto_created_config_topic(
    auto_creating_broker: str, tmp_path: Path
) -> None:
    settings = unique_settings(auto_creating_broker)
    _as_auto_created(auto_creating_broker, settings.topics.webhooks)
    sender = ServiceProcess("sender", settings, tmp_path)
    code = wait_until(lambda: sender.process.poll(), 90, "the sender to refuse to start")
    assert code != 0
    log = sender.log_text()
    assert f"{settings.topics.webhooks}: cleanup.policy=delete" in log
    assert "hookstream topics create --fix" in log
    sender.stop()
