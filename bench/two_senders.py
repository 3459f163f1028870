"""One busy webhook carried by one sender, then by two sender processes, in one run.

One broker, one matcher and sender processes at default settings (8 requests in flight per
webhook per sender), and a receiver in a child process answering each request after
``--answer-ms`` (50 ms by default): so one sender can carry at most 8 / 0.05 = 160 deliveries/s
to the webhook, and its per-webhook limit, not the CPU, is the bottleneck. Each scenario
registers a fresh webhook, publishes ``--events`` events for it at once, and measures
deliveries/s from the first to the last arrival. Scenario "one" runs with one sender; then a
second sender joins (the jobs are keyed by delivery id, so the webhook's jobs spread over both)
and scenario "two" runs. Each is run ``--runs`` times; min/median/max are printed with the
load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from cryptography.fernet import Fernet

from pipeline_throughput import _env, _free_port, _ready, _topic_names, _wait, broker

DEADLINE_S = 300.0


def _receiver(conn: Connection, answer_s: float) -> None:
    """Child process: answer after ``answer_s`` and record arrival times per webhook tag."""
    arrivals: dict[str, list[float]] = {}

    async def busy(request: web.Request) -> web.Response:
        await request.read()
        arrivals.setdefault(request.match_info["tag"], []).append(time.time())
        await asyncio.sleep(answer_s)
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(arrivals.get(request.match_info["tag"], []))

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/busy/{tag}", busy)
        app.router.add_get("/stats/{tag}", stats)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        conn.send(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await runner.cleanup()

    asyncio.run(main())


def _scenario(bootstrap: str, settings: Any, port: int, events: int) -> float:
    """Deliveries/s of one fresh busy webhook sent ``events`` events at once."""
    from kafka import KafkaProducer

    from hookstream.client import HookstreamClient
    from hookstream.records.codec import encode
    from hookstream.records.models import DomainEvent, WebhookConfig, now_ms

    tag = uuid.uuid4().hex[:8]
    client = HookstreamClient(bootstrap, settings.topics)
    config = WebhookConfig(
        webhook_id=f"busy-{tag}",
        name="busy",
        payload_url=f"http://127.0.0.1:{port}/busy/{tag}",
        triggers=[f"/items/{tag}/update"],
    )
    client.register_webhook(config)
    client.wait_for_webhooks({config.webhook_id}, timeout_s=60)
    client.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for n in range(events):
        event = DomainEvent(
            event_id=f"{tag}-{n}",
            source="items",
            operation="update",
            resource_id=tag,
            occurred_at=now_ms(),
        )
        producer.send(settings.topics.events[0], key=f"{tag}{n}".encode(), value=encode(event))
    producer.flush(timeout=60)
    producer.close()

    def arrivals() -> list[float]:
        return httpx.get(f"http://127.0.0.1:{port}/stats/{tag}", timeout=10).json()  # type: ignore[no-any-return]

    _wait(lambda: len(arrivals()) >= events, DEADLINE_S, f"{events} deliveries")
    got = sorted(arrivals())
    return round((len(got) - 1) / (got[-1] - got[0]), 1)


def _start(name: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "hookstream.cli", name],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )


def run(events: int, answer_s: float, runs: int) -> dict[str, Any]:
    os.environ.setdefault("HOOKSTREAM_SECURITY__SECRETS_KEYS", Fernet.generate_key().decode())
    from hookstream.kafka.topics import create_topics
    from hookstream.settings import Settings

    tag = uuid.uuid4().hex[:8]
    parent, child = multiprocessing.Pipe()
    receiver = multiprocessing.get_context("spawn").Process(
        target=_receiver, args=(child, answer_s), daemon=True
    )
    receiver.start()
    port = parent.recv()
    services: list[subprocess.Popen[bytes]] = []
    rates: dict[str, list[float]] = {"one": [], "two": []}
    loads: list[float] = []
    logs = Path(tempfile.gettempdir())
    try:
        with broker() as bootstrap:
            ports = {"matcher": _free_port(), "sender": _free_port()}
            env = _env(bootstrap, tag, 64, ports)
            settings = Settings(kafka_bootstrap=bootstrap, topics=_topic_names(env))
            create_topics(bootstrap, settings.topics)
            for name in ("matcher", "sender"):
                services.append(_start(name, env, logs / f"bench-{tag}-{name}.log"))
            _wait(
                lambda: _ready(ports["matcher"]) and _ready(ports["sender"]),
                120,
                "matcher and sender",
            )
            for _ in range(runs):
                rates["one"].append(_scenario(bootstrap, settings, port, events))
                loads.append(os.getloadavg()[0])
            second = {**env, "HOOKSTREAM_OPS__SENDER_PORT": str(_free_port())}
            services.append(_start("sender", second, logs / f"bench-{tag}-sender2.log"))
            _wait(lambda: _ready(int(second["HOOKSTREAM_OPS__SENDER_PORT"])), 120, "sender 2")
            # A warm-up scenario lets the group settle (the join rebalances both senders).
            _scenario(bootstrap, settings, port, events // 4)
            for _ in range(runs):
                rates["two"].append(_scenario(bootstrap, settings, port, events))
                loads.append(os.getloadavg()[0])
    finally:
        for process in services:
            process.terminate()
        for process in services:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        parent.send("stop")
        receiver.join(timeout=10)

    def spread(values: list[float]) -> list[float]:
        ordered = sorted(values)
        return [ordered[0], statistics.median(ordered), ordered[-1]]

    return {
        "benchmark": "two_senders",
        "events": events,
        "answer_ms": answer_s * 1000,
        "runs": runs,
        "load_average_1m": spread(loads),
        "deliveries_per_s": {key: spread(values) for key, values in rates.items()},
        "speed_up_median": round(
            statistics.median(rates["two"]) / statistics.median(rates["one"]), 2
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1600, help="events per scenario")
    parser.add_argument("--answer-ms", type=float, default=50.0, help="receiver's answer time")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    result = run(args.events, args.answer_ms / 1000, args.runs)
    one, two = result["deliveries_per_s"]["one"], result["deliveries_per_s"]["two"]
    print(f"one sender  deliveries/s min/median/max {one}")
    print(f"two senders deliveries/s min/median/max {two} ({result['speed_up_median']}x)")
    print(f"load average (1 min) min/median/max: {result['load_average_1m']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
