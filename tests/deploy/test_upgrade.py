"""scripts/upgrade.sh takes the documented upgrade steps in order, checked offline with a
stand-in ``kubectl`` that records each call."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from deploy.deployfiles import K8S, ROOT

SCRIPT = ROOT / "scripts" / "upgrade.sh"

#: A kubectl that records its arguments (one JSON list a line) and answers `get job` with the
#: Job if the test says it exists.
FAKE_KUBECTL = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["KUBECTL_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if "get" in sys.argv and os.environ.get("JOB_EXISTS") == "1":
    print("job.batch/hookstream-topics")
"""


def _run(tmp_path: Path, *args: str, job: bool = True) -> tuple[int, list[list[str]]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    log.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "KUBECTL_LOG": str(log),
        "JOB_EXISTS": "1" if job else "0",
    }
    done = subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return done.returncode, calls


def _index(calls: list[list[str]], *words: str) -> int:
    found = [i for i, call in enumerate(calls) if all(w in call for w in words)]
    assert len(found) == 1, (words, calls)
    return found[0]


OVERLAY = str(K8S / "overlays" / "example")


def test_a_release_without_schema_change_rolls_in_place(tmp_path: Path) -> None:
    code, calls = _run(tmp_path, OVERLAY)
    assert code == 0
    delete = _index(calls, "delete", "job", "hookstream-topics")
    apply = _index(calls, "apply", "-k", OVERLAY)
    wait_job = _index(calls, "wait", "--for=condition=complete", "job/hookstream-topics")
    rollouts = [i for i, c in enumerate(calls) if c[2:4] == ["rollout", "status"]]
    assert delete < apply < wait_job < min(rollouts)
    assert sorted(calls[i][4] for i in rollouts) == [
        "deploy/hookstream-admin",
        "deploy/hookstream-matcher",
        "deploy/hookstream-sender",
    ]
    assert not [c for c in calls if "scale" in c]


def test_a_schema_change_stops_every_process_before_the_apply(tmp_path: Path) -> None:
    code, calls = _run(tmp_path, "--schema-change", OVERLAY)
    assert code == 0
    delete = _index(calls, "delete", "job", "hookstream-topics")
    scale = _index(calls, "scale", "--replicas=0")
    assert {
        "deploy/hookstream-admin",
        "deploy/hookstream-matcher",
        "deploy/hookstream-sender",
    } <= set(calls[scale])
    gone = _index(calls, "wait", "--for=delete")
    apply = _index(calls, "apply", "-k", OVERLAY)
    first_rollout = min(i for i, c in enumerate(calls) if "rollout" in c)
    assert delete < scale < gone < apply < first_rollout


def test_without_the_job_it_does_not_wait_for_it(tmp_path: Path) -> None:
    code, calls = _run(tmp_path, OVERLAY, job=False)
    assert code == 0
    assert not [c for c in calls if "--for=condition=complete" in c]
    assert [c for c in calls if "rollout" in c]


@pytest.mark.parametrize("args", [(), ("--bogus", OVERLAY), (str(ROOT / "nowhere"),)])
def test_wrong_arguments_are_refused_before_any_call(tmp_path: Path, args: tuple[str, ...]) -> None:
    code, calls = _run(tmp_path, *args)
    assert code == 2 and calls == []
