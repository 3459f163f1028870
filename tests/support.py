"""Test helpers: real HTTP receivers on 127.0.0.1, service processes, bounded condition waits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, overload

from cryptography.fernet import Fernet
from kafka import KafkaConsumer
from pydantic import SecretStr

from hookstream.client import HookstreamClient
from hookstream.core.errors import DecodeError
from hookstream.records.codec import decode
from hookstream.records.models import DeadLetter, DeliveryStatus, DomainEvent, WebhookConfig, now_ms
from hookstream.settings import Settings

#: What a polled condition yields once it holds.
T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T | None], timeout_s: float, what: str, step_s: float = 0.05
) -> T:
    """Poll ``predicate`` until it returns something truthy, at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        threading.Event().wait(step_s)


@dataclass
class Received:
    """One request a receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Behaviour:
    """How a receiver answers a path: a status code, after an optional delay."""

    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class _ReceiverServer(ThreadingHTTPServer):
    """A listen backlog of 128, not 5: on a starved machine a backlog of 5 turns the test
    harness's own slowness into connect timeouts that look like a failing receiver."""

    request_queue_size = 128
    daemon_threads = True


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every request and answers per path."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.behaviours: dict[str, Behaviour] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            time.monotonic(),
                        )
                    )
                behaviour = receiver.behaviours.get(self.path.split("?")[0], Behaviour())
                if behaviour.delay_s:
                    receiver._stopping.wait(behaviour.delay_s)
                payload = b"ok" if behaviour.status < 400 else b"receiver says no"
                try:
                    self.send_response(behaviour.status)
                    for name, value in behaviour.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.server = _ReceiverServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str, behaviour: Behaviour | None = None) -> str:
        if behaviour is not None:
            self.behaviours[path] = behaviour
        return self.base_url + path

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def close(self) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()


class TopicReader:
    """Reads a topic from the beginning in a background thread and decodes what it can."""

    def __init__(self, bootstrap: str, topic: str, model: type[Any]) -> None:
        self.records: list[Any] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self._model = model
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for records in self._consumer.poll(timeout_ms=100).values():
                for record in records:
                    try:
                        value = decode(record.value, self._model)
                    except DecodeError:
                        continue
                    with self._lock:
                        self.records.append(value)

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self.records)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()


class StatusReader(TopicReader):
    def __init__(self, bootstrap: str, settings: Settings) -> None:
        super().__init__(bootstrap, settings.topics.status, DeliveryStatus)

    def of(self, webhook_id: str) -> list[DeliveryStatus]:
        return [status for status in self.snapshot() if status.webhook_id == webhook_id]


class DeadLetterReader(TopicReader):
    def __init__(self, bootstrap: str, settings: Settings) -> None:
        super().__init__(bootstrap, settings.topics.deadletter, DeadLetter)


class StatusReaderFactory(Protocol):
    """The ``status_reader_factory`` fixture: a status reader, or the dead letters if asked."""

    @overload
    def __call__(
        self, settings: Settings, dead_letters: Literal[False] = False
    ) -> StatusReader: ...

    @overload
    def __call__(self, settings: Settings, dead_letters: Literal[True]) -> DeadLetterReader: ...


#: One Fernet key for the test session; set before any settings are read (see conftest.py).
TEST_SECRETS_KEY = Fernet.generate_key().decode()

#: One address of every class the SSRF guard refuses, with the reason it gives.
BLOCKED_ADDRESSES = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "::1": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "fd12:3456::1": "private",
    "169.254.169.254": "cloud metadata",
    "169.254.10.10": "link-local",
    "fe80::1": "link-local",
    "100.64.0.1": "carrier-grade NAT",
    "224.0.0.1": "multicast",
    "ff02::1": "multicast",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "::ffff:127.0.0.1": "loopback",
    "::ffff:10.0.0.1": "private",
    "fd00:ec2::254": "private",
}


def url_host(address: str) -> str:
    """An IP address as the host part of a URL (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address


def unique_settings(bootstrap: str, **delivery: Any) -> Settings:
    """Settings with topic names and an app id no other test uses."""
    tag = uuid.uuid4().hex[:10]
    prefix = f"t{tag}"
    settings = Settings(
        kafka_bootstrap=bootstrap,
        app_id=f"hs-{tag}",
        group_session_timeout_s=6.0,
        topics={
            "events": [f"{prefix}.events"],
            "webhooks": f"{prefix}.webhooks",
            "webhook_commands": f"{prefix}.commands",
            "deliveries": f"{prefix}.deliveries",
            "retries": f"{prefix}.retries",
            "status": f"{prefix}.status",
            "deadletter": f"{prefix}.deadletter",
            "settings": f"{prefix}.settings",
            "partitions": 3,
        },
        delivery={"allow_plain_http": True, **delivery},
        # The test receivers listen on 127.0.0.1, which the SSRF guard refuses unless allowed.
        security={"allow_networks": ["127.0.0.1/32"], "secrets_keys": [TEST_SECRETS_KEY]},
        # Several pipelines run at once: each service's ops endpoints take a free port.
        ops={"matcher_port": 0, "sender_port": 0},
    )
    shared = [name for name in settings.topics.all_names() if not name.startswith(prefix)]
    assert not shared, f"unique_settings must give every topic a unique name: {shared}"
    return settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment variables that give a service process exactly these settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HOOKSTREAM_")}
    env["HOOKSTREAM_KAFKA_BOOTSTRAP"] = settings.kafka_bootstrap or ""
    env["HOOKSTREAM_APP_ID"] = settings.app_id
    env["HOOKSTREAM_GROUP_SESSION_TIMEOUT_S"] = str(settings.group_session_timeout_s)
    if settings.group_instance_id is not None:
        env["HOOKSTREAM_GROUP_INSTANCE_ID"] = settings.group_instance_id
    topics = settings.topics.model_dump()
    for name, value in topics.items():
        env[f"HOOKSTREAM_TOPICS__{name.upper()}"] = (
            ",".join(value) if isinstance(value, list) else str(value)
        )
    env["HOOKSTREAM_OPS__MATCHER_PORT"] = str(settings.ops.matcher_port)
    env["HOOKSTREAM_OPS__SENDER_PORT"] = str(settings.ops.sender_port)
    env["HOOKSTREAM_LOG_FORMAT"] = settings.log_format
    for prefix, group in (
        ("HOOKSTREAM_SECURITY__", settings.security),
        ("HOOKSTREAM_DELIVERY__", settings.delivery),
        ("HOOKSTREAM_KAFKA_SECURITY__", settings.kafka_security),
        ("HOOKSTREAM_ADMIN__", settings.admin),
    ):
        for name, value in group.model_dump().items():
            text = _env_value(value)
            if text is not None:
                env[f"{prefix}{name.upper()}"] = text
    return env


def _env_value(value: Any) -> str | None:
    """A setting as the environment spells it; None for an unset optional one."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(_env_value(item) or "" for item in value)
    return str(value)


class ServiceProcess:
    """A hookstream service run as the image would run it: ``python -m hookstream.cli NAME``."""

    def __init__(self, name: str, settings: Settings, log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hookstream.cli", name],
            env=settings_env(settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout_s: float = 90.0) -> None:
        def seen() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_text()[-3000:]}"
                )
            return text in self.log_text()

        wait_until(seen, timeout_s, f"{self.name} to log {text!r}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        return self.process.returncode


@dataclass
class Pipeline:
    """A matcher and a sender running against one set of test topics."""

    settings: Settings
    log_dir: Path
    matcher: ServiceProcess | None = None
    sender: ServiceProcess | None = None

    def start_matcher(self) -> ServiceProcess:
        self.matcher = ServiceProcess("matcher", self.settings, self.log_dir)
        self.matcher.wait_for_log("webhook directory caught up")
        return self.matcher

    def start_sender(self) -> ServiceProcess:
        self.sender = ServiceProcess("sender", self.settings, self.log_dir)
        self.sender.wait_for_log("sender ready")
        return self.sender

    def stop(self) -> None:
        for service in (self.sender, self.matcher):
            if service is not None:
                service.stop()


def register_and_wait(client: HookstreamClient, *configs: WebhookConfig) -> None:
    """Register webhooks and wait until the registry has written them all."""
    for config in configs:
        client.register_webhook(config)
    client.wait_for_webhooks({config.webhook_id for config in configs}, timeout_s=30)


def make_event(
    source: str, operation: str, resource_id: str | None = None, **properties: Any
) -> DomainEvent:
    """A domain event happening now, by alice."""
    return DomainEvent(
        event_id=str(uuid.uuid4()),
        source=source,
        operation=operation,
        resource_id=resource_id,
        actor_username="alice",
        actor_user_id="u-1",
        occurred_at=now_ms(),
        properties=dict(properties),
    )
