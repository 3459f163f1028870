"""Settings (SPEC §4 advanced parameters): defaults, bounds and the environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from hookstream.settings import DeliverySettings, Settings, TopicSettings, get_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("HOOKSTREAM_") or name.upper() == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_defaults() -> None:
    settings = Settings()
    assert settings.delivery.max_attempts == 3
    assert settings.delivery.retry_interval_s == 30.0
    assert settings.delivery.request_timeout_s == 10.0
    assert settings.delivery.allow_plain_http is False
    assert settings.kafka_bootstrap is None
    assert settings.topics.events == ["hookstream.events"]
    assert settings.app_id == "hookstream"
    assert settings.log_level == "INFO"


@pytest.mark.parametrize("attempts", [1, 5])
def test_attempt_bounds_accepted(attempts: int) -> None:
    assert DeliverySettings(max_attempts=attempts).max_attempts == attempts


@pytest.mark.parametrize("attempts", [0, 6, -1])
def test_attempt_bounds_refused(attempts: int) -> None:
    with pytest.raises(ValidationError, match="max_attempts"):
        DeliverySettings(max_attempts=attempts)


@pytest.mark.parametrize("interval", [1, 1.0, 100])
def test_interval_bounds_accepted(interval: float) -> None:
    assert DeliverySettings(retry_interval_s=interval).retry_interval_s == interval


@pytest.mark.parametrize("interval", [0.5, 101, 0])
def test_interval_bounds_refused(interval: float) -> None:
    with pytest.raises(ValidationError, match="retry_interval_s"):
        DeliverySettings(retry_interval_s=interval)


@pytest.mark.parametrize("timeout", [0, 61])
def test_notification_timeout_bounds(timeout: float) -> None:
    assert DeliverySettings(request_timeout_s=60).request_timeout_s == 60
    with pytest.raises(ValidationError, match="request_timeout_s"):
        DeliverySettings(request_timeout_s=timeout)


def test_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKSTREAM_DELIVERY__MAX_ATTEMPTS", "5")
    monkeypatch.setenv("HOOKSTREAM_DELIVERY__RETRY_INTERVAL_S", "2.5")
    monkeypatch.setenv("HOOKSTREAM_DELIVERY__ALLOW_PLAIN_HTTP", "true")
    monkeypatch.setenv("HOOKSTREAM_TOPICS__WEBHOOKS", "my.webhooks")
    monkeypatch.setenv("HOOKSTREAM_APP_ID", "app-2")
    monkeypatch.setenv("HOOKSTREAM_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("HOOKSTREAM_KAFKA_BOOTSTRAP", "broker:9092")
    settings = Settings()
    assert settings.delivery.max_attempts == 5
    assert settings.delivery.retry_interval_s == 2.5
    assert settings.delivery.allow_plain_http is True
    assert settings.delivery.request_timeout_s == 10.0  # untouched neighbours keep defaults
    assert settings.topics.webhooks == "my.webhooks"
    assert settings.topics.status == "hookstream.status"
    assert settings.app_id == "app-2"
    assert settings.log_level == "DEBUG"
    assert settings.kafka_bootstrap == "broker:9092"


def test_environment_bounds_are_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKSTREAM_DELIVERY__MAX_ATTEMPTS", "6")
    with pytest.raises(ValidationError, match="max_attempts"):
        Settings()


def test_kafka_bootstrap_servers_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    assert Settings().kafka_bootstrap == "k1:9092,k2:9092"


def test_hookstream_name_wins_over_the_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "generic:9092")
    monkeypatch.setenv("HOOKSTREAM_KAFKA_BOOTSTRAP", "specific:9092")
    assert Settings().kafka_bootstrap == "specific:9092"


def test_get_settings_reads_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKSTREAM_APP_ID", "first")
    first = get_settings()
    monkeypatch.setenv("HOOKSTREAM_APP_ID", "second")
    assert get_settings() is first
    assert first.app_id == "first"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a,b", ["a", "b"]),
        (" a , b ,, c ", ["a", "b", "c"]),
        ("single", ["single"]),
        ('["x", "y"]', ["x", "y"]),
    ],
)
def test_comma_separated_event_topics_in_the_model(value: str, expected: list[str]) -> None:
    assert TopicSettings(events=value).events == expected
    assert TopicSettings(events=value).all_names()[: len(expected)] == expected


def test_event_topics_as_json_list_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKSTREAM_TOPICS__EVENTS", '["orders.events", "users.events"]')
    assert Settings().topics.events == ["orders.events", "users.events"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("orders.events,users.events", ["orders.events", "users.events"]), ("one", ["one"])],
)
def test_comma_separated_event_topics_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("HOOKSTREAM_TOPICS__EVENTS", value)
    assert Settings().topics.events == expected


@pytest.mark.parametrize(
    ("field", "value"), [("app_id", "bad id"), ("log_level", "TRACE"), ("app_id", "")]
)
def test_patterns_are_enforced(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=field):
        values: dict[str, Any] = {field: value}
        Settings(**values)


def test_masked_is_plain_json() -> None:
    masked = Settings().masked()
    assert masked["delivery"]["max_attempts"] == 3
    assert isinstance(masked["local_kafka"]["home"], str)


def test_group_membership_defaults_fail_over_within_seconds() -> None:
    """A dead member's partitions move once its 6 s session ends; heartbeats every second tell
    the survivors at once (docs/operations.md, "Fail-over")."""
    settings = Settings()
    assert settings.group_session_timeout_s == 6.0
    assert settings.group_heartbeat_interval_s == 1.0
    assert settings.group_instance_id is None
    assert Settings(group_session_timeout_s=60).group_heartbeat_interval_s == 3.0


def test_group_instance_id_comes_from_the_environment_and_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOOKSTREAM_GROUP_INSTANCE_ID", "hookstream-sender-7d9f-x2k4q")
    assert Settings().group_instance_id == "hookstream-sender-7d9f-x2k4q"
    monkeypatch.setenv("HOOKSTREAM_GROUP_INSTANCE_ID", "two words")
    with pytest.raises(ValidationError, match="group_instance_id"):
        Settings()
