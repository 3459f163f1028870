"""Each service started exactly as the image and docker-compose.yml start it, against the
session's broker: same command, same environment, except what must differ on a shared machine
(the broker address, unique topic names and app id, a free port)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import yaml
from kafka import KafkaAdminClient
from kafka.errors import CoordinatorLoadInProgressError, CoordinatorNotAvailableError
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

import hookstream.metrics
from deploy.deployfiles import (
    K8S,
    LISTENS,
    image_argv,
    of_kind,
    pod_spec,
    settings_from_env,
    subcommands,
)
from hookstream.settings import Settings, TopicSettings
from support import wait_until

pytestmark = pytest.mark.integration

#: The variable that sets each service's port, overridden with a free one.
PORT_VARIABLES = {
    "matcher": "HOOKSTREAM_OPS__MATCHER_PORT",
    "sender": "HOOKSTREAM_OPS__SENDER_PORT",
    "admin": "HOOKSTREAM_ADMIN__PORT",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _topic_variables(tag: str) -> dict[str, str]:
    """HOOKSTREAM_TOPICS__<NAME> for every topic-name setting, with names no other test uses."""
    names: dict[str, str] = {}
    for field, value in TopicSettings().model_dump().items():
        if isinstance(value, str | list):
            names[f"HOOKSTREAM_TOPICS__{field.upper()}"] = f"t{tag}.{field}"
    return names


def _as_composed(composed: dict[str, str], overrides: dict[str, str]) -> dict[str, str]:
    """This machine's environment without any hookstream setting, the Compose service's
    environment, then the overrides."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HOOKSTREAM_") and k != "KAFKA_BOOTSTRAP_SERVERS"
    }
    env.update(composed)
    env.update(overrides)
    return env


def _metric_names() -> set[str]:
    """The metric families hookstream.metrics defines."""
    defined = [v for v in vars(hookstream.metrics).values() if isinstance(v, MetricWrapperBase)]
    assert defined, "hookstream.metrics defines no metric"
    return {family.name for metric in defined for family in metric.describe()}


def _manifest_paths(base: list[dict[str, Any]], service: str) -> set[str]:
    """The paths the k8s manifests probe or scrape on this service."""
    paths: set[str] = set()
    for deployment in of_kind(base, "Deployment").values():
        (container,) = pod_spec(deployment)["containers"]
        if container["args"][0] != service:
            continue
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            paths.add(container[probe]["httpGet"]["path"])
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        if "prometheus.io/path" in annotations:
            paths.add(annotations["prometheus.io/path"])
    assert paths, f"no Deployment runs {service}"
    return paths


def _grace_period(base: list[dict[str, Any]], service: str) -> int:
    for deployment in of_kind(base, "Deployment").values():
        spec = pod_spec(deployment)
        if spec["containers"][0]["args"][0] == service:
            return int(spec.get("terminationGracePeriodSeconds", 30))
    raise AssertionError(f"no Deployment runs {service}")


def _stable_group(admin: KafkaAdminClient, group: str) -> dict[str, Any] | None:
    try:
        description: dict[str, Any] = admin.describe_groups([group])[group]
    except (CoordinatorNotAvailableError, CoordinatorLoadInProgressError):
        return None  # the group's coordinator is still being elected or loading: not yet
    return description if description.get("group_state") == "Stable" else None


def _check_the_keda_example(
    service: str, settings: Settings, bootstrap: str, process: Started
) -> None:
    """The consumer group and topic the KEDA example scales on are the ones the service uses
    (the example is written for the default app id and topic names)."""
    (scaled,) = [
        s
        for s in yaml.safe_load_all(
            (K8S / "components" / "keda" / "scaledobjects.yaml").read_text()
        )
        if s["kind"] == "ScaledObject"
        if s["spec"]["scaleTargetRef"]["name"] == f"hookstream-{service}"
    ]
    trigger = scaled["spec"]["triggers"][0]["metadata"]
    default_app_id = Settings().app_id
    assert trigger["consumerGroup"].startswith(f"{default_app_id}-")
    group = settings.app_id + trigger["consumerGroup"].removeprefix(default_app_id)
    (field,) = [
        name
        for name, value in TopicSettings().model_dump().items()
        if trigger["topic"] == value or (isinstance(value, list) and trigger["topic"] in value)
    ]
    ours = getattr(settings.topics, field)
    topics = set(ours) if isinstance(ours, list) else {ours}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id=f"check-{settings.app_id}")
    try:
        description = wait_until(
            lambda: process.alive() and _stable_group(admin, group),
            60,
            f"consumer group {group} to be stable",
            step_s=0.5,
        )
    finally:
        admin.close()
    assigned = {
        assignment["topic"]
        for member in description["members"]
        for assignment in member["member_assignment"]["assigned_partitions"]
    }
    assert topics <= assigned, f"{group} consumes {assigned}, not {topics}"


class Started:
    """A process started like the image starts it; its output goes to a file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.process = subprocess.Popen(argv, env=env, stdout=self._out, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> Literal[True]:
        """True, or the process's exit status and the end of its log as the failure."""
        if self.process.poll() is not None:
            raise AssertionError(f"exited with {self.process.returncode}:\n{self.text()[-3000:]}")
        return True

    def stop(self, timeout_s: float) -> int | None:
        """SIGTERM, as Kubernetes and Compose stop a container; None if it outlived the bound."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
                self._out.close()
                return None
        self._out.close()
        return self.process.returncode


@pytest.fixture
def started() -> Iterator[list[Started]]:
    processes: list[Started] = []
    yield processes
    for process in processes:
        process.stop(timeout_s=10)


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=3)
    except httpx.TransportError:
        return None


@pytest.mark.parametrize("service", ["matcher", "sender", "admin"])
def test_service_runs_as_composed(
    service: str,
    kafka_bootstrap: str,
    compose_project: dict[str, Any],
    base: list[dict[str, Any]],
    started: list[Started],
    tmp_path: Path,
) -> None:
    if service not in subcommands():
        pytest.fail(
            f"`hookstream {service}` does not exist yet, but the image, docker-compose.yml and "
            f"k8s/ run it: this test checks it as soon as it lands",
            pytrace=False,
        )
    composed = compose_project["services"][service]
    assert PORT_VARIABLES[service] in composed["environment"], "compose sets the port it uses"
    tag = uuid.uuid4().hex[:10]
    overrides = {
        "HOOKSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "HOOKSTREAM_APP_ID": f"hs-{tag}",
        PORT_VARIABLES[service]: str(_free_port()),
        **_topic_variables(tag),
    }
    env = _as_composed(composed["environment"], overrides)
    settings: Settings = settings_from_env(
        {k: v for k, v in env.items() if k.startswith("HOOKSTREAM_")}
    )
    host, port = LISTENS[service](settings)
    assert host == "0.0.0.0"

    # The one-shot topics service, as composed, creates the topics first.
    topics = compose_project["services"]["topics"]
    created = subprocess.run(
        image_argv(topics["command"]),
        env=_as_composed(topics["environment"], overrides),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    for name in settings.topics.all_names():
        assert f"created  {name}" in created.stdout, created.stdout

    process = Started(image_argv(composed["command"]), env, tmp_path / f"{service}.log")
    started.append(process)
    base_url = f"http://127.0.0.1:{port}"

    def answers(path: str, status: int) -> bool:
        answer = process.alive() and _get(base_url + path)
        return answer is not None and answer.status_code == status

    wait_until(lambda: answers("/healthz", 200), 120, f"{service} to answer /healthz")
    wait_until(lambda: answers("/readyz", 200), 120, f"{service} to be ready")

    # Every path the manifests probe or scrape answers 200 once the service is ready.
    for path in sorted(_manifest_paths(base, service)):
        answer = httpx.get(base_url + path, timeout=5)
        assert answer.status_code == 200, f"{service} {path}: {answer.status_code}"
        if path == "/metrics":
            families = {f.name for f in text_string_to_metric_families(answer.text)}
            assert _metric_names() <= families, _metric_names() - families

    if service in ("matcher", "sender"):
        _check_the_keda_example(service, settings, kafka_bootstrap, process)

    # Logs are JSON lines, and the settings line masks the secrets Compose passes.
    log = process.text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    starting = [line for line in lines if "starting with settings" in line["message"]]
    assert starting, log[-3000:]
    assert {"ts", "level", "logger", "message"} <= set(starting[0])
    for secret in (
        composed["environment"].get("HOOKSTREAM_SECURITY__SECRETS_KEYS"),
        composed["environment"].get("HOOKSTREAM_ADMIN__TOKENS"),
    ):
        if secret:
            assert secret not in log, "a secret from the environment reached the log"

    # Stopped as Kubernetes stops a pod, it exits within the Deployment's grace period.
    grace = _grace_period(base, service)
    code = process.stop(timeout_s=grace)
    assert code is not None, f"{service} outlived SIGTERM by {grace} s"
    assert code in (0, -signal.SIGTERM), f"{service} exited with {code}:\n{process.text()[-3000:]}"
