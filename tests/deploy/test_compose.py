"""docker-compose.yml: valid for the Compose Specification, and consistent with hookstream."""

from __future__ import annotations

import ipaddress
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from deploy.deployfiles import (
    COMMIT_MARGIN_S,
    COMPOSE_FILE,
    LISTENS,
    ROOT,
    dockerfile_args,
    hookstream_services,
    interpolated_names,
    load_compose,
    longest_attempt_s,
    raw_compose,
    settings_from_env,
    unknown_variables,
)
from hookstream.settings import LocalKafkaSettings
from support import wait_until


def test_the_reference_loader_refuses_a_broken_file(tmp_path: Path) -> None:
    # The validator really validates: a dangling depends_on and an unknown key are refused.
    broken = raw_compose()
    broken["services"]["matcher"]["depends_on"] = {"nowhere": {"condition": "service_healthy"}}
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    try:
        load_compose(path, tmp_path)
    except AssertionError as exc:
        assert "nowhere" in str(exc)
    else:
        raise AssertionError("compose-go accepted a depends_on on an undefined service")
    broken = raw_compose()
    broken["services"]["sender"]["enviroment"] = {"A": "b"}
    path.write_text(yaml.safe_dump(broken))
    try:
        load_compose(path, tmp_path)
    except AssertionError as exc:
        assert "enviroment" in str(exc)
    else:
        raise AssertionError("compose-go accepted an unknown service key")


def test_every_service_has_an_image_that_exists_or_is_built(
    compose_project: dict[str, Any],
) -> None:
    services = compose_project["services"]
    assert {"kafka", "topics", "matcher", "sender", "admin", "receiver"} <= set(services)
    for name, service in services.items():
        assert service.get("image") or service.get("build"), f"{name} has no image and no build"
        if "build" in service:
            context = Path(service["build"]["context"])
            assert context == ROOT, f"{name} builds from {context}"
            assert (context / service["build"].get("dockerfile", "Dockerfile")).is_file()
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: pin the tag of {image}"
    built = {s["image"] for s in services.values() if "build" in s}
    assert len(built) == 1, f"every hookstream service runs the one image: {built}"
    # The broker is the Kafka version hookstream's own tests run against.
    assert services["kafka"]["image"] == f"apache/kafka:{LocalKafkaSettings().version}"
    assert LocalKafkaSettings().version.startswith("4.0.")
    # The demo receiver runs on the image the Dockerfile builds on (one base to pull).
    assert services["receiver"]["image"] == dockerfile_args()["PYTHON_IMAGE"]


def test_every_dependency_exists_and_can_be_met(compose_project: dict[str, Any]) -> None:
    services = compose_project["services"]
    raw = raw_compose()["services"]
    for name, service in raw.items():
        for target in service.get("depends_on", {}):
            assert target in raw, f"{name} depends on {target}, which is not a service"
    for name, service in services.items():
        for target, dependency in service.get("depends_on", {}).items():
            condition = dependency["condition"]
            if condition == "service_healthy":
                assert services[target].get("healthcheck", {}).get("test"), (
                    f"{name} waits for {target} to be healthy, but it has no health check"
                )
            if condition == "service_completed_successfully":
                assert services[target].get("restart", "no") == "no", f"{target} is one-shot"
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["topics"]["command"] == ["topics", "create"]
    for name in ("matcher", "sender", "admin"):
        condition = services[name]["depends_on"]["topics"]["condition"]
        assert condition == "service_completed_successfully", name


def test_every_hookstream_variable_is_a_setting(compose_project: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text()
    used = interpolated_names(text) | set(re.findall(r"\bHOOKSTREAM_[A-Z0-9_]+", text))
    for service in compose_project["services"].values():
        used |= set(service.get("environment") or {})
    assert {name for name in used if name.startswith("HOOKSTREAM_")}, "found no HOOKSTREAM_*"
    assert unknown_variables(used) == []
    for name in interpolated_names(text):
        assert name.startswith("HOOKSTREAM_"), f"${{{name}}}: configure through settings only"


def test_each_service_listens_where_its_health_check_and_port_look(
    compose_project: dict[str, Any],
) -> None:
    services = hookstream_services(compose_project)
    for name, listens in LISTENS.items():
        service = services[name]
        settings = settings_from_env(service["environment"])
        host, port = listens(settings)
        assert host == "0.0.0.0", f"{name} must listen on every interface in a container"
        urls = re.findall(r"http://[^'\" ]+", " ".join(service["healthcheck"]["test"]))
        assert len(urls) == 1, f"{name}'s health check names no URL"
        check = urlsplit(urls[0])
        assert (check.port, check.path) == (port, "/readyz"), f"{name}: {urls[0]}"
    published = services["admin"]["ports"]
    admin = settings_from_env(services["admin"]["environment"])
    assert [(p["host_ip"], int(p["target"])) for p in published] == [
        ("127.0.0.1", admin.admin.port)
    ], "publish the admin API on the laptop's loopback only"


def test_only_the_demo_receiver_may_be_reached_over_plain_http(
    compose_project: dict[str, Any],
) -> None:
    services = compose_project["services"]
    receiver_ip = services["receiver"]["networks"]["default"]["ipv4_address"]
    subnet = compose_project["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(receiver_ip) in ipaddress.ip_network(subnet)
    for name, service in hookstream_services(compose_project).items():
        settings = settings_from_env(service["environment"])
        if name in ("sender", "admin", "cli"):
            # The sender delivers to it; the admin API and the cli check URLs when registering.
            assert settings.delivery.allow_plain_http, name
            assert settings.security.allow_networks == [f"{receiver_ip}/32"], name
        else:
            assert not settings.delivery.allow_plain_http, name
            assert settings.security.allow_networks == [], name


def test_secrets_are_overridable_and_shared(compose_project: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text()
    for name in ("HOOKSTREAM_SECURITY__SECRETS_KEYS", "HOOKSTREAM_ADMIN__TOKENS"):
        assert re.search(r"\$\{" + name + r":-", text), f"{name} must be overridable"
    keys = {
        tuple(
            k.get_secret_value() for k in settings_from_env(s["environment"]).security.secrets_keys
        )
        for name, s in hookstream_services(compose_project).items()
        if name != "topics"
    }
    # Every service must decrypt what the others encrypt.
    assert len(keys) == 1 and all(keys), keys


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_demo_receiver_answers_posts(compose_project: dict[str, Any]) -> None:
    command = compose_project["services"]["receiver"]["command"]
    assert command[:3] == ["python", "-u", "-c"]
    port = _free_port()
    script = command[3]
    assert '("0.0.0.0", 8000)' in script
    script = script.replace('("0.0.0.0", 8000)', f'("127.0.0.1", {port})')
    process = subprocess.Popen(
        [sys.executable, "-u", "-c", script], stdout=subprocess.PIPE, text=True
    )
    try:
        answer = wait_until(
            lambda: _post(f"http://127.0.0.1:{port}/hooks/demo"), 10, "the demo receiver"
        )
        assert answer.status_code == 200
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert 'POST /hooks/demo d-1 {"hello": 1}' in output


def _post(url: str) -> httpx.Response | None:
    try:
        return httpx.post(url, content=b'{"hello": 1}', headers={"webhook-id": "d-1"}, timeout=2)
    except httpx.TransportError:
        return None


def _seconds(duration: str) -> float:
    """A Go duration as compose-go writes it ("2m30s", "1m0s", "30s") in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(number) * units[unit] for number, unit in parts)


def test_stopping_leaves_the_sender_time_to_finish_its_attempts(
    compose_project: dict[str, Any],
) -> None:
    # Docker's default is 10 s: a longer attempt would be cut off and delivered twice.
    services = hookstream_services(compose_project)
    sender = services["sender"]
    assert _seconds(sender["stop_grace_period"]) >= longest_attempt_s() + COMMIT_MARGIN_S
    for name in ("matcher", "admin"):
        assert _seconds(services[name]["stop_grace_period"]) >= 30, name
