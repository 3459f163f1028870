"""Matcher CPU per event and per delivery job, the matcher alone: no sender, no receiver.

One run starts the matcher as a process (at its default log level) on fresh topics, registers W
webhooks for /items/update, reads the matcher's idle CPU for a few seconds, then publishes E
events as fast as kafka-python goes and reads the matcher's CPU (utime + stime from /proc) until
the deliveries topic holds all E*W jobs. The pipeline benchmark reads the matcher's CPU over the
whole delivery phase, which the sender's pace decides; this one ends when the matcher's work does.
``--webhooks 1,4`` runs each count in turn; ``--runs`` repeats them and reports min/median/max.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from pipeline_throughput import _cpu_s, _env, _free_port, _py_spy, _ready, _topic_names, _wait
from pipeline_throughput import broker as local_broker

DEADLINE_S = 300.0
IDLE_S = 3.0


def _end_offsets(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def run(bootstrap: str, events: int, webhooks: int, profile: Path | None) -> dict[str, Any]:
    """One matcher process, fresh topics: idle CPU, then CPU per event and per job."""
    from kafka import KafkaProducer

    from hookstream.client import HookstreamClient
    from hookstream.kafka.topics import create_topics
    from hookstream.records.codec import encode
    from hookstream.records.models import DomainEvent, WebhookConfig, now_ms
    from hookstream.settings import Settings

    os.environ.setdefault("HOOKSTREAM_SECURITY__SECRETS_KEYS", Fernet.generate_key().decode())
    tag = uuid.uuid4().hex[:8]
    ports = {"matcher": _free_port(), "sender": _free_port()}
    env = _env(bootstrap, tag, 64, ports)
    settings = Settings(kafka_bootstrap=bootstrap, topics=_topic_names(env))
    create_topics(bootstrap, settings.topics)
    log_path = Path(tempfile.gettempdir()) / f"bench-{tag}-matcher.log"
    with log_path.open("wb") as log_file:
        matcher = subprocess.Popen(  # noqa: S603 - this interpreter, our own module
            [sys.executable, "-m", "hookstream.cli", "matcher"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait(lambda: _ready(ports["matcher"]), 120, "the matcher")
        with HookstreamClient(bootstrap, settings.topics) as client:
            configs = [
                WebhookConfig(
                    webhook_id=f"bench-{n}",
                    name=f"bench {n}",
                    payload_url="http://127.0.0.1:9/deliver",
                    triggers=["/items/update"],
                )
                for n in range(webhooks)
            ]
            for config in configs:
                client.register_webhook(config)
            client.wait_for_webhooks({c.webhook_id for c in configs}, timeout_s=60)
        idle_before = _cpu_s(matcher.pid)
        time.sleep(IDLE_S)  # a measured idle window, not a wait for something
        idle_cpu_s = _cpu_s(matcher.pid) - idle_before

        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        spy = _py_spy(matcher.pid, profile) if profile is not None else None
        cpu_before = _cpu_s(matcher.pid)
        start = time.perf_counter()
        topic = settings.topics.events[0]
        for n in range(events):
            event = DomainEvent(
                event_id=f"{tag}-{n}",
                source="items",
                operation="update",
                resource_id=f"item{n}",
                occurred_at=now_ms(),
            )
            producer.send(topic, key=f"item{n}".encode(), value=encode(event))
        producer.flush(timeout=60)
        producer.close()
        expected = events * webhooks
        deliveries = settings.topics.deliveries
        _wait(lambda: _end_offsets(bootstrap, deliveries) >= expected, DEADLINE_S, "the jobs")
        elapsed = time.perf_counter() - start
        cpu_s = _cpu_s(matcher.pid) - cpu_before
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
    finally:
        matcher.terminate()
        try:
            matcher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            matcher.kill()
    return {
        "benchmark": "matcher",
        "events": events,
        "webhooks": webhooks,
        "jobs": expected,
        "jobs_written_s": round(elapsed, 2),
        "matcher_cpu_us_per_event": round(cpu_s / events * 1e6, 1),
        "matcher_cpu_us_per_job": round(cpu_s / expected * 1e6, 1),
        "idle_cpu_ms_per_s": round(idle_cpu_s / IDLE_S * 1e3, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--webhooks", default="1,4", help="comma-separated webhook counts")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--profile", type=Path, help="py-spy the matcher of each run into PROFILE-<w>-<run>.txt"
    )
    args = parser.parse_args()
    counts = [int(count) for count in args.webhooks.split(",")]
    results: dict[int, list[dict[str, Any]]] = {count: [] for count in counts}
    with local_broker() as bootstrap:
        for index in range(args.runs):
            for count in counts:
                profile = (
                    args.profile.with_name(f"{args.profile.stem}-{count}-{index}.txt")
                    if args.profile
                    else None
                )
                result = run(bootstrap, args.events, count, profile)
                results[count].append(result)
                print(json.dumps(result), flush=True)
    for count, runs in results.items():
        for key in ("matcher_cpu_us_per_event", "matcher_cpu_us_per_job", "load_average_1m"):
            values = sorted(r[key] for r in runs)
            print(
                f"{count} webhook(s), {key}: {values[0]} / {statistics.median(values)} / "
                f"{values[-1]}"
            )


if __name__ == "__main__":
    main()
