"""Fixtures of the deployment checks: the Compose project as compose-go resolves it, and the
kustomize renderings."""

from __future__ import annotations

from typing import Any

import pytest

from deploy.deployfiles import COMPOSE_FILE, load_compose, render


@pytest.fixture(scope="session")
def compose_project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return load_compose(COMPOSE_FILE, tmp_path_factory.mktemp("composecheck"))


@pytest.fixture(scope="session")
def base() -> list[dict[str, Any]]:
    return render("base")


@pytest.fixture(scope="session")
def overlay() -> list[dict[str, Any]]:
    return render("overlays/example")
