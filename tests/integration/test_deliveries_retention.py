"""The deliveries and retries topics keep jobs as long as the delivery history lists them."""

from __future__ import annotations

import logging

import pytest
from kafka import KafkaAdminClient

from hookstream.admin.state import warn_short_job_retention
from hookstream.kafka.topics import create_topics, describe, topic_specs
from hookstream.settings import Settings
from support import unique_settings

pytestmark = pytest.mark.integration

DAY_MS = 24 * 3600 * 1000


def test_jobs_are_kept_longer_than_the_history_lists_failed_deliveries() -> None:
    settings = Settings()
    assert settings.topics.deliveries_retention_ms >= settings.admin.failure_retention_s * 1000
    specs = {spec.name: spec.configs for spec in topic_specs(settings.topics)}
    for topic in (settings.topics.deliveries, settings.topics.retries):
        assert specs[topic]["retention.ms"] == str(7 * DAY_MS)


def test_topics_create_sets_the_configured_retention_on_the_broker(kafka_bootstrap: str) -> None:
    settings = unique_settings(kafka_bootstrap)
    topics = settings.topics.model_copy(update={"deliveries_retention_ms": 10 * DAY_MS})
    create_topics(kafka_bootstrap, topics)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        states = describe(admin, [topics.deliveries, topics.retries, topics.status])
    finally:
        admin.close()
    assert states[topics.deliveries].configs["retention.ms"] == str(10 * DAY_MS)
    assert states[topics.retries].configs["retention.ms"] == str(10 * DAY_MS)


def test_the_admin_warns_when_jobs_expire_before_the_history(
    caplog: pytest.LogCaptureFixture,
) -> None:
    short = Settings(topics={"deliveries_retention_ms": DAY_MS})
    with caplog.at_level(logging.WARNING, logger="hookstream.admin.state"):
        assert warn_short_job_retention(short)
    assert "HOOKSTREAM_TOPICS__DELIVERIES_RETENTION_MS" in caplog.text
    assert not warn_short_job_retention(Settings())
