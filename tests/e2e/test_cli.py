"""The `hookstream` command as a user runs it: help, the demo, publishing, tailing the status."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import settings_env, unique_settings, wait_until

HOOKSTREAM = [sys.executable, "-m", "hookstream.cli"]


def test_help_explains_every_subcommand() -> None:
    result = subprocess.run(
        [*HOOKSTREAM, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    for command in ("kafka", "topics", "matcher", "sender", "demo", "events", "status"):
        assert command in result.stdout
    kafka = subprocess.run(
        [*HOOKSTREAM, "kafka", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert all(action in kafka.stdout for action in ("start", "stop", "status"))
    start = subprocess.run(
        [*HOOKSTREAM, "kafka", "start", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "--brokers N" in start.stdout


def test_invalid_settings_are_refused_with_the_field_named() -> None:
    env = settings_env(unique_settings("127.0.0.1:1"))
    env["HOOKSTREAM_DELIVERY__MAX_ATTEMPTS"] = "9"
    result = subprocess.run(
        [*HOOKSTREAM, "topics", "create"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "max_attempts" in result.stderr
    assert "less than or equal to 5" in result.stderr


@pytest.mark.integration
def test_demo_delivers_and_shows_status(kafka_bootstrap: str) -> None:
    settings = unique_settings(kafka_bootstrap)
    env = settings_env(settings)
    result = subprocess.run(
        [*HOOKSTREAM, "demo", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "receiver <- POST /items [application/json] auth=basic" in result.stdout
    assert "receiver <- POST /computers [text/xml; charset=utf-8] auth=header" in result.stdout
    assert "receiver <- POST /orders [application/json]" in result.stdout
    assert "declared event type orders.created" in result.stdout
    assert "deactivated" in result.stdout
    # The notification status of the four webhooks, read back through the admin API.
    shown = result.stdout.split("notification status, from the admin API at", 1)[1]
    assert shown.count("webhook demo-") == 4
    assert shown.count(" delivered ") == 3 and shown.count(" failed ") == 1, shown
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary == {"demo": "ok", "status_records": 6}
    assert "demo-password" not in result.stdout + result.stderr


@pytest.mark.integration
def test_publish_from_flags_and_tail_status(kafka_bootstrap: str) -> None:
    settings = unique_settings(kafka_bootstrap)
    env = settings_env(settings)
    subprocess.run(
        [*HOOKSTREAM, "topics", "create"], env=env, check=True, capture_output=True, timeout=60
    )
    published = subprocess.run(
        [
            *HOOKSTREAM,
            "events",
            "publish",
            "--source",
            "items",
            "--operation",
            "add",
            "--id",
            "x1",
            "--properties",
            '{"a": 1}',
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert published.returncode == 0, published.stderr
    assert "(items/add)" in published.stdout
    bad = subprocess.run(
        [
            *HOOKSTREAM,
            "events",
            "publish",
            "--source",
            "items",
            "--operation",
            "add",
            "--properties",
            "{not json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "invalid input" in bad.stderr
    tail = subprocess.run(
        [*HOOKSTREAM, "status", "tail", "--idle", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert tail.returncode == 0
    assert tail.stdout == ""  # nothing was delivered: no webhook exists on these topics


def _processes_with(marker: str) -> list[int]:
    """Pids whose environment holds ``marker`` (the demo's children carry the test's app id)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.integration
def test_demo_keeps_running_until_interrupted_and_then_stops_what_it_started(
    kafka_bootstrap: str,
) -> None:
    settings = unique_settings(kafka_bootstrap)
    env = settings_env(settings)
    demo = subprocess.Popen(
        [*HOOKSTREAM, "demo"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    lines: list[str] = []
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + 180
        for line in demo.stdout:
            lines.append(line)
            if "Still running" in line or time.monotonic() > deadline:
                break
        marker = f"HOOKSTREAM_APP_ID={settings.app_id}"
        assert len(_processes_with(marker)) >= 4  # the demo, its matcher, sender and admin API
        # What it prints for the CLI works: the admin API lists the demo's webhooks.
        for line in demo.stdout:
            lines.append(line)
            if "export HOOKSTREAM_ADMIN__URL=" in line:
                break
        exported = dict(
            word.split("=", 1) for word in lines[-1].split() if word.startswith("HOOKSTREAM_")
        )
        listed = subprocess.run(
            [*HOOKSTREAM, "webhooks", "list", "--json"],
            env={**env, **exported},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr
        assert sum(h["id"].startswith("demo-") for h in json.loads(listed.stdout)["webhooks"]) >= 3
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 0
    assert "stopping everything the demo started" in rest
    assert any("deactivated" in line for line in lines)
    wait_until(lambda: not _processes_with(marker), 30, "the demo's services to exit")
