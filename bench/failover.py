"""Fail-over: kill a sender or the matcher under a steady stream of events, at default settings,
and measure how late the events around the fault are delivered and whether any is lost.

Each run starts a matcher and one or two senders as processes (default settings: a 6 s group
session, heartbeats every second), registers ``--webhooks`` webhooks for /items/update that a
receiver in a child process answers at once, and publishes ``--rate`` events/s (each event
carries its publish time as ``occurred_at``, which the payload's ``when`` repeats). After
``--before-s`` seconds one process is killed (SIGKILL, or SIGTERM in ``sender-sigterm-static``)
and, depending on the scenario, restarted at once under the same identity or not restarted; the
stream goes on for ``--after-s`` seconds, then the run waits until every (event, webhook) pair
has arrived or a bound has passed. Per run: the steady p50 latency (arrival - publish) of the
pairs published before the fault, the worst latency of the pairs published from 5 s before the
fault on, the lost pairs (must be 0), duplicates, and from the services' logs when the restarted
process logged its first line, took its partitions and was ready. Scenarios:

- sender-restart-static: one sender with group instance id sender-0, kill -9, restarted at once
  with the same id (a Kubernetes container restarted in its pod).
- sender-restart-dynamic: the same without an instance id (a new member at every start).
- sender-takeover: two senders (sender-0, sender-1), kill -9 of one, not restarted; the survivor
  takes its partitions once its session has timed out.
- matcher-restart-static: the matcher with instance id matcher-0, kill -9, restarted at once.
- sender-sigterm-static: two senders with ids, SIGTERM of one, not restarted: a static member
  does not leave the group when it stops, so the survivor waits for the session timeout too.

``--runs`` repeats each scenario and prints min/median/max, a JSON summary and a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from cryptography.fernet import Fernet

from pipeline_throughput import _env, _free_port, _ready, _topic_names, _wait, broker
from two_senders import _start

#: Bound on the wait for every pair after the stream has stopped.
DRAIN_S = 180.0
#: Pairs published from this long before the fault to this long after it are "around the
#: fault"; those published later are a control: as late as in the steady phase, unless the
#: machine's load, not the fault, delays them.
WINDOW_BEFORE_S = 5.0
WINDOW_AFTER_S = 10.0
#: Pairs published in the first seconds of the stream are left out of the steady p50 (warm-up).
WARM_UP_S = 2.0


@dataclass(frozen=True)
class Scenario:
    """Which process fails, how, and what happens next."""

    victim: str  # "sender" or "matcher"
    senders: int
    static: bool  # every process runs with a group instance id
    sig: int
    restart: bool


SCENARIOS = {
    "sender-restart-static": Scenario("sender", 1, True, signal.SIGKILL, True),
    "sender-restart-dynamic": Scenario("sender", 1, False, signal.SIGKILL, True),
    "sender-takeover": Scenario("sender", 2, True, signal.SIGKILL, False),
    "matcher-restart-static": Scenario("matcher", 1, True, signal.SIGKILL, True),
    "sender-sigterm-static": Scenario("sender", 2, True, signal.SIGTERM, False),
}


def _receiver(conn: Connection) -> None:
    """Child process: record (webhook, event, publish ms, arrival ms) of each request, per run."""
    arrivals: dict[str, list[tuple[int, int, int, int]]] = {}
    pairs: dict[str, set[tuple[int, int]]] = {}

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        now_ms = int(time.time() * 1000)
        tag, webhook = request.match_info["tag"], int(request.match_info["n"])
        for event in body["events"]:
            seq = int(event["id"])
            arrivals.setdefault(tag, []).append((webhook, seq, int(event["when"]), now_ms))
            pairs.setdefault(tag, set()).add((webhook, seq))
        return web.Response(text="ok")

    async def count(request: web.Request) -> web.Response:
        return web.json_response(len(pairs.get(request.match_info["tag"], ())))

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(arrivals.get(request.match_info["tag"], []))

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook/{tag}/{n}", hook)
        app.router.add_get("/count/{tag}", count)
        app.router.add_get("/stats/{tag}", stats)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        conn.send(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await runner.cleanup()

    asyncio.run(main())


class Publisher(threading.Thread):
    """Publishes ``rate`` events/s until stopped; remembers each acknowledged event's publish ms."""

    def __init__(self, bootstrap: str, topic: str, tag: str, rate: float) -> None:
        super().__init__(daemon=True)
        from kafka import KafkaProducer

        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        self.topic = topic
        self.tag = tag
        self.rate = rate
        self.stopping = threading.Event()
        self.acked: dict[int, int] = {}
        self.failed = 0
        self._lock = threading.Lock()

    def run(self) -> None:
        from hookstream.records.codec import encode
        from hookstream.records.models import DomainEvent, now_ms

        started = time.monotonic()
        seq = 0
        while not self.stopping.is_set():
            due = started + seq / self.rate
            if time.monotonic() < due:
                self.stopping.wait(due - time.monotonic())  # pacing the rate
                continue
            event = DomainEvent(
                event_id=f"{self.tag}-{seq}",
                source="items",
                operation="update",
                resource_id=str(seq),
                occurred_at=now_ms(),
            )
            future = self.producer.send(self.topic, key=str(seq).encode(), value=encode(event))
            future.add_callback(self._acked, seq, event.occurred_at)
            future.add_errback(self._failed)
            seq += 1

    def _acked(self, seq: int, published_ms: int, _: Any) -> None:
        with self._lock:
            self.acked[seq] = published_ms

    def _failed(self, _: Exception) -> None:
        with self._lock:
            self.failed += 1

    def finish(self) -> dict[int, int]:
        self.stopping.set()
        self.join(timeout=30)
        self.producer.flush(timeout=60)
        self.producer.close(timeout=30)
        with self._lock:
            return dict(self.acked)


@dataclass
class Member:
    """One service process of the run, with what it takes to start it again as itself."""

    kind: str
    name: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    logs: list[Path] = field(default_factory=list)

    def start(self) -> None:
        """Start (again), on a fresh ops port, with the same group instance id if any."""
        self.port = _free_port()
        self.env[f"HOOKSTREAM_OPS__{self.kind.upper()}_PORT"] = str(self.port)
        path = self.log_path.with_name(f"{self.log_path.stem}-{len(self.logs)}.log")
        self.logs.append(path)
        self.process = _start(self.kind, self.env, path)

    def ready(self) -> bool:
        return self.process is not None and self.process.poll() is None and _ready(self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


#: Log lines that mark a step of a (re)start: the first line, the webhook view caught up, the
#: partitions assigned (the sender's own line, Faust's for the matcher), the sender ready.
MARKS = {
    "views_s": ("webhook directory caught up",),
    "assigned_s": ("sender assigned", "Executing _on_partitions_assigned"),
    "ready_s": ("sender ready",),
}


def _log_times(path: Path, after: float, role: str) -> dict[str, float]:
    """Seconds from ``after`` (epoch) to the first log line of each mark in a process's log.

    ``role`` is "restarted" (every mark), "stopped" (its last line: how long it took to stop)
    or "survivor" (when it was assigned partitions again)."""
    restarted = role == "restarted"
    marks: dict[str, float] = {}
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
            at = datetime.fromisoformat(entry["ts"]).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        if at < after:
            continue
        message = str(entry.get("message", ""))
        if restarted:
            marks.setdefault("first_line_s", at - after)
        for mark, prefixes in MARKS.items():
            if (restarted or mark == "assigned_s") and message.startswith(prefixes):
                marks.setdefault(mark, at - after)
        if role == "stopped":
            marks["last_line_s"] = at - after
    return {key: round(value, 2) for key, value in marks.items()}


def run_once(
    bootstrap: str,
    port: int,
    name: str,
    rate: float,
    webhooks: int,
    before_s: float,
    after_s: float,
) -> dict[str, Any]:
    """One scenario, start to drain, with fresh topics and groups."""
    from hookstream.client import HookstreamClient
    from hookstream.kafka.topics import create_topics
    from hookstream.records.models import WebhookConfig
    from hookstream.settings import DeliverySettings, Settings

    scenario = SCENARIOS[name]
    tag = uuid.uuid4().hex[:8]
    # Ops ports are set per member; concurrency is left at its default.
    env = _env(bootstrap, tag, DeliverySettings().concurrency, {"matcher": 0, "sender": 0})
    settings = Settings(kafka_bootstrap=bootstrap, topics=_topic_names(env))
    create_topics(bootstrap, settings.topics)
    logs = Path(tempfile.gettempdir())
    members: list[Member] = []
    for kind, index in [("matcher", 0), *(("sender", n) for n in range(scenario.senders))]:
        member_env = dict(env)
        if scenario.static:
            member_env["HOOKSTREAM_GROUP_INSTANCE_ID"] = f"{kind}-{index}"
        log_path = logs / f"bench-failover-{tag}-{kind}-{index}"
        members.append(Member(kind, f"{kind}-{index}", member_env, log_path))
    publisher: Publisher | None = None
    try:
        for member in members:
            member.start()
        _wait(lambda: all(m.ready() for m in members), 120, "matcher and senders")
        configs = [
            WebhookConfig(
                webhook_id=f"failover-{tag}-{n}",
                name=f"failover {n}",
                payload_url=f"http://127.0.0.1:{port}/hook/{tag}/{n}",
                triggers=["/items/update"],
            )
            for n in range(webhooks)
        ]
        with HookstreamClient(bootstrap, settings.topics) as client:
            for config in configs:
                client.register_webhook(config)
            client.wait_for_webhooks({c.webhook_id for c in configs}, timeout_s=60)

        publisher = Publisher(bootstrap, settings.topics.events[0], tag, rate)
        stream_start = time.time()
        publisher.start()
        publisher.stopping.wait(before_s)  # the stream's steady phase, not waiting for work
        victim = next(m for m in members if m.kind == scenario.victim)
        assert victim.process is not None
        fault_at = time.time()
        victim.process.send_signal(scenario.sig)
        if scenario.restart:
            victim.process.wait(timeout=30)
            victim.start()
        publisher.stopping.wait(after_s)  # the stream goes on across the fault
        published = publisher.finish()
        publisher = None
        expected = len(published) * webhooks

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:

            def count() -> int:
                return int(http.get(f"/count/{tag}").json())

            try:
                _wait(lambda: count() >= expected, DRAIN_S, f"{expected} pairs")
            except TimeoutError:
                pass  # reported as lost below
            arrivals = http.get(f"/stats/{tag}").json()
        roles = {m.name: "survivor" for m in members}
        roles[victim.name] = "restarted" if scenario.restart else "stopped"
        milestones = {m.name: _log_times(m.logs[-1], fault_at, roles[m.name]) for m in members}
    finally:
        if publisher is not None:
            publisher.finish()
        for member in members:
            member.stop()
    return _measure(name, published, webhooks, arrivals, stream_start, fault_at, milestones)


def _measure(
    name: str,
    published: dict[int, int],
    webhooks: int,
    arrivals: list[list[int]],
    stream_start: float,
    fault_at: float,
    milestones: dict[str, dict[str, float]],
) -> dict[str, Any]:
    first: dict[tuple[int, int], int] = {}
    for webhook, seq, _when, arrived_ms in arrivals:
        pair = (webhook, seq)
        first[pair] = min(arrived_ms, first.get(pair, arrived_ms))
    fault_ms = fault_at * 1000
    steady: list[int] = []
    window: list[tuple[int, int]] = []
    control: list[int] = []
    lost = 0
    for seq, published_ms in published.items():
        for webhook in range(webhooks):
            arrived = first.get((webhook, seq))
            if arrived is None:
                lost += 1
                continue
            latency = arrived - published_ms
            if published_ms > fault_ms + WINDOW_AFTER_S * 1000:
                control.append(latency)
            elif published_ms >= fault_ms - WINDOW_BEFORE_S * 1000:
                window.append((latency, published_ms))
            elif published_ms >= stream_start * 1000 + WARM_UP_S * 1000:
                steady.append(latency)
    worst, worst_published = max(window)
    after_fault = sorted(a for a in first.values() if a >= fault_ms)
    edges = [fault_ms, *after_fault]
    return {
        "scenario": name,
        "events": len(published),
        "pairs": len(published) * webhooks,
        "lost": lost,
        "duplicates": len(arrivals) - len(first),
        "steady_p50_ms": round(statistics.median(steady)) if steady else None,
        "worst_latency_s": round(worst / 1000, 2),
        "worst_published_after_fault_s": round((worst_published - fault_ms) / 1000, 2),
        "worst_latency_after_window_s": round(max(control) / 1000, 2) if control else None,
        "longest_pause_after_fault_s": round(
            max(b - a for a, b in zip(edges, edges[1:], strict=False)) / 1000, 2
        )
        if after_fault
        else None,
        "milestones_after_fault_s": milestones,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def _spread(values: list[float]) -> list[float]:
    ordered = sorted(values)
    return [ordered[0], statistics.median(ordered), ordered[-1]]


def _mark(result: dict[str, Any], mark: str) -> float | None:
    """The earliest ``mark`` (seconds after the fault) in any process's log of a run."""
    found = [m[mark] for m in result["milestones_after_fault_s"].values() if mark in m]
    return min(found) if found else None


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """min/median/max per scenario of each figure; lost pairs and duplicates summed."""
    summary: dict[str, Any] = {}
    for name in dict.fromkeys(r["scenario"] for r in results):
        runs = [r for r in results if r["scenario"] == name]

        def spread(values: list[float | None]) -> list[float]:
            present = [v for v in values if v is not None]
            return _spread(present) if present else []

        summary[name] = {
            "runs": len(runs),
            "worst_latency_s": spread([r["worst_latency_s"] for r in runs]),
            "steady_p50_ms": spread([r["steady_p50_ms"] for r in runs]),
            "restarted_first_line_s": spread([_mark(r, "first_line_s") for r in runs]),
            "partitions_assigned_s": spread([_mark(r, "assigned_s") for r in runs]),
            "worst_latency_after_window_s": spread(
                [r["worst_latency_after_window_s"] for r in runs]
            ),
            "lost": sum(r["lost"] for r in runs),
            "duplicates": sum(r["duplicates"] for r in runs),
            "load_average_1m": spread([r["load_average_1m"] for r in runs]),
        }
    return summary


def table(summary: dict[str, Any]) -> str:
    """The summary as a markdown table (min / median / max)."""
    columns = {
        "worst latency, s": "worst_latency_s",
        "steady p50, ms": "steady_p50_ms",
        "restarted process's first log line, s after the fault": "restarted_first_line_s",
        "partitions assigned, s after the fault": "partitions_assigned_s",
        "control: worst latency of pairs published > 10 s after the fault, s": (
            "worst_latency_after_window_s"
        ),
        "lost pairs": "lost",
        "duplicates": "duplicates",
        "load (1 min)": "load_average_1m",
    }
    lines = [
        "| scenario | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name, figures in summary.items():
        cells = []
        for key in columns.values():
            value = figures[key]
            if isinstance(value, list):
                cells.append(" / ".join(f"{v:g}" for v in value) if value else "-")
            else:
                cells.append(str(value))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _exit_on_signal(signum: int, _: object) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated, of: " + ", ".join(SCENARIOS),
    )
    parser.add_argument("--rate", type=float, default=25.0, help="events per second")
    parser.add_argument("--webhooks", type=int, default=8)
    parser.add_argument("--before-s", type=float, default=8.0, help="stream before the fault")
    parser.add_argument("--after-s", type=float, default=20.0, help="stream after the fault")
    args = parser.parse_args()
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {list(SCENARIOS)}")
    os.environ.setdefault("HOOKSTREAM_SECURITY__SECRETS_KEYS", Fernet.generate_key().decode())
    # Stopped with SIGTERM (or SIGINT in a background job, where it is ignored), still stop the
    # services, the receiver and the broker this run started.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    parent, child = multiprocessing.Pipe()
    receiver = multiprocessing.get_context("spawn").Process(
        target=_receiver, args=(child,), daemon=True
    )
    receiver.start()
    port = parent.recv()
    results: list[dict[str, Any]] = []
    try:
        with broker() as bootstrap:
            for _ in range(args.runs):
                for name in names:  # interleaved, so a load spike does not hit one scenario
                    result = run_once(
                        bootstrap,
                        port,
                        name,
                        args.rate,
                        args.webhooks,
                        args.before_s,
                        args.after_s,
                    )
                    results.append(result)
                    print(json.dumps(result), flush=True)
    finally:
        parent.send("stop")
        receiver.join(timeout=10)
    summary = summarise(results)
    print(
        json.dumps(
            {
                "benchmark": "failover",
                "rate": args.rate,
                "webhooks": args.webhooks,
                "scenarios": summary,
            }
        )
    )
    print(table(summary))
    return 1 if any(s["lost"] for s in summary.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
