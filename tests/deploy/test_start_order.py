"""`hookstream topics wait`, the init step of every Deployment: waits for the topics with
metadata requests only, and never creates one."""

from __future__ import annotations

import subprocess
import sys

import pytest
from kafka import KafkaAdminClient

from hookstream.kafka.topics import create_topics
from support import settings_env, unique_settings

pytestmark = pytest.mark.integration


def _wait_command(env: dict[str, str], timeout_s: float) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - this interpreter, hookstream's own CLI
        [sys.executable, "-m", "hookstream.cli", "topics", "wait", "--timeout", str(timeout_s)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_topics_wait_fails_naming_the_missing_topics_and_creates_none(
    kafka_bootstrap: str,
) -> None:
    settings = unique_settings(kafka_bootstrap)
    waiting = _wait_command(settings_env(settings), timeout_s=3)
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 1, (out, err)
    assert settings.topics.webhooks in err and "hookstream topics create" in err
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        assert not set(settings.topics.all_names()) & set(admin.list_topics())
    finally:
        admin.close()


def test_topics_wait_returns_once_the_topics_are_made(kafka_bootstrap: str) -> None:
    settings = unique_settings(kafka_bootstrap)
    waiting = _wait_command(settings_env(settings), timeout_s=120)
    try:
        # Only once it has found the topics missing (its warning), so that it really waits.
        assert waiting.stderr is not None
        seen = ""
        while "waiting for topic" not in seen:
            line = waiting.stderr.readline()  # bounded: the command gives up after 120 s
            assert line, f"`topics wait` ended before it waited: {seen}"
            seen += line
        create_topics(kafka_bootstrap, settings.topics)
        out, err = waiting.communicate(timeout=150)
    finally:
        waiting.kill()
        waiting.wait(timeout=30)
    assert waiting.returncode == 0, err
    assert "every topic exists" in out
