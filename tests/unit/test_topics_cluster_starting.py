"""``create_topics`` tries again while a just-started cluster does not yet know its controller."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.errors import TopicAuthorizationFailedError, UnknownBrokerIdError

from hookstream.kafka import topics
from hookstream.settings import TopicSettings


def test_a_cluster_whose_controller_is_not_yet_known_is_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    def flaky(*_: Any) -> dict[str, str]:
        calls.append(1)
        if len(calls) < 3:
            raise UnknownBrokerIdError(3)
        return {"t": "created"}

    monkeypatch.setattr(topics, "_create_topics", flaky)
    monkeypatch.setattr("hookstream.kafka.topics.time.sleep", lambda _s: None)
    assert topics.create_topics("127.0.0.1:1", TopicSettings()) == {"t": "created"}
    assert len(calls) == 3


def test_it_gives_up_after_its_bound_and_other_errors_are_not_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[type[Exception]] = []

    def failing(error: type[Exception]) -> Any:
        def create(*_: Any) -> dict[str, str]:
            calls.append(error)
            raise error()

        return create

    monkeypatch.setattr("hookstream.kafka.topics.time.sleep", lambda _s: None)
    monkeypatch.setattr(topics, "_create_topics", failing(UnknownBrokerIdError))
    with pytest.raises(UnknownBrokerIdError):
        topics.create_topics("127.0.0.1:1", TopicSettings())
    assert len(calls) == topics.NOT_READY_ATTEMPTS
    calls.clear()
    monkeypatch.setattr(topics, "_create_topics", failing(TopicAuthorizationFailedError))
    with pytest.raises(TopicAuthorizationFailedError):
        topics.create_topics("127.0.0.1:1", TopicSettings())
    assert len(calls) == 1
