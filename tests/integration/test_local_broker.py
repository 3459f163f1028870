"""`hookstream kafka start|status|stop` as a user runs them, in a home of their own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from hookstream.kafka.topics import describe
from hookstream.settings import LocalKafkaSettings

pytestmark = pytest.mark.integration

HOOKSTREAM = [sys.executable, "-m", "hookstream.cli"]


def _env(home: Path, port: int = 0, path: str | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HOOKSTREAM_") and k != "KAFKA_BOOTSTRAP_SERVERS"
    }
    env["HOOKSTREAM_LOCAL_KAFKA__HOME"] = str(home)
    env["HOOKSTREAM_LOCAL_KAFKA__PORT"] = str(port)
    if path is not None:
        env["PATH"] = path
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HOOKSTREAM, *args], env=env, capture_output=True, text=True, timeout=180, check=False
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh home that shares the already-fetched jars, so the test downloads nothing."""
    cached = LocalKafkaSettings().home / f"kafka-{LocalKafkaSettings().version}"
    if cached.exists():
        (tmp_path / cached.name).symlink_to(cached)
    return tmp_path


def test_start_twice_status_stop(home: Path) -> None:
    env = _env(home)
    started = _run(["kafka", "start"], env)
    try:
        assert started.returncode == 0, started.stderr
        assert "is ready at 127.0.0.1:" in started.stdout
        assert "logs: " in started.stdout
        again = _run(["kafka", "start"], env)
        assert again.returncode == 0
        assert "already runs" in again.stdout
        status = _run(["kafka", "status"], env)
        assert status.returncode == 0
        assert ": ready" in status.stdout
    finally:
        stopped = _run(["kafka", "stop"], env)
    assert stopped.returncode == 0
    assert "stopped" in stopped.stdout
    after = _run(["kafka", "status"], env)
    assert after.returncode == 3
    assert "not running" in after.stdout


def test_port_taken_is_said_plainly(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(["kafka", "start"], _env(home, port=port))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is taken" in result.stderr
    assert "HOOKSTREAM_LOCAL_KAFKA__PORT" in result.stderr


def test_java_missing_is_said_plainly(home: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin-without-java"
    bin_dir.mkdir()
    for tool in ("mvn",):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    result = _run(["kafka", "start"], _env(home, path=str(bin_dir)))
    assert result.returncode == 1
    assert "'java' was not found on PATH" in result.stderr
    assert "Java 17" in result.stderr


def test_three_broker_cluster_start_topics_status_stop(home: Path) -> None:
    """`kafka start --brokers 3`: three nodes, topics with 3 replicas and min ISR 2, the leaders
    in `kafka status`, and `kafka stop` stops them all."""
    env = _env(home)
    started = _run(["kafka", "start", "--brokers", "3"], env)
    try:
        assert started.returncode == 0, started.stderr
        assert "a cluster of 3 brokers is ready at" in started.stdout
        bootstrap = started.stdout.split("is ready at ", 1)[1].split()[0]
        assert len(bootstrap.split(",")) == 3
        single = _run(["kafka", "start"], env)
        assert single.returncode == 1
        assert "a local cluster runs" in single.stderr
        created = _run(["topics", "create"], {**env, "HOOKSTREAM_TOPICS__REPLICATION_FACTOR": "3"})
        assert created.returncode == 0, created.stderr
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            state = describe(admin, ["hookstream.deliveries"])["hookstream.deliveries"]
            assert state.replication_factor == 3
            assert state.configs["min.insync.replicas"] == "2"
            assert state.configs["unclean.leader.election.enable"] == "false"
        finally:
            admin.close()
        status = _run(["kafka", "status"], env)
        assert status.returncode == 0, status.stderr
        for node_id in (1, 2, 3):
            assert f"broker {node_id}  127.0.0.1:" in status.stdout
        assert status.stdout.count("  up (pid ") == 3
        assert "hookstream.deliveries: 0=" in status.stdout
    finally:
        stopped = _run(["kafka", "stop"], env)
    assert stopped.returncode == 0
    assert "stopped the local Kafka cluster of 3 brokers" in stopped.stdout
    after = _run(["kafka", "status"], env)
    assert after.returncode == 3
    assert "not running" in after.stdout
