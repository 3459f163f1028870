"""A fast webhook alone, and beside a slow, a hung and a refusing one, in one run.

One broker, one matcher and one sender at default settings (processes), and a receiver in a
child process. Each scenario registers a fresh fast webhook (``/fast`` answers at once) and, but
for "alone", a noisy one: ``/slow`` answers after 5 s, ``/hang`` answers after 60 s (past the
default 10 s read timeout), or a port where nothing listens. The noisy webhook first gets a
backlog of events, then the fast one is offered ``--rate`` events/s for ``--events`` events
(noisy events keep coming at the same rate), and the noisy webhook is deleted at the end of
its scenario so its backlog does not spill into the next one. Measured are the fast webhook's
deliveries/s (first publish to last arrival) and its latency (arrival - the event's time).
Latency percentiles are of the steady state: events of the first ``--warmup-s`` of the fast load
are left out (in every scenario, "alone" included), because they measure the start of a
scenario (a new webhook's first connection, the matcher taking in the noisy backlog published
just before) rather than a neighbour holding the fast webhook up; the p99 of every event is
printed beside it. Each scenario is run ``--runs`` times; min/median/max are printed with the
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

NOISE = {"alone": None, "slow": "/slow", "hung": "/hang", "refused": "refused"}
DEADLINE_S = 300.0


def _receiver(conn: Connection) -> None:
    """Child process: record the fast webhook's arrivals; answer the noisy paths slowly."""
    arrivals: dict[str, list[tuple[float, float]]] = {}

    async def fast(request: web.Request) -> web.Response:
        body = await request.json()
        now_ms = time.time() * 1000
        arrivals.setdefault(request.match_info["tag"], []).append(
            (now_ms, now_ms - body["events"][0]["when"])
        )
        return web.Response(text="ok")

    async def slow(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(5)
        return web.Response(text="ok")

    async def hang(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(60)
        return web.Response(text="late")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(arrivals.get(request.match_info["tag"], []))

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/fast/{tag}", fast)
        app.router.add_post("/slow", slow)
        app.router.add_post("/hang", hang)
        app.router.add_get("/stats/{tag}", stats)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        conn.send(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await runner.cleanup()

    asyncio.run(main())


def _percentile(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    return round(ordered[max(0, int(len(ordered) * percent / 100) - 1)], 1)


def _scenario(
    bootstrap: str,
    settings: Any,
    port: int,
    noise: str,
    load: tuple[int, int, float, float],
) -> dict[str, Any]:
    from kafka import KafkaProducer

    from hookstream.client import HookstreamClient
    from hookstream.records.codec import encode
    from hookstream.records.models import DomainEvent, WebhookConfig, now_ms

    events, backlog, rate, warmup_s = load
    tag = uuid.uuid4().hex[:8]
    path = NOISE[noise]
    client = HookstreamClient(bootstrap, settings.topics)
    configs = [
        WebhookConfig(
            webhook_id=f"fast-{tag}",
            name="fast",
            payload_url=f"http://127.0.0.1:{port}/fast/{tag}",
            triggers=[f"/items/{tag}/update"],
        )
    ]
    if path is not None:
        url = (
            f"http://127.0.0.1:{_free_port()}/dead"
            if path == "refused"
            else f"http://127.0.0.1:{port}{path}"
        )
        configs.append(
            WebhookConfig(
                webhook_id=f"noisy-{tag}",
                name=noise,
                payload_url=url,
                triggers=[f"/groups/{tag}/update"],
            )
        )
    for config in configs:
        client.register_webhook(config)
    client.wait_for_webhooks({c.webhook_id for c in configs}, timeout_s=60)
    client.close()

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    topic = settings.topics.events[0]

    def publish(source: str, n: int) -> None:
        event = DomainEvent(
            event_id=f"{tag}-{source}-{n}",
            source=source,
            operation="update",
            resource_id=tag,
            occurred_at=now_ms(),
        )
        producer.send(topic, key=f"{tag}{n}".encode(), value=encode(event))

    if path is not None:
        for n in range(backlog):
            publish("groups", n)
        producer.flush(timeout=60)
    start = time.time()
    for n in range(events):
        lag = start + n / rate - time.time()
        if lag > 0:
            time.sleep(lag)
        publish("items", n)
        if path is not None:
            publish("groups", backlog + n)
    producer.flush(timeout=60)
    producer.close()

    def arrivals() -> list[list[float]]:
        return httpx.get(f"http://127.0.0.1:{port}/stats/{tag}", timeout=10).json()  # type: ignore[no-any-return]

    _wait(lambda: len(arrivals()) >= events, DEADLINE_S, f"{events} fast deliveries ({noise})")
    got = arrivals()
    # The noisy webhook's backlog would otherwise go on into the next scenarios: delete it (its
    # remaining jobs are skipped) so each scenario measures beside one noisy webhook.
    with HookstreamClient(bootstrap, settings.topics) as cleanup:
        for config in configs[1:]:
            cleanup.delete_webhook(config.webhook_id)
    last_ms = max(at for at, _ in got)
    steady_from_ms = (start + warmup_s) * 1000
    steady = [latency for at, latency in got if at - latency >= steady_from_ms]
    return {
        "noise": noise,
        "deliveries_per_s": round(len(got) / (last_ms / 1000 - start), 1),
        "p50_ms": _percentile(steady, 50),
        "p99_ms": _percentile(steady, 99),
        "p99_all_ms": _percentile([latency for _, latency in got], 99),
    }


def run(events: int, backlog: int, rate: float, runs: int, warmup_s: float) -> dict[str, Any]:
    os.environ.setdefault("HOOKSTREAM_SECURITY__SECRETS_KEYS", Fernet.generate_key().decode())
    from hookstream.kafka.topics import create_topics
    from hookstream.settings import Settings

    tag = uuid.uuid4().hex[:8]
    parent, child = multiprocessing.Pipe()
    receiver = multiprocessing.get_context("spawn").Process(
        target=_receiver, args=(child,), daemon=True
    )
    receiver.start()
    port = parent.recv()
    services: list[subprocess.Popen[bytes]] = []
    results: dict[str, list[dict[str, Any]]] = {noise: [] for noise in NOISE}
    loads: list[float] = []
    try:
        with broker() as bootstrap:
            ports = {"matcher": _free_port(), "sender": _free_port()}
            env = _env(bootstrap, tag, 64, ports)
            settings = Settings(kafka_bootstrap=bootstrap, topics=_topic_names(env))
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
            for _ in range(runs):
                for noise in NOISE:
                    results[noise].append(
                        _scenario(
                            bootstrap, settings, port, noise, (events, backlog, rate, warmup_s)
                        )
                    )
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

    def spread(noise: str, key: str) -> list[float]:
        values = sorted(result[key] for result in results[noise])
        return [values[0], statistics.median(values), values[-1]]

    return {
        "benchmark": "noisy_neighbour",
        "events": events,
        "backlog": backlog,
        "rate": rate,
        "runs": runs,
        "warmup_s": warmup_s,
        "load_average_1m": [min(loads), statistics.median(loads), max(loads)],
        "min_median_max": {
            noise: {
                key: spread(noise, key)
                for key in ("deliveries_per_s", "p50_ms", "p99_ms", "p99_all_ms")
            }
            for noise in NOISE
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=400, help="fast events per scenario")
    parser.add_argument("--backlog", type=int, default=200, help="noisy events before the load")
    parser.add_argument("--rate", type=float, default=100.0, help="fast events/s offered")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--warmup-s", type=float, default=1.0, help="start of the fast load left out of latency"
    )
    args = parser.parse_args()
    result = run(args.events, args.backlog, args.rate, args.runs, args.warmup_s)
    alone = result["min_median_max"]["alone"]
    for noise, figures in result["min_median_max"].items():
        rate = figures["deliveries_per_s"]
        p99 = figures["p99_ms"]
        print(
            f"{noise:8} deliveries/s {rate[0]}/{rate[1]}/{rate[2]} "
            f"({rate[1] / alone['deliveries_per_s'][1]:.0%} of alone), "
            f"p50 ms {figures['p50_ms'][1]}, p99 ms {p99[0]}/{p99[1]}/{p99[2]} "
            f"({p99[1] / alone['p99_ms'][1]:.1f}x alone); "
            f"p99 of every event {figures['p99_all_ms'][1]} ms "
            f"({figures['p99_all_ms'][1] / alone['p99_all_ms'][1]:.1f}x alone)"
        )
    print(f"load average (1 min) min/median/max: {result['load_average_1m']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
