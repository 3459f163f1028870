"""Peak memory (VmHWM) of the matcher, the sender and the admin API holding W webhooks, and of
the admin API holding D retained deliveries: the figures behind the requests and limits in k8s/.

The webhook configs are written straight to a fresh webhooks topic with the codec (as the
registry writes them: key, Avro value, revision header), which takes seconds where the admin API
would take minutes. Each service then starts as a process at its default settings (only the
broker, app id, topic names, ports, keys and tokens are set), reads its topics to the end, and
its peak resident memory is read from /proc/<pid>/status once it is ready and again after a
quiet period. The admin API's routes that list webhooks are called as well, since a page of a
large directory is part of its working set. Second phase: D delivery jobs and D final status
records are written and a fresh admin API is measured again.

    python bench/sizing.py --webhooks 100000 --deliveries 100000

Uses HOOKSTREAM_KAFKA_BOOTSTRAP if set, else starts a local broker.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

#: How long each service may take to read its topics to the end.
READY_TIMEOUT_S = 600.0
#: How long a service is watched after it is ready: the peak of the catch-up garbage settles.
QUIET_S = 10.0
TOPIC_NAMES = (
    "events",
    "webhooks",
    "webhook_commands",
    "deliveries",
    "retries",
    "status",
    "deadletter",
    "settings",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _broker() -> Iterator[str]:
    existing = os.environ.get("HOOKSTREAM_KAFKA_BOOTSTRAP")
    if existing:
        yield existing
        return
    from hookstream.localkafka.broker import LocalBroker
    from hookstream.settings import LocalKafkaSettings

    with tempfile.TemporaryDirectory() as workdir:
        local = LocalBroker(LocalKafkaSettings(port=0, controller_port=0), workdir=Path(workdir))
        info = local.start()
        try:
            yield info.bootstrap
        finally:
            local.stop()


def _env(bootstrap: str, tag: str, ports: dict[str, int], data_dir: Path) -> dict[str, str]:
    """Default settings, except where this run's broker, topics, ports and keys are."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSTREAM_")}
    env.update(
        {
            "HOOKSTREAM_KAFKA_BOOTSTRAP": bootstrap,
            "HOOKSTREAM_APP_ID": f"sizing-{tag}",
            "HOOKSTREAM_LOG_LEVEL": "WARNING",
            "HOOKSTREAM_SECURITY__SECRETS_KEYS": os.environ["HOOKSTREAM_SECURITY__SECRETS_KEYS"],
            "HOOKSTREAM_ADMIN__TOKENS": "sizing-token",
            "HOOKSTREAM_OPS__MATCHER_PORT": str(ports["matcher"]),
            "HOOKSTREAM_OPS__SENDER_PORT": str(ports["sender"]),
            "HOOKSTREAM_ADMIN__PORT": str(ports["admin"]),
            "HOOKSTREAM_MATCHER__DATA_DIR": str(data_dir),
        }
    )
    for name in TOPIC_NAMES:
        env[f"HOOKSTREAM_TOPICS__{name.upper()}"] = f"sizing-{tag}.{name}"
    return env


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout_s:g} s waiting for {what}")
        time.sleep(0.2)


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _status_kib(pid: int) -> dict[str, int]:
    """VmHWM (peak resident) and VmRSS (resident now) of a process, in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            found[name] = int(value.split()[0])
    return found


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _webhook(n: int, receiver: str) -> Any:
    from hookstream.records.models import WebhookConfig

    secret = "whsec_" + base64.b64encode(n.to_bytes(4, "big") * 8).decode()
    return WebhookConfig(
        webhook_id=f"sizing-{n:07d}",
        name=f"Tenant {n} item updates",
        payload_url=f"{receiver}/tenants/{n}/hooks/items",
        triggers=[f"/items/item{n}/update", "/users/signin"],
        secret=secret,
        owner_id=f"owner-{n % 1000}",
        revision=1,
    )


def write_webhooks(bootstrap: str, topic: str, count: int) -> None:
    """``count`` webhook configs, as the registry writes them."""
    from kafka import KafkaProducer

    from hookstream.records.codec import encode
    from hookstream.views.directory import REVISION_HEADER

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=20, batch_size=256 * 1024
    )
    for n in range(count):
        config = _webhook(n, "https://hooks.example.com")
        producer.send(
            topic,
            key=config.webhook_id.encode(),
            value=encode(config),
            headers=[(REVISION_HEADER, str(config.revision).encode())],
        )
    producer.flush(timeout=300)
    producer.close()


def write_deliveries(bootstrap: str, topics: dict[str, str], count: int, webhooks: int) -> None:
    """``count`` delivery jobs and a final ``delivered`` status record for each."""
    from kafka import KafkaProducer

    from hookstream.records.codec import encode
    from hookstream.records.models import DeliveryJob, DeliveryStatus, DomainEvent, Outcome, now_ms

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=20, batch_size=256 * 1024
    )
    now = now_ms()
    for n in range(count):
        webhook_id = f"sizing-{n % max(webhooks, 1):07d}"
        delivery_id = uuid.UUID(int=n).hex
        event = DomainEvent(
            event_id=f"ev-{n}",
            source="items",
            operation="update",
            resource_id=f"item{n}",
            actor_username=f"user{n % 5000}",
            occurred_at=now,
            properties={"title": f"Item {n}", "tags": ["a", "b"]},
        )
        job = DeliveryJob(
            delivery_id=delivery_id,
            webhook_id=webhook_id,
            trigger="/items/update",
            events=[event],
            due_at=now,
            triggered_at=now,
        )
        status = DeliveryStatus(
            delivery_id=delivery_id,
            webhook_id=webhook_id,
            webhook_name=f"Tenant {n} item updates",
            event_ids=[event.event_id],
            trigger="/items/update",
            attempt=1,
            max_attempts=3,
            attempted_at=now,
            duration_ms=42.0,
            outcome=Outcome.DELIVERED,
            final=True,
            http_status=200,
            response_excerpt='{"ok":true}',
        )
        key = webhook_id.encode()
        producer.send(topics["deliveries"], key=key, value=encode(job))
        producer.send(topics["status"], key=key, value=encode(status))
    producer.flush(timeout=300)
    producer.close()


@contextmanager
def service(name: str, env: dict[str, str], logs: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``hookstream NAME`` as a process; stopped with SIGTERM (then killed) on the way out."""
    with (logs / f"{name}.log").open("wb") as log_file:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "hookstream.cli", name],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def measure(
    processes: dict[str, tuple[subprocess.Popen[bytes], int]], logs: Path, poke: Callable[[], None]
) -> dict[str, dict[str, float]]:
    """Wait for every process to be ready, poke them, watch them quietly; their peaks."""
    started = time.monotonic()
    ready_s: dict[str, float] = {}

    def all_ready() -> bool:
        for name, (process, port) in processes.items():
            if process.poll() is not None:
                # The log's folder goes with the run: its end is the message.
                tail = (logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(
                    f"{name} exited with {process.returncode}; its log ends:\n{tail}"
                )
            if name not in ready_s and _ready(port):
                ready_s[name] = time.monotonic() - started
        return len(ready_s) == len(processes)

    _wait(all_ready, READY_TIMEOUT_S, ", ".join(processes) + " to be ready")
    poke()
    quiet_until = time.monotonic() + QUIET_S
    while time.monotonic() < quiet_until:  # a measuring window, not a wait for a condition
        time.sleep(1)
    result: dict[str, dict[str, float]] = {}
    for name, (process, _port) in processes.items():
        kib = _status_kib(process.pid)
        result[name] = {
            "ready_s": round(ready_s[name], 1),
            "peak_rss_mib": round(kib["VmHWM"] / 1024, 1),
            "rss_mib": round(kib["VmRSS"] / 1024, 1),
            "cpu_s": round(_cpu_s(process.pid), 1),
        }
    return result


def _list_webhooks(port: int) -> None:
    headers = {"Authorization": "Bearer sizing-token"}
    answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/webhooks", headers=headers, timeout=120)
    answer.raise_for_status()


def run(webhooks: int, deliveries: int) -> dict[str, Any]:
    os.environ.setdefault("HOOKSTREAM_SECURITY__SECRETS_KEYS", Fernet.generate_key().decode())
    from hookstream.kafka.topics import create_topics
    from hookstream.settings import Settings

    tag = uuid.uuid4().hex[:8]
    results: dict[str, Any] = {"benchmark": "sizing", "webhooks": webhooks}
    with _broker() as bootstrap, tempfile.TemporaryDirectory() as workdir:
        logs = Path(workdir)
        ports = {name: _free_port() for name in ("matcher", "sender", "admin")}
        env = _env(bootstrap, tag, ports, logs / "matcher-data")
        topics = {n: env[f"HOOKSTREAM_TOPICS__{n.upper()}"] for n in TOPIC_NAMES}
        settings = Settings(
            kafka_bootstrap=bootstrap,
            topics={n: [v] if n == "events" else v for n, v in topics.items()},
        )
        create_topics(bootstrap, settings.topics)
        start = time.perf_counter()
        write_webhooks(bootstrap, topics["webhooks"], webhooks)
        results["write_webhooks_s"] = round(time.perf_counter() - start, 1)
        with (
            service("matcher", env, logs) as matcher,
            service("sender", env, logs) as sender,
            service("admin", env, logs) as admin,
        ):
            results["services"] = measure(
                {
                    "matcher": (matcher, ports["matcher"]),
                    "sender": (sender, ports["sender"]),
                    "admin": (admin, ports["admin"]),
                },
                logs,
                lambda: _list_webhooks(ports["admin"]),
            )
        if deliveries:
            start = time.perf_counter()
            write_deliveries(bootstrap, topics, deliveries, webhooks)
            results["deliveries"] = deliveries
            results["write_deliveries_s"] = round(time.perf_counter() - start, 1)
            with service("admin", env, logs) as admin:
                results["admin_with_deliveries"] = measure(
                    {"admin": (admin, ports["admin"])},
                    logs,
                    lambda: _list_webhooks(ports["admin"]),
                )["admin"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--webhooks", type=int, default=100_000)
    parser.add_argument(
        "--deliveries", type=int, default=100_000, help="retained deliveries (0: skip)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = parser.parse_args()
    result = run(args.webhooks, args.deliveries)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'process':<24} {'ready s':>8} {'peak RSS MiB':>13} {'RSS MiB':>8} {'CPU s':>6}")
    rows = dict(result["services"])
    if "admin_with_deliveries" in result:
        rows[f"admin +{result['deliveries']} deliveries"] = result["admin_with_deliveries"]
    for name, row in rows.items():
        print(
            f"{name:<24} {row['ready_s']:>8} {row['peak_rss_mib']:>13} {row['rss_mib']:>8} "
            f"{row['cpu_s']:>6}"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
