"""End to end: events produced -> deliveries received, against a raw aiohttp client as baseline.

One run starts (or uses) a broker, a receiver in a child process, the matcher and the sender as
processes (at their default log level), registers W webhooks for /items/update, publishes E
events as fast as kafka-python goes and waits until the receiver has E*W deliveries. Right after,
in the same run, a raw aiohttp client POSTs the same number of same bodies to the same receiver
with the same concurrency: the baseline that hookstream's deliveries/s and the sender's CPU per
delivery are divided by. CPU time is read per process from /proc (utime + stime) over the
delivery phase; ``--runs`` repeats the pair (pipeline, then raw) and reports min/median/max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from aiohttp import web
from cryptography.fernet import Fernet

DEADLINE_S = 300.0


def _receiver(conn: Connection) -> None:
    """Child process: count deliveries and their latency (arrival - the event's ``when``)."""
    latencies: list[float] = []
    raw = 0

    async def deliver(request: web.Request) -> web.Response:
        body = await request.json()
        latencies.append(time.time() * 1000 - body["events"][0]["when"])
        return web.Response(text="ok")

    async def baseline(request: web.Request) -> web.Response:
        nonlocal raw
        await request.read()
        raw += 1
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"count": len(latencies), "raw": raw, "latencies_ms": latencies})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/deliver", deliver)
        app.router.add_post("/raw", baseline)
        app.router.add_get("/stats", stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        conn.send(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # wait for "stop"
        await runner.cleanup()

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def broker() -> Iterator[str]:
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


def _env(bootstrap: str, tag: str, concurrency: int, ports: dict[str, int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSTREAM_")}
    env.update(
        {
            "HOOKSTREAM_KAFKA_BOOTSTRAP": bootstrap,
            "HOOKSTREAM_APP_ID": f"bench-{tag}",
            "HOOKSTREAM_DELIVERY__ALLOW_PLAIN_HTTP": "true",
            "HOOKSTREAM_DELIVERY__CONCURRENCY": str(concurrency),
            "HOOKSTREAM_SECURITY__ALLOW_NETWORKS": "127.0.0.1/32",
            "HOOKSTREAM_SECURITY__SECRETS_KEYS": os.environ["HOOKSTREAM_SECURITY__SECRETS_KEYS"],
            "HOOKSTREAM_OPS__MATCHER_PORT": str(ports["matcher"]),
            "HOOKSTREAM_OPS__SENDER_PORT": str(ports["sender"]),
        }
    )
    for name in (
        "events",
        "webhooks",
        "webhook_commands",
        "deliveries",
        "retries",
        "status",
        "deadletter",
        "settings",
    ):
        env[f"HOOKSTREAM_TOPICS__{name.upper()}"] = f"bench-{tag}.{name}"
    return env


def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout_s:g} s waiting for {what}")
        time.sleep(0.1)


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _raw_baseline(url: str, requests: int, concurrency: int, body: bytes) -> float:
    """Requests/s of a plain aiohttp client doing the same number of POSTs."""
    limit = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one() -> None:
            async with (
                limit,
                session.post(url, data=body, headers={"Content-Type": "application/json"}) as r,
            ):
                await r.read()

        start = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*[one() for _ in range(requests)]), DEADLINE_S)
        return requests / (time.perf_counter() - start)


def run(
    events: int,
    webhooks: int,
    concurrency: int,
    rate: float,
    profile: Path | None = None,
    profile_matcher: Path | None = None,
) -> dict[str, Any]:
    os.environ.setdefault("HOOKSTREAM_SECURITY__SECRETS_KEYS", Fernet.generate_key().decode())
    from kafka import KafkaProducer

    from hookstream.client import HookstreamClient
    from hookstream.core.payloads import build_payload
    from hookstream.core.triggers import TriggerFamily
    from hookstream.kafka.topics import create_topics
    from hookstream.records.codec import encode
    from hookstream.records.models import DomainEvent, WebhookConfig, now_ms
    from hookstream.settings import Settings

    tag = uuid.uuid4().hex[:8]
    parent, child = multiprocessing.Pipe()
    receiver = multiprocessing.get_context("spawn").Process(
        target=_receiver, args=(child,), daemon=True
    )
    receiver.start()
    port = parent.recv()
    services: list[subprocess.Popen[bytes]] = []
    try:
        with broker() as bootstrap:
            ports = {"matcher": _free_port(), "sender": _free_port()}
            env = _env(bootstrap, tag, concurrency, ports)
            settings = Settings(
                kafka_bootstrap=bootstrap, topics={n: v for n, v in _topic_names(env).items()}
            )
            create_topics(bootstrap, settings.topics)
            logs = Path(tempfile.gettempdir())
            for name in ("matcher", "sender"):
                with (logs / f"bench-{tag}-{name}.log").open("wb") as log_file:
                    services.append(
                        subprocess.Popen(
                            [sys.executable, "-m", "hookstream.cli", name],
                            env=env,
                            stdout=log_file,
                            stderr=subprocess.STDOUT,
                        )
                    )
            _wait(
                lambda: _ready(ports["matcher"]) and _ready(ports["sender"]),
                120,
                "matcher and sender",
            )
            client = HookstreamClient(bootstrap, settings.topics)
            configs = [
                WebhookConfig(
                    webhook_id=f"bench-{n}",
                    name=f"bench {n}",
                    payload_url=f"http://127.0.0.1:{port}/deliver",
                    triggers=["/items/update"],
                )
                for n in range(webhooks)
            ]
            for config in configs:
                client.register_webhook(config)
            client.wait_for_webhooks({c.webhook_id for c in configs}, timeout_s=60)
            client.close()

            producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
            spy = _py_spy(services[1].pid, profile) if profile is not None else None
            matcher_spy = _matcher_spy(services[0].pid, profile_matcher)
            cpu_before = {p.pid: _cpu_s(p.pid) for p in services}
            start = time.perf_counter()
            for n in range(events):
                if rate > 0:  # pace the producer: latency at a sustainable rate, not of a backlog
                    lag = start + n / rate - time.perf_counter()
                    if lag > 0:
                        time.sleep(lag)
                event = DomainEvent(
                    event_id=f"{tag}-{n}",
                    source="items",
                    operation="update",
                    resource_id=f"item{n}",
                    occurred_at=now_ms(),
                )
                producer.send(
                    settings.topics.events[0], key=f"item{n}".encode(), value=encode(event)
                )
            producer.flush(timeout=60)
            produced_s = time.perf_counter() - start
            producer.close()
            expected = events * webhooks

            def stats() -> dict[str, Any]:
                return httpx.get(f"http://127.0.0.1:{port}/stats", timeout=10).json()  # type: ignore[no-any-return]

            _wait(lambda: stats()["count"] >= expected, DEADLINE_S, f"{expected} deliveries")
            elapsed = time.perf_counter() - start
            cpu = {p.pid: _cpu_s(p.pid) - cpu_before[p.pid] for p in services}
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            _stop_spy(matcher_spy)
            latencies = sorted(stats()["latencies_ms"])
            # The baseline sends the very body hookstream sends, to the same receiver.
            sample = DomainEvent(
                event_id="raw",
                source="items",
                operation="update",
                resource_id="item0",
                occurred_at=0,
            )
            body = build_payload(
                configs[0], TriggerFamily.PORTAL, "/items/update", [sample], 0, "https://p.example/"
            ).body
            raw_cpu_before = time.process_time()
            raw_rps = asyncio.run(
                _raw_baseline(f"http://127.0.0.1:{port}/raw", expected, concurrency, body)
            )
            raw_cpu_s = time.process_time() - raw_cpu_before
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
    deliveries_per_s = expected / elapsed
    sender_us = cpu[services[1].pid] / expected * 1e6
    raw_us = raw_cpu_s / expected * 1e6
    return {
        "benchmark": "pipeline",
        "events": events,
        "webhooks": webhooks,
        "concurrency": concurrency,
        "rate": rate,
        "deliveries": expected,
        "produce_s": round(produced_s, 3),
        "deliveries_per_s": round(deliveries_per_s, 1),
        "latency_ms": {
            "p50": round(statistics.median(latencies), 1),
            "p99": round(latencies[int(len(latencies) * 0.99) - 1], 1),
            "max": round(latencies[-1], 1),
        },
        "raw_aiohttp_requests_per_s": round(raw_rps, 1),
        "ratio_to_raw_aiohttp": round(deliveries_per_s / raw_rps, 3),
        "matcher_cpu_us_per_delivery": round(cpu[services[0].pid] / expected * 1e6, 1),
        "sender_cpu_us_per_delivery": round(sender_us, 1),
        "raw_aiohttp_cpu_us_per_request": round(raw_us, 1),
        "sender_cpu_ratio_to_raw": round(sender_us / raw_us, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def _py_spy(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """py-spy recording the sender until SIGINT (a raw collapsed-stack file)."""
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(  # noqa: S603 - our own venv's py-spy
        [
            str(spy),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "-o",
            str(output),
            "-r",
            "200",
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _matcher_spy(pid: int, output: Path | None) -> subprocess.Popen[bytes] | None:
    """``--profile-matcher``: py-spy the matcher as ``--profile`` does the sender."""
    return _py_spy(pid, output) if output is not None else None


def _stop_spy(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)


def _topic_names(env: dict[str, str]) -> dict[str, Any]:
    names: dict[str, Any] = {}
    for key, value in env.items():
        if key.startswith("HOOKSTREAM_TOPICS__"):
            name = key.removeprefix("HOOKSTREAM_TOPICS__").lower()
            names[name] = [value] if name == "events" else value
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--webhooks", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=0.0, help="events/s; 0 = as fast as possible")
    parser.add_argument("--runs", type=int, default=1, help="pipeline + raw pairs, interleaved")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the sender of each run into PROFILE-<run>.txt"
    )
    parser.add_argument(
        "--profile-matcher",
        type=Path,
        help="py-spy the matcher of each run into PROFILE_MATCHER-<run>.txt",
    )
    args = parser.parse_args()
    results = []
    for index in range(args.runs):
        profile = (
            args.profile.with_name(f"{args.profile.stem}-{index}.txt") if args.profile else None
        )
        matcher_profile = (
            args.profile_matcher.with_name(f"{args.profile_matcher.stem}-{index}.txt")
            if args.profile_matcher
            else None
        )
        result = run(
            args.events, args.webhooks, args.concurrency, args.rate, profile, matcher_profile
        )
        results.append(result)
        latency = result["latency_ms"]
        print(
            f"{result['deliveries']} deliveries ({result['events']} events x "
            f"{result['webhooks']} webhooks, concurrency {result['concurrency']}): "
            f"{result['deliveries_per_s']}/s, latency p50 {latency['p50']} ms p99 "
            f"{latency['p99']} ms max {latency['max']} ms; raw aiohttp "
            f"{result['raw_aiohttp_requests_per_s']}/s; ratio {result['ratio_to_raw_aiohttp']}; "
            f"CPU per delivery: sender {result['sender_cpu_us_per_delivery']} us, matcher "
            f"{result['matcher_cpu_us_per_delivery']} us, raw client "
            f"{result['raw_aiohttp_cpu_us_per_request']} us per request (sender/raw "
            f"{result['sender_cpu_ratio_to_raw']}x); load {result['load_average_1m']}",
            flush=True,
        )
        print(json.dumps(result), flush=True)
    if len(results) > 1:
        for key in (
            "ratio_to_raw_aiohttp",
            "sender_cpu_us_per_delivery",
            "raw_aiohttp_cpu_us_per_request",
            "sender_cpu_ratio_to_raw",
            "matcher_cpu_us_per_delivery",
            "deliveries_per_s",
            "load_average_1m",
        ):
            values = sorted(r[key] for r in results)
            print(f"{key}: {values[0]} / {statistics.median(values)} / {values[-1]}")


if __name__ == "__main__":
    main()
