"""Validation of custom resources (KEDA, Prometheus Operator) against the CRDs their projects
publish, read from the Go module cache (scripts/bootstrap.sh downloads the modules)."""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from functools import cache
from typing import Any

import jsonschema
import pytest
import yaml

from deploy.deployfiles import is_custom, tool

#: Module, version and the CRD files of its zip for the kinds k8s/ uses. Keep the versions in
#: step with scripts/bootstrap.sh --test-tools.
CRD_MODULES = {
    "github.com/kedacore/keda/v2": (
        "v2.21.0",
        [
            "config/crd/bases/keda.sh_scaledobjects.yaml",
            "config/crd/bases/keda.sh_triggerauthentications.yaml",
        ],
    ),
    "github.com/prometheus-operator/prometheus-operator": (
        "v0.85.0",
        [
            "example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml",
            "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
        ],
    ),
}


def _module_zip(module: str, version: str) -> str:
    go = tool("go", "install Go 1.24+ (the CRDs come from the Go module proxy)")
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    # Answers from the module cache once scripts/bootstrap.sh has downloaded the module.
    done = subprocess.run(
        [go, "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    info = json.loads(done.stdout or "{}")
    if done.returncode != 0 or "Zip" not in info:
        pytest.fail(
            f"cannot get {module}@{version} (run scripts/bootstrap.sh --test-tools, as make "
            f"test does): {info.get('Error')}",
            pytrace=False,
        )
    path: str = info["Zip"]
    return path


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused where the CRD lists the fields (as the API server
    prunes them silently, a misspelt field would otherwise pass)."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the JSON schema of every version each CRD serves."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for module, (version, files) in CRD_MODULES.items():
        with zipfile.ZipFile(_module_zip(module, version)) as archive:
            for name in files:
                crd = yaml.safe_load(archive.read(f"{module}@{version}/{name}"))
                group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
                for served in crd["spec"]["versions"]:
                    schema = _strict(served["schema"]["openAPIV3Schema"])
                    schema["properties"]["metadata"] = {"type": "object"}
                    schemas[(f"{group}/{served['name']}", kind)] = schema
    return schemas


def validate_custom(objects: list[dict[str, Any]], skip_groups: tuple[str, ...] = ()) -> int:
    """Validate every custom resource against its CRD; returns how many were checked. A kind with
    no known CRD fails, unless its API group is in ``skip_groups``."""
    checked = 0
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        if obj["apiVersion"].split("/")[0] in skip_groups:
            continue
        schema = crd_schemas().get(key)
        if schema is None:
            if is_custom(obj):
                raise AssertionError(f"no CRD known for {key}: add its module to CRD_MODULES")
            continue
        # No check of the schema itself: some CRD patterns use Go's regex syntax, which Python's
        # `re` refuses (Prometheus Operator's `^(?i)(abort|warn)?$`).
        exc = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(schema).iter_errors(obj))
        if exc is not None:
            raise AssertionError(
                f"{obj['kind']}/{obj['metadata']['name']} does not match its CRD: {exc.message} "
                f"at {'.'.join(str(p) for p in exc.absolute_path)}"
            )
        checked += 1
    return checked
