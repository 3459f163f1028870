"""Readers for the deployment files (Dockerfile, Compose, kustomize) and what they should match."""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
import yaml

from hookstream.cli.main import build_parser
from hookstream.ops import OpsServer
from hookstream.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
K8S = ROOT / "k8s"
COMPOSE_CHECK = Path(__file__).resolve().parent / "composecheck"
BIN = Path(sys.executable).parent

#: Kubernetes versions the rendered manifests must be valid for: the oldest we claim and the
#: newest kubernetes-validate ships schemas for (its version is pinned in pyproject.toml).
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")

#: The services the image runs, with the command that runs each.
SERVICE_COMMANDS = {
    "matcher": ["matcher"],
    "sender": ["sender"],
    "admin": ["admin"],
    "topics": ["topics", "create"],
}

#: Where each long-running service listens, by the settings that decide it.
LISTENS: dict[str, Callable[[Settings], tuple[str, int]]] = {
    "matcher": lambda s: (s.ops.host, s.ops.matcher_port),
    "sender": lambda s: (s.ops.host, s.ops.sender_port),
    "admin": lambda s: (s.admin.host, s.admin.port),
}


def tool(name: str, how: str) -> str:
    """The path of a command-line tool (the venv's first); fails the test, saying how to get it."""
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        pytest.fail(f"`{name}` is not installed; {how}", pytrace=False)
    return found


# --- settings -------------------------------------------------------------------------------


def _settings_table() -> Any:
    spec = importlib.util.spec_from_file_location(
        "settings_table", ROOT / "scripts" / "settings_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def setting_variables() -> frozenset[str]:
    """Every environment variable hookstream's settings read (the README's table)."""
    names: set[str] = set()
    for variable, _default, _meaning in _settings_table().rows(Settings, "HOOKSTREAM_"):
        # "HOOKSTREAM_KAFKA_BOOTSTRAP (or KAFKA_BOOTSTRAP_SERVERS)": both names are read.
        names.update(re.findall(r"[A-Z][A-Z0-9_]+", variable))
    return frozenset(names)


def unknown_variables(names: set[str]) -> list[str]:
    """The HOOKSTREAM_* names among ``names`` that no setting reads."""
    return sorted(
        name for name in names if name.startswith("HOOKSTREAM_") and name not in setting_variables()
    )


def settings_from_env(env: dict[str, str]) -> Settings:
    """The settings a process with exactly this environment reads."""
    with mock.patch.dict(os.environ, env, clear=True):
        return Settings()


def upper_bound(model: type[Any], field: str) -> float:
    """The ``le`` bound of a pydantic field: the largest value a setting or record may hold."""
    for item in model.model_fields[field].metadata:
        bound = getattr(item, "le", None)
        if bound is not None:
            return float(bound)
    raise AssertionError(f"{model.__name__}.{field} has no upper bound")


def longest_attempt_s() -> float:
    """How long one delivery attempt may run: the largest connect and read timeouts a webhook
    or the settings may give, plus the second the sender adds (the drain must cover it)."""
    from hookstream.records.models import WebhookConfig
    from hookstream.settings import DeliverySettings

    connect = max(
        upper_bound(WebhookConfig, "connect_timeout_s"),
        upper_bound(DeliverySettings, "default_connect_timeout_s"),
    )
    read = max(
        upper_bound(WebhookConfig, "read_timeout_s"),
        upper_bound(DeliverySettings, "request_timeout_s"),
    )
    return connect + read + 1


#: Time the sender needs after the last attempt: its final commit and the producer's flush.
COMMIT_MARGIN_S = 15.0


# --- metrics ------------------------------------------------------------------------------


def hookstream_metrics() -> dict[str, str]:
    """Exposed metric name -> type, for every metric hookstream defines (in hookstream.metrics,
    and the unreadable-batch counter that hookstream.kafka.clients keeps beside its reader)."""
    from prometheus_client.metrics import MetricWrapperBase

    import hookstream.kafka.clients
    import hookstream.metrics

    found = {}
    modules = (hookstream.metrics, hookstream.kafka.clients)
    for value in [v for module in modules for v in vars(module).values()]:
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                name = family.name + ("_total" if family.type == "counter" else "")
                found[name] = family.type
    return found


# --- the CLI ------------------------------------------------------------------------------


def subcommands() -> set[str]:
    """The top-level ``hookstream`` subcommands, as the CLI defines them."""
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def handler_for(argv: list[str]) -> Callable[..., int]:
    """The function ``hookstream ARGV`` runs; fails if the CLI has no such command."""
    if argv and not argv[0].startswith("-") and argv[0] not in subcommands():
        pytest.fail(
            f"`hookstream {' '.join(argv)}` is named by the deployment files, but the CLI has no "
            f"`{argv[0]}` command (it has: {', '.join(sorted(subcommands()))})",
            pytrace=False,
        )
    handler: Callable[..., int] = build_parser().parse_args(argv).handler
    return handler


# --- Dockerfile -----------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str
    line: int

    def exec_form(self) -> list[str]:
        """The JSON-array (exec) form's words; shell form split like a shell would."""
        text = self.arguments.strip()
        if text.startswith("["):
            words: list[str] = json.loads(text)
            return words
        return shlex.split(text)


def dockerfile_instructions() -> list[Instruction]:
    """The instructions, with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    start = 0
    for number, raw in enumerate(DOCKERFILE.read_text().splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, arguments = pending.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        pending = ""
    return instructions


def dockerfile_stages() -> list[list[Instruction]]:
    """The instructions of each build stage, from its FROM on."""
    stages: list[list[Instruction]] = []
    for instruction in dockerfile_instructions():
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def dockerfile_args() -> dict[str, str]:
    """Defaults of the ARGs declared before the first FROM."""
    args: dict[str, str] = {}
    for instruction in dockerfile_instructions():
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            name, _, default = instruction.arguments.partition("=")
            args[name] = default
    return args


def final_stage_value(keyword: str) -> list[str]:
    """The exec-form words of the last ``keyword`` (ENTRYPOINT, CMD, USER...) of the final stage."""
    found = [i for i in dockerfile_stages()[-1] if i.keyword == keyword]
    assert found, f"the final stage of the Dockerfile has no {keyword}"
    return found[-1].exec_form()


def image_argv(command: list[str]) -> list[str]:
    """What the image runs for a command: its ENTRYPOINT and the command, with the console
    script of this checkout standing in for the image's ``hookstream``."""
    entrypoint = final_stage_value("ENTRYPOINT")
    assert entrypoint == ["hookstream"], f"unexpected ENTRYPOINT {entrypoint}"
    return [str(BIN / "hookstream"), *command]


# --- Compose --------------------------------------------------------------------------------


@cache
def _composecheck_binary(out_dir: str) -> Path:
    go = tool("go", "install Go 1.24+ (tests/deploy/composecheck is a Go program)")
    binary = Path(out_dir) / "composecheck"
    # No toolchain download, go.sum as committed, no VCS stamp (the checkout may be detached).
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly -buildvcs=false"}
    built = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=COMPOSE_CHECK,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    if built.returncode != 0:
        pytest.fail(
            "could not build tests/deploy/composecheck (scripts/bootstrap.sh --test-tools "
            f"downloads its modules with `go mod download`):\n{built.stderr}",
            pytrace=False,
        )
    return binary


def load_compose(path: Path, out_dir: Path) -> dict[str, Any]:
    """``path`` loaded and validated by compose-go: the resolved project as a dict."""
    binary = _composecheck_binary(str(out_dir))
    loaded = subprocess.run(
        [str(binary), str(path)], capture_output=True, text=True, timeout=60, cwd=path.parent
    )
    assert loaded.returncode == 0, f"{path.name} is not a valid Compose file:\n{loaded.stderr}"
    project: dict[str, Any] = json.loads(loaded.stdout)
    return project


def raw_compose() -> dict[str, Any]:
    """The Compose file as written (anchors resolved by YAML, nothing interpolated)."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


def interpolated_names(text: str) -> set[str]:
    """Variables a Compose file interpolates: ``$NAME``, ``${NAME}``, ``${NAME:-x}``..."""
    return set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text.replace("$$", "")))


def hookstream_services(project: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The Compose services that run the hookstream image."""
    image = project["services"]["matcher"]["image"]
    return {
        name: service
        for name, service in project["services"].items()
        if service.get("image") == image
    }


# --- kustomize ------------------------------------------------------------------------------


def render(folder: str) -> list[dict[str, Any]]:
    """``kustomize build FOLDER`` (what ``kubectl kustomize`` runs): every object it renders."""
    kustomize = tool("kustomize", "run `make setup`: it builds kustomize with Go")
    rendered = subprocess.run(
        [kustomize, "build", str(K8S / folder)], capture_output=True, text=True, timeout=120
    )
    assert rendered.returncode == 0, f"kustomize build k8s/{folder} failed:\n{rendered.stderr}"
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def with_components(tmp_path: Path, *components: str) -> list[dict[str, Any]]:
    """The base with the given k8s/components, in this order, as an installation's overlay
    renders it."""
    overlay = tmp_path / ("overlay-" + "-".join(components))
    overlay.mkdir(exist_ok=True)
    # kustomize takes folders by relative path only.
    listed = "".join(
        f"  - {os.path.relpath(K8S / 'components' / name, overlay)}\n" for name in components
    )
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {os.path.relpath(K8S / 'base', overlay)}\ncomponents:\n{listed}"
    )
    return render(str(overlay))


def validate_core(objects: list[dict[str, Any]], version: str) -> None:
    """Every object of a Kubernetes kind valid for that Kubernetes version (kubernetes-validate,
    offline); custom resources are left to ``crds.validate_custom``."""
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail(
            "kubernetes-validate is not installed: add kubernetes-validate==1.37.0 to the dev "
            "extra (pyproject.toml) and run scripts/bootstrap.sh",
            pytrace=False,
        )
    for obj in objects:
        if is_custom(obj):
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(
                f"{obj['kind']}/{obj['metadata']['name']} is invalid for Kubernetes {version}: "
                f"{exc.message} at {'.'.join(str(p) for p in exc.path)}"
            ) from None


def is_custom(obj: dict[str, Any]) -> bool:
    """Whether an object is a custom resource (KEDA, Strimzi, Prometheus Operator...): its API
    group has a dot and is not one of Kubernetes' own ``*.k8s.io`` groups."""
    group = obj["apiVersion"].rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container_env(
    container: dict[str, Any], objects: list[dict[str, Any]], missing_secret: str
) -> dict[str, str]:
    """The environment a container gets: envFrom ConfigMaps/Secrets, then env (which wins).
    A value from a Secret that is not rendered (the base has none) is ``missing_secret``."""
    config_maps = of_kind(objects, "ConfigMap")
    secrets = of_kind(objects, "Secret")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]]["data"])
        if "secretRef" in source:
            env.update(secret_data(secrets[source["secretRef"]["name"]]))
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        field = entry["valueFrom"].get("fieldRef")
        if field is not None:
            # The downward API: what a pod of this container would see (its own name).
            assert field["fieldPath"] == "metadata.name", f"unsupported fieldRef in {entry}"
            env[entry["name"]] = f"{container['name']}-pod-0"
            continue
        ref = entry["valueFrom"].get("secretKeyRef") or entry["valueFrom"].get("configMapKeyRef")
        assert ref is not None, f"unsupported valueFrom in {entry}"
        if "secretKeyRef" in entry["valueFrom"]:
            secret = secrets.get(ref["name"])
            env[entry["name"]] = (
                missing_secret if secret is None else secret_data(secret)[ref["key"]]
            )
        else:
            env[entry["name"]] = config_maps[ref["name"]]["data"][ref["key"]]
    return env


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
    data.update(secret.get("stringData", {}))
    return data


def named_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's or Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    for entry in container.get("ports", []):
        if entry.get("name") == port:
            return int(entry["containerPort"])
    raise AssertionError(f"container {container['name']} has no port named {port!r}")


def labels_match(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions In/NotIn) selects ``labels``."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        value = labels.get(expression["key"])
        if expression["operator"] == "In" and value not in expression["values"]:
            return False
        if expression["operator"] == "NotIn" and value in expression["values"]:
            return False
    return True


# --- what the services serve ----------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status_when_ready: int
    status_when_starting: int
    content_type: str


def ops_answers(paths: set[str]) -> dict[str, Answer]:
    """How a real OpsServer (the matcher's and sender's) answers each path, ready or not."""

    async def probe() -> dict[str, Answer]:
        state = {"ready": False}
        server = OpsServer("127.0.0.1", 0, ready=lambda: state["ready"])
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
                starting = {path: await client.get(path) for path in paths}
                state["ready"] = True
                ready = {path: await client.get(path) for path in paths}
        finally:
            await server.stop()
        return {
            path: Answer(
                ready[path].status_code,
                starting[path].status_code,
                ready[path].headers.get("content-type", ""),
            )
            for path in paths
        }

    return asyncio.run(probe())


def admin_paths() -> set[str]:
    """The paths the admin API's app routes (the app is built, nothing is started)."""
    from hookstream.admin.app import create_app

    app = create_app(Settings(), "127.0.0.1:1")
    paths = set(app.openapi()["paths"])
    # Routes kept out of the schema (and mounted apps such as a metrics endpoint) count too.
    paths.update(
        path for route in app.routes if isinstance(path := getattr(route, "path", None), str)
    )
    return paths


def walk(value: Any) -> Iterator[Any]:
    """Every nested value of a YAML document."""
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)
