"""Chaos on a local three-broker cluster: kill -9 a random hookstream process or broker every
5-20 s and restart it, while events flow at a steady rate to several webhooks (`make chaos`).

One matcher and two senders run as processes against topics of three replicas
(min.insync.replicas 2). Each event matches exactly one of four webhooks that answer 200. A
publisher sends ``--rate`` events/s (acks=all; only acknowledged events are counted). Every
5-20 s one victim is killed with SIGKILL and restarted after 1-5 s; at most one is down at a
time, the number of kills is bounded by the duration, and the run stops by itself. Then it waits
until every (event, webhook) pair is delivered or ended by a final status, and prints one JSON
line: lost (must be 0), duplicates, the longest pause in deliveries during the chaos, the kills,
and whether any webhook config or the delivery settings changed. Exit status 1 if anything was
lost or changed.

It reuses the test suite's real receiver, service processes and ledger (tests/support.py,
tests/cluster/cluster_support.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support import TEST_SECRETS_KEY  # noqa: E402

# Encrypt webhook secrets with the run's own key here too, as the services do (settings_env).
os.environ["HOOKSTREAM_SECURITY__SECRETS_KEYS"] = TEST_SECRETS_KEY

from kafka import KafkaProducer  # noqa: E402

from cluster.cluster_support import Ledger, replicated_settings  # noqa: E402
from hookstream.client import HookstreamClient  # noqa: E402
from hookstream.localkafka.cluster import LocalCluster  # noqa: E402
from hookstream.records.codec import encode  # noqa: E402
from hookstream.records.models import DeliveryPolicy, WebhookConfig  # noqa: E402
from hookstream.settings import LocalKafkaSettings, Settings  # noqa: E402
from support import (  # noqa: E402
    Receiver,
    ServiceProcess,
    StatusReader,
    TopicReader,
    make_event,
    register_and_wait,
    wait_until,
)

#: (source, operation) of the events; webhook n subscribes to the n-th.
KINDS = [("items", "add"), ("items", "update"), ("items", "delete"), ("groups", "update")]


class Publisher(threading.Thread):
    """Sends ``rate`` events/s until stopped; remembers each acknowledged event's webhook."""

    def __init__(self, settings: Settings, hooks: list[WebhookConfig], rate: float) -> None:
        super().__init__(daemon=True)
        self.producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5
        )
        self.topic = settings.topics.events[0]
        self.hooks = hooks
        self.rate = rate
        self.stopping = threading.Event()
        self.acked: list[tuple[str, WebhookConfig]] = []
        self.failed = 0
        self._lock = threading.Lock()

    def run(self) -> None:
        started = time.monotonic()
        sent = 0
        while not self.stopping.is_set():
            due = started + sent / self.rate
            if time.monotonic() < due:
                self.stopping.wait(due - time.monotonic())  # pacing the rate, not waiting for work
                continue
            n = sent % len(KINDS)
            event = make_event(*KINDS[n], resource_id=f"r{sent}")
            future = self.producer.send(
                self.topic, key=(event.resource_id or "").encode(), value=encode(event)
            )
            future.add_callback(self._acked, event.event_id, self.hooks[n])
            future.add_errback(self._failed)
            sent += 1

    def _acked(self, event_id: str, hook: WebhookConfig, _: Any) -> None:
        with self._lock:
            self.acked.append((event_id, hook))

    def _failed(self, _: Exception) -> None:
        with self._lock:
            self.failed += 1

    def finish(self) -> None:
        self.stopping.set()
        self.join(timeout=30)
        self.producer.flush(timeout=180)
        self.producer.close(timeout=30)


class Victims:
    """The processes chaos may kill, each with its way back."""

    def __init__(self, cluster: LocalCluster, settings: Settings, log_dir: Path) -> None:
        self.cluster = cluster
        self.settings = settings
        self.log_dir = log_dir
        self.services: dict[str, ServiceProcess] = {}

    def start_service(self, name: str) -> None:
        kind = name.split("-")[0]
        service = ServiceProcess(kind, self.settings, self.log_dir)
        service.wait_for_log("webhook directory caught up" if kind == "matcher" else "sender ready")
        self.services[name] = service

    def names(self) -> list[str]:
        return [*self.services, *(f"broker-{n}" for n in self.cluster.node_ids)]

    def kill(self, name: str) -> None:
        if name.startswith("broker-"):
            self.cluster.node(int(name.split("-")[1])).kill()
        else:
            self.services[name].stop(sig=9)

    def restart(self, name: str) -> None:
        if name.startswith("broker-"):
            self.cluster.start_node(int(name.split("-")[1]))
        else:
            self.start_service(name)

    def stop_all(self) -> None:
        for service in self.services.values():
            service.stop()


def _longest_pause(receiver: Receiver, start: float, end: float) -> float:
    """The longest time between two deliveries (or the window's edges) within the chaos."""
    times = sorted(r.at for r in receiver.requests if start <= r.at <= end)
    edges = [start, *times, end]
    return max(b - a for a, b in zip(edges, edges[1:], strict=False))


def run(args: argparse.Namespace, running: LocalCluster | None = None) -> dict[str, Any]:
    """One chaos run; on ``running`` (a started three-broker cluster, left running) if given,
    else on a cluster of its own."""
    rng = random.Random(args.seed)  # noqa: S311 - chaos, not cryptography
    workdir = Path(tempfile.mkdtemp(prefix="hookstream-chaos-"))
    cluster = running or LocalCluster(
        LocalKafkaSettings(port=0, controller_port=0, start_timeout_s=180),
        brokers=3,
        workdir=workdir / "cluster",
    )
    if running is None:
        cluster.start()
    receiver = Receiver()
    victims: Victims | None = None
    statuses: StatusReader | None = None
    policy_reader: TopicReader | None = None
    try:
        settings = replicated_settings(
            cluster.bootstrap, max_attempts=5, retry_interval_s=1, concurrency=64
        )
        statuses = StatusReader(cluster.bootstrap, settings)
        ledger = Ledger(receiver, statuses)
        tag = uuid.uuid4().hex[:6]
        hooks = [
            WebhookConfig(
                webhook_id=f"chaos{n}-{tag}",
                name=f"Chaos {n}",
                payload_url=receiver.url(f"/chaos{n}"),
                triggers=[f"/{source}/{operation}"],
            )
            for n, (source, operation) in enumerate(KINDS)
        ]
        policy = DeliveryPolicy(max_attempts=5, retry_interval_s=1.0, request_timeout_s=10.0)
        with HookstreamClient(cluster.bootstrap, settings.topics) as client:
            client.set_delivery_policy(policy)
            victims = Victims(cluster, settings, workdir)
            for name in ("matcher-1", "sender-1", "sender-2"):
                victims.start_service(name)
            register_and_wait(client, *hooks)
            before = {h.webhook_id: c for h, c in zip(hooks, _configs(client, hooks), strict=True)}

            publisher = Publisher(settings, hooks, args.rate)
            chaos_start = time.monotonic()
            publisher.start()
            kills: list[dict[str, Any]] = []
            deadline = chaos_start + args.minutes * 60
            max_kills = int(args.minutes * 60 / 5)
            while len(kills) < max_kills:
                wait_s = rng.uniform(5, 20)
                if time.monotonic() + wait_s > deadline:
                    break
                publisher.stopping.wait(wait_s)  # the chaos schedule, not waiting for work
                name = rng.choice(victims.names())
                at = round(time.monotonic() - chaos_start, 1)
                victims.kill(name)
                publisher.stopping.wait(rng.uniform(1, 5))  # how long the victim stays down
                victims.restart(name)
                kills.append({"at_s": at, "victim": name})
                print(f"chaos: killed and restarted {name} at {at} s", file=sys.stderr, flush=True)
            publisher.stopping.wait(max(0.0, deadline - time.monotonic()))
            publisher.finish()
            chaos_end = time.monotonic()
            for event_id, hook in publisher.acked:
                ledger.expect([event_id], [hook])
            drain_start = time.monotonic()
            try:
                ledger.wait_all_accounted(args.drain_s)
            except AssertionError as exc:
                print(f"chaos: {exc}", file=sys.stderr)
            drained_s = time.monotonic() - drain_start
            after = dict(zip(before, _configs(client, hooks), strict=True))
            changed = sorted(wid for wid in before if before[wid] != after[wid])
            policy_reader = TopicReader(cluster.bootstrap, settings.topics.settings, DeliveryPolicy)
            wait_until(policy_reader.snapshot, 30, "the delivery settings record")
            settings_changed = policy_reader.snapshot()[-1] != policy
        return {
            "minutes": args.minutes,
            "rate_per_s": args.rate,
            "events_acknowledged": len(publisher.acked),
            "events_refused": publisher.failed,
            "pairs": len(ledger.expected),
            "lost": len(ledger.unaccounted()),
            "unexpected": len(ledger.unexpected()),
            "duplicated_pairs": ledger.duplicated_pairs(),
            "duplicate_deliveries": ledger.duplicates(),
            "longest_pause_s": round(_longest_pause(receiver, chaos_start, chaos_end), 1),
            "drain_after_chaos_s": round(drained_s, 1),
            "kills": kills,
            "webhook_configs_changed": changed,
            "delivery_settings_changed": settings_changed,
        }
    finally:
        for reader in (statuses, policy_reader):
            if reader is not None:
                reader.close()
        if victims is not None:
            victims.stop_all()
        receiver.close()
        if running is None:
            cluster.stop()


def _configs(client: HookstreamClient, hooks: list[WebhookConfig]) -> list[dict[str, Any]]:
    """The configs as the topic holds them now (a failure mark or deactivation is a change)."""
    latest = client.latest_webhooks()
    return [latest[h.webhook_id].model_dump() for h in hooks]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="chaos duration (default 10)")
    parser.add_argument("--rate", type=float, default=200.0, help="events per second (200)")
    parser.add_argument(
        "--drain-s",
        type=float,
        default=900.0,
        help="bound on the final drain (300 s ran out once at load 7)",
    )
    parser.add_argument("--seed", type=int, default=None, help="repeat a run's choice of victims")
    report = run(parser.parse_args())
    print(json.dumps(report))
    bad = report["lost"] or report["unexpected"] or report["webhook_configs_changed"]
    return 1 if bad or report["delivery_settings_changed"] else 0


if __name__ == "__main__":
    sys.exit(main())
