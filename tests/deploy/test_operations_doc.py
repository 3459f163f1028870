"""docs/operations.md says what exists: its settings, metrics and files, and a backup script
that round-trips a compacted topic through a real broker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from deploy.deployfiles import ROOT, hookstream_metrics, setting_variables, unknown_variables
from hookstream.kafka.topics import create_topics
from hookstream.views.directory import REVISION_HEADER
from support import unique_settings

DOC = ROOT / "docs" / "operations.md"


def test_every_metric_is_documented_and_every_documented_metric_exists() -> None:
    text = DOC.read_text()
    metrics = hookstream_metrics()
    for name, kind in metrics.items():
        assert re.search(rf"^\| `{name}(\{{[\w,]+\}})?` \| {kind} \|", text, re.M), name
    mentioned = set(re.findall(r"\bhookstream_[a-z_]+", text))
    histogram_series = {
        f"{name}{suffix}"
        for name, kind in metrics.items()
        if kind == "histogram"
        for suffix in ("_bucket", "_count", "_sum")
    }
    assert mentioned - set(metrics) - histogram_series == set()


def test_every_setting_the_doc_names_exists() -> None:
    # A name ending in `__*` stands for a group of settings; each group must have members.
    found = re.findall(r"\b(HOOKSTREAM_[A-Z0-9_]*[A-Z0-9])(__\*)?", DOC.read_text())
    names = {name for name, group in found if not group}
    groups = {name for name, group in found if group}
    assert all(any(v.startswith(f"{g}__") for v in setting_variables()) for g in groups), groups
    assert len(names) > 10
    assert unknown_variables(names) == []


def test_every_file_the_doc_names_exists() -> None:
    text = DOC.read_text()
    paths = {
        p.rstrip("/")
        for p in re.findall(r"`((?:k8s|schemas|scripts|services|tests|docs)/[\w./-]*)`", text)
    }
    assert "k8s/components/keda" in paths
    for path in paths:
        assert (ROOT / path).exists(), path


def _backup_script(tmp_path: Path) -> Path:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    (script,) = [block for block in blocks if "def backup(" in block]
    path = tmp_path / "topic_backup.py"
    path.write_text(script)
    return path


def _run(script: Path, bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKSTREAM_")}
    env["HOOKSTREAM_KAFKA_BOOTSTRAP"] = bootstrap
    return subprocess.run(
        [sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=120
    )


def _read_all(bootstrap: str, topic: str) -> dict[int, list[tuple[object, ...]]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    end = consumer.end_offsets(partitions)
    seen: dict[int, list[tuple[object, ...]]] = {tp.partition: [] for tp in partitions}
    while any(consumer.position(tp) < end[tp] for tp in partitions):
        for tp, records in consumer.poll(timeout_ms=500).items():
            for r in records:
                seen[tp.partition].append((r.key, r.value, tuple(r.headers)))
    consumer.close()
    return seen


@pytest.mark.integration
def test_the_backup_script_round_trips_a_compacted_topic(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    source = unique_settings(kafka_bootstrap)
    target = unique_settings(kafka_bootstrap)
    create_topics(kafka_bootstrap, source.topics)
    create_topics(kafka_bootstrap, target.topics)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for revision in range(3):
        for n in range(8):
            producer.send(
                source.topics.webhooks,
                key=f"webhook-{n}".encode(),
                value=bytes([0xC3, 0x01, revision, n, 0xFF]),
                headers=[(REVISION_HEADER, str(revision).encode())],
            )
    producer.send(
        source.topics.webhooks, key=b"webhook-3", value=None, headers=[(REVISION_HEADER, b"3")]
    )
    producer.flush()
    producer.close()
    script = _backup_script(tmp_path)

    backed_up = _run(script, kafka_bootstrap, "backup", source.topics.webhooks)
    assert backed_up.returncode == 0, backed_up.stderr
    assert f"backup: 25 records of {source.topics.webhooks}" in backed_up.stderr
    backup_file = tmp_path / "webhooks.jsonl"
    backup_file.write_text(backed_up.stdout)

    restored = _run(script, kafka_bootstrap, "restore", target.topics.webhooks, str(backup_file))
    assert restored.returncode == 0, restored.stderr
    # Same records, same order, same partitions (the producers' key hashing), headers kept.
    original = _read_all(kafka_bootstrap, source.topics.webhooks)
    assert _read_all(kafka_bootstrap, target.topics.webhooks) == original
    assert sum(len(records) for records in original.values()) == 25

    again = _run(script, kafka_bootstrap, "restore", target.topics.webhooks, str(backup_file))
    assert again.returncode != 0 and "is not empty" in again.stderr
    missing = _run(script, kafka_bootstrap, "backup", f"nope-{uuid.uuid4().hex}")
    assert missing.returncode != 0 and "does not exist" in missing.stderr
