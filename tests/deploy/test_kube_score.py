"""kube-score (https://kube-score.com) over what an installation applies: no CRITICAL finding
unless this file says why it is accepted."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.deployfiles import render, tool, with_components

#: kube-score checks whose CRITICAL findings are accepted, with the reason.
ACCEPTED = {
    "container-ephemeral-storage-request-and-limit": (
        "the root filesystem is read-only; the only writable place is an emptyDir with a "
        "sizeLimit (/tmp), and container logs are rotated by the kubelet"
    ),
    "container-image-pull-policy": (
        "images are released under immutable version tags (k8s/base sets the tag, an overlay "
        "may pin a digest); Always would make every restart depend on the registry"
    ),
}


def _critical(objects: list[dict[str, Any]], folder: Path) -> set[tuple[str, str]]:
    kube_score = tool("kube-score", "run `make setup`: it builds kube-score with Go")
    manifest = folder / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    scored = subprocess.run(
        [kube_score, "score", "--output-format", "json", str(manifest)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # kube-score exits 1 when it finds a CRITICAL: the findings decide, not the exit code.
    assert scored.stdout.startswith("["), scored.stderr
    found = set()
    for obj in json.loads(scored.stdout):
        for check in obj["checks"]:
            if check["grade"] == 1 and not check["skipped"]:  # 1 is kube-score's CRITICAL
                found.add(
                    (f"{obj['type_meta']['kind']}/{obj['object_name']}", check["check"]["id"])
                )
    return found


@pytest.mark.parametrize(
    "components",
    [(), ("strimzi", "keda", "kafka-sasl"), ("kafka-tls",), ("monitoring",)],
    ids=lambda names: "+".join(names) or "base",
)
def test_no_critical_finding_is_left_unexplained(
    components: tuple[str, ...], tmp_path: Path
) -> None:
    objects = with_components(tmp_path, *components) if components else render("base")
    found = _critical(objects, tmp_path)
    unexplained = sorted(f for f in found if f[1] not in ACCEPTED)
    assert unexplained == [], "kube-score CRITICAL findings without a reason in ACCEPTED"
    if not components:
        # Every accepted check still fires on the base: the list holds no stale entries.
        assert {check for _, check in found} == set(ACCEPTED)
