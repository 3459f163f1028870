"""`create_topics` run twice at once, or against a broker that lists a new topic late: a topic
that turns out to exist when hookstream creates it is checked like any other, not refused."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.errors import TopicAlreadyExistsError

from hookstream.kafka import topics
from hookstream.kafka.topics import TopicMismatchError, create_topics, topic_specs
from hookstream.settings import TopicSettings


class LateListingAdmin:
    """A Kafka admin client whose cluster holds every topic already, but lists none yet."""

    def __init__(self, settings: TopicSettings, wrong: dict[str, str] | None = None) -> None:
        self.specs = {spec.name: spec for spec in topic_specs(settings)}
        self.wrong = wrong or {}
        self.created: list[str] = []

    def list_topics(self) -> list[str]:
        return []

    def create_topics(self, new: list[Any], timeout_ms: int) -> None:
        self.created += [topic.name for topic in new]
        raise TopicAlreadyExistsError()

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        partition = {"error_code": 0, "replica_nodes": [1]}
        return [
            {"name": name, "error_code": 0, "partitions": [partition] * self.specs[name].partitions}
            for name in names
        ]

    def describe_configs(self, resources: list[Any], config_filter: str) -> dict[str, Any]:
        described = {}
        for resource in resources:
            configs = {**self.specs[resource.name].configs, **self.wrong}
            described[resource.name] = {key: {"value": value} for key, value in configs.items()}
        return {"topic": described}

    def close(self) -> None:
        pass


def test_a_topic_that_exists_after_all_is_checked_and_passes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = TopicSettings()
    admin = LateListingAdmin(settings)
    monkeypatch.setattr(topics, "_admin", lambda bootstrap, security: admin)
    outcome = create_topics("127.0.0.1:9", settings)
    assert outcome == {name: "ok" for name in settings.all_names()}
    assert sorted(admin.created) == sorted(settings.all_names())


def test_a_topic_that_exists_after_all_with_other_settings_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = TopicSettings()
    admin = LateListingAdmin(settings, wrong={"cleanup.policy": "delete"})
    monkeypatch.setattr(topics, "_admin", lambda bootstrap, security: admin)
    with pytest.raises(TopicMismatchError, match=f"{settings.webhooks}.*cleanup.policy"):
        create_topics("127.0.0.1:9", settings)
