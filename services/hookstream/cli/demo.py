"""``hookstream demo``: the whole system on one machine, with a receiver that shows what arrives.

It starts (or reuses) the local broker, creates the topics, runs the matcher and the sender as
child processes, serves a demo receiver on 127.0.0.1, declares an event type of its own
(``orders.created``), registers four webhooks (portal JSON with basic auth, device XML with
header auth, one whose receiver always fails, and one on the declared type, which gets the
Standard Webhooks body), publishes sample events and prints every delivery and status record.
It also runs the admin API (with a fresh token it prints), shows the notification status
through it, and leaves it up for the CLI and the console (whose URL it prints).
Ctrl-C stops everything it started.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from hookstream.cli.api_client import AdminClient
from hookstream.cli.demo_data import ORDER_CREATED, demo_custom_webhook, demo_events, demo_webhooks
from hookstream.cli.tables import deliveries_table
from hookstream.client import HookstreamClient
from hookstream.core.errors import BrokerAlreadyRunningError
from hookstream.core.formatting import format_status
from hookstream.kafka.topics import create_topics
from hookstream.localkafka.broker import HOST, LocalBroker
from hookstream.records.models import (
    WebhookConfig,
)
from hookstream.settings import Settings

#: How long the demo waits for the sample deliveries before it says what is missing.
WAIT_S = 90.0


class _Receiver(BaseHTTPRequestHandler):
    """Prints what it receives; answers 500 on /fail to show retries and deactivation."""

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(min(length, 1_000_000))
        failing = self.path.startswith("/fail")
        self.send_response(500 if failing else 200)
        self.end_headers()
        self.wfile.write(b"failing on purpose" if failing else b"ok")
        auth = (
            "basic"
            if self.headers.get("Authorization")
            else ("header" if self.headers.get("X-Api-Key") else "none")
        )
        print(
            f"  receiver <- POST {self.path} [{self.headers.get('Content-Type')}] auth={auth} "
            f"delivery={self.headers.get('webhook-id')} answered {500 if failing else 200}\n"
            f"     {body[:300].decode('utf-8', 'replace')}",
            flush=True,
        )

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence access logs
        return


def _start_receiver() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((HOST, 0), _Receiver)
    threading.Thread(target=server.serve_forever, name="demo-receiver", daemon=True).start()
    return server


def _service(name: str, env: dict[str, str], log_path: str) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(  # noqa: S603 - our own entry point
            [sys.executable, "-m", "hookstream.cli", name],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )


def _admin_port(preferred: int) -> int:
    """The configured admin port if it is free (8080 by default), else any free one."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise OSError(f"no free port on {HOST} for the admin API")


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM both end the demo through its clean-up, even when started in the
    background (where a shell leaves SIGINT ignored)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def run_demo(settings: Settings, once: bool = False) -> int:
    """Run the demo; with ``once`` it stops after the sample deliveries instead of waiting."""
    _stop_on_signals()
    broker = LocalBroker(settings.local_kafka)
    bootstrap, started_broker = _bootstrap(settings, broker)
    for name, state in create_topics(bootstrap, settings.topics, settings.kafka_security).items():
        print(f"topic {name}: {state}")

    receiver = _start_receiver()
    base_url = f"http://{HOST}:{receiver.server_address[1]}"
    print(f"demo receiver listening on {base_url}")
    logs = settings.local_kafka.home / "demo"
    logs.mkdir(parents=True, exist_ok=True)
    admin = _admin_access(settings)
    env = _service_env(bootstrap, admin)
    names = ("matcher", "sender", "admin")
    services = [_service(name, env, str(logs / f"{name}.log")) for name in names]
    print(
        f"matcher, sender and admin API started (logs in {logs}); for the demo receiver only, "
        f"plain HTTP and 127.0.0.1 are allowed"
    )
    try:
        return _exercise(bootstrap, settings, base_url, admin, once)
    except KeyboardInterrupt:
        print("\nstopping everything the demo started", flush=True)
        return 0
    finally:
        _stop_services(services)
        receiver.shutdown()
        if started_broker:
            broker.stop()
            print("stopped the local Kafka broker")


def _bootstrap(settings: Settings, broker: LocalBroker) -> tuple[str, bool]:
    """The cluster the demo uses (the configured one, else a local broker, started unless it
    runs already) and whether the demo started it (then it stops it at the end)."""
    if settings.kafka_bootstrap is not None:
        return settings.kafka_bootstrap, False
    try:
        info = broker.start()
    except BrokerAlreadyRunningError:
        running = broker.info()
        if running is None:  # it stopped meanwhile: the error says what to do
            raise
        print(f"using the local Kafka broker already running at {running.bootstrap}")
        return running.bootstrap, False
    print(f"started a local Kafka broker at {info.bootstrap} (logs: {info.log_file})")
    return info.bootstrap, True


def _admin_access(settings: Settings) -> AdminAccess:
    """The admin API the demo starts: its configured token, else a fresh one."""
    return AdminAccess(
        url=f"http://{HOST}:{_admin_port(settings.admin.port)}",
        token=(
            settings.admin.tokens[0].get_secret_value()
            if settings.admin.tokens
            else secrets.token_urlsafe(24)
        ),
    )


def _service_env(bootstrap: str, admin: AdminAccess) -> dict[str, str]:
    """The environment of the demo's services: this process's, plus the demo's relaxations."""
    return {
        **os.environ,
        "HOOKSTREAM_KAFKA_BOOTSTRAP": bootstrap,
        # The demo receiver is plain HTTP on 127.0.0.1, which production refuses twice: payload
        # URLs must be https, and the SSRF guard blocks loopback unless its network is allowed.
        "HOOKSTREAM_DELIVERY__ALLOW_PLAIN_HTTP": "true",
        "HOOKSTREAM_SECURITY__ALLOW_NETWORKS": "127.0.0.1/32",
        "HOOKSTREAM_DELIVERY__RETRY_INTERVAL_S": "2",
        "HOOKSTREAM_DELIVERY__MAX_ATTEMPTS": "2",
        "HOOKSTREAM_ADMIN__HOST": HOST,
        "HOOKSTREAM_ADMIN__PORT": admin.url.rsplit(":", 1)[1],
        "HOOKSTREAM_ADMIN__TOKENS": admin.token,
    }


def _stop_services(services: list[subprocess.Popen[bytes]]) -> None:
    """Terminate every service, then wait for each; kill those that outlast 30 s."""
    for process in services:
        process.terminate()
    for process in services:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass(frozen=True)
class AdminAccess:
    """Where the demo's admin API listens and the token it accepts."""

    url: str
    token: str


def _exercise(
    bootstrap: str, settings: Settings, base_url: str, admin: AdminAccess, once: bool
) -> int:
    run = uuid.uuid4().hex[:8]
    webhooks = demo_webhooks(run, base_url)
    custom = demo_custom_webhook(run, base_url)
    ids = {webhook.webhook_id for webhook in webhooks}
    with HookstreamClient(bootstrap, settings.topics, settings.kafka_security) as client:
        client.declare_event_type(ORDER_CREATED)
        print(f"declared event type {ORDER_CREATED.name} (hookstream event-types list)")
        for webhook in webhooks:
            client.register_webhook(webhook)
            print(
                f"registered webhook {webhook.webhook_id}: {webhook.triggers} "
                f"-> {webhook.payload_url}"
            )
        client.wait_for_webhooks(ids, timeout_s=WAIT_S)
        _register_on_declared_type(client, custom)
        webhooks.append(custom)
        ids.add(custom.webhook_id)
        for event in demo_events():
            client.publish_event(event)
            print(f"published event {event.source}/{event.operation} {event.resource_id}")
        print("status records (one per attempt):")
        # Expected: 3 delivered, 2 failed attempts of the failing one, and its deactivation.
        expected = 6
        seen = 0
        deadline = time.monotonic() + WAIT_S
        for status in client.statuses(timeout_s=WAIT_S, from_beginning=True):
            if status.webhook_id not in ids:
                continue
            seen += 1
            print("  status   " + format_status(status), flush=True)
            if seen >= expected or time.monotonic() > deadline:
                break
    shown = _show_notification_status(admin, [webhook.webhook_id for webhook in webhooks])
    ok = seen >= expected and shown == len(webhooks)
    if once:
        print(json.dumps({"demo": "ok" if ok else "incomplete", "status_records": seen}))
        return 0 if ok else 1
    print(
        f"\nThe admin console: {admin.url}/console (sign in with the token {admin.token})\n"
        "\nStill running. In another terminal:\n"
        f"  export HOOKSTREAM_ADMIN__URL={admin.url} HOOKSTREAM_ADMIN__TOKEN={admin.token}\n"
        "  .venv/bin/hookstream webhooks list\n"
        f"  .venv/bin/hookstream deliveries list {webhooks[0].webhook_id}\n"
        "  .venv/bin/hookstream events publish --source items --operation update --id 9f3c2b\n"
        "Ctrl-C stops everything the demo started.",
        flush=True,
    )
    while True:
        time.sleep(3600)


def _register_on_declared_type(client: HookstreamClient, webhook: WebhookConfig) -> None:
    """Register a webhook on a declared type. The registry checks triggers against its own view
    of the catalog, which follows the catalog topic: a command that raced ahead of the type is
    refused (dead-lettered), so it is sent once more after a short wait."""
    for attempt in (1, 2):
        client.register_webhook(webhook)
        try:
            client.wait_for_webhooks({webhook.webhook_id}, timeout_s=WAIT_S / 4 * attempt)
        except TimeoutError:
            if attempt == 2:
                raise
            continue
        print(
            f"registered webhook {webhook.webhook_id}: {webhook.triggers} -> {webhook.payload_url}"
        )
        return


def _show_notification_status(admin: AdminAccess, webhook_ids: list[str]) -> int:
    """Print each webhook's notification status from the admin API; how many showed a delivery
    that is no longer pending (the API's view follows the topics, so it may lag a moment)."""
    deadline = time.monotonic() + WAIT_S
    while not _ready(admin.url):
        if time.monotonic() > deadline:
            print(f"the admin API at {admin.url} did not become ready; see its log")
            return 0
        time.sleep(0.5)
    print(f"notification status, from the admin API at {admin.url}:")
    shown = 0
    with AdminClient(admin.url, admin.token) as api:
        for webhook_id in webhook_ids:
            page = api.list_deliveries(webhook_id)
            while time.monotonic() < deadline and not _settled(page):
                time.sleep(0.5)
                page = api.list_deliveries(webhook_id)
            print(f"webhook {webhook_id}:\n{deliveries_table(page)}", flush=True)
            shown += _settled(page)
    return shown


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _settled(page: dict[str, Any]) -> bool:
    deliveries = page["deliveries"]
    return bool(deliveries) and all(d["outcome"] != "pending" for d in deliveries)
