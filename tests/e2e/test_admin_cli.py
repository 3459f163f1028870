"""A CLI session against `hookstream admin` and the pipeline as processes, create to status."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hookstream.kafka.topics import create_topics
from hookstream.settings import Settings
from support import Pipeline, Receiver, settings_env, unique_settings, wait_until

pytestmark = pytest.mark.integration

HOOKSTREAM = [sys.executable, "-m", "hookstream.cli"]
TOKEN = "cli-session-" + "token-42"


class AdminProcess:
    """`hookstream admin` on a free port; its URL comes from its own start-up log line."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        env = settings_env(settings)
        env.update({"HOOKSTREAM_ADMIN__TOKENS": TOKEN, "HOOKSTREAM_ADMIN__PORT": "0"})
        self.log_path = log_dir / "admin.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [*HOOKSTREAM, "admin"], env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.url = ""

    def wait_ready(self) -> None:
        self.url = wait_until(self._listening, 60, "the admin API to listen")
        with httpx.Client(base_url=self.url) as http:
            wait_until(lambda: http.get("/readyz").status_code == 200, 60, "the admin API ready")

    def _listening(self) -> str | None:
        text = self.log_path.read_text(errors="replace")
        if self.process.poll() is not None:
            raise AssertionError(f"hookstream admin exited:\n{text[-3000:]}")
        found = re.search(r"admin API listening on (http://127\.0\.0\.1:\d+)", text)
        return found.group(1) if found else None

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        self._log.close()
        return self.process.returncode


@pytest.fixture
def session(kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple[dict[str, str], AdminProcess]]:
    settings = unique_settings(kafka_bootstrap)
    create_topics(kafka_bootstrap, settings.topics)
    pipeline = Pipeline(settings, tmp_path)
    admin: AdminProcess | None = None
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        admin = AdminProcess(settings, tmp_path)
        admin.wait_ready()
        env = settings_env(settings)
        env.update({"HOOKSTREAM_ADMIN__URL": admin.url, "HOOKSTREAM_ADMIN__TOKEN": TOKEN})
        yield env, admin
    finally:
        code = admin.stop() if admin is not None else 0
        pipeline.stop()
    assert admin is not None
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
    assert code in (0, -signal.SIGTERM), admin.log_path.read_text()[-3000:]
    log_text = admin.log_path.read_text()
    assert "admin API stopped" in log_text and TOKEN not in log_text


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HOOKSTREAM, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_cli_session_from_create_to_notification_status(
    session: tuple[dict[str, str], AdminProcess], receiver: Receiver, tmp_path: Path
) -> None:
    env, admin = session
    resource = f"i{uuid.uuid4().hex[:6]}"
    password_file = tmp_path / "password"
    password_file.write_text("pa55-" + resource)
    created = _run(
        env,
        "webhooks",
        "create",
        "--name",
        "CLI hook",
        "--payload-url",
        receiver.url("/cli"),
        "--trigger",
        f"/items/{resource}",
        "--basic-user",
        "hook",
        "--password-file",
        str(password_file),
    )
    assert created.returncode == 0, created.stderr
    found = re.search(r"^id\s+(\S+)$", created.stdout, re.MULTILINE)
    assert found, created.stdout
    webhook_id = found.group(1)
    assert "basic (user hook, password set: True)" in created.stdout
    assert "pa55-" not in created.stdout

    listed = _run(env, "webhooks", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split() == [
        "ID", "NAME", "ACTIVE", "TRIGGERS", "PAYLOAD", "URL"
    ]  # fmt: skip
    assert re.search(rf"^{webhook_id}\s+CLI hook\s+yes\s+/items/{resource}", listed.stdout, re.M)

    shown = _run(env, "webhooks", "show", webhook_id, "--json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["id"] == webhook_id and document["auth"]["has_password"] is True
    assert "pa55-" not in shown.stdout

    published = _run(
        env, "events", "publish", "--source", "items", "--operation", "update", "--id", resource
    )
    assert published.returncode == 0, published.stderr
    wait_until(lambda: receiver.on("/cli"), 30, "the delivery")

    def delivered() -> str | None:
        result = _run(env, "deliveries", "list", webhook_id)
        assert result.returncode == 0, result.stderr
        return result.stdout if " delivered " in result.stdout else None

    table = wait_until(delivered, 60, "the notification status to show the delivery", step_s=0.5)
    header, row = table.splitlines()[:2]
    assert header.split()[:3] == ["DELIVERY", "TRIGGERED", "(UTC)"]
    assert row.startswith(receiver.on("/cli")[0].headers["webhook-id"])
    assert f"/items/{resource}" in row and " 200 " in f"{row} "

    missing = _run(env, "webhooks", "show", "no-such-webhook")
    assert missing.returncode == 1
    assert "404 no webhook with id 'no-such-webhook'" in missing.stderr
    refused = _run(env, "settings", "show", "--token", "wrong")
    assert refused.returncode == 1 and "401" in refused.stderr
    invalid = _run(env, "settings", "update", "--attempts", "9")
    assert invalid.returncode == 1 and "max_attempts" in invalid.stderr
