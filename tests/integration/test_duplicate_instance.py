"""Two senders (or matchers) started under one HOOKSTREAM_GROUP_INSTANCE_ID: the broker fences
one at each join of the other, forever, while both look healthy; hookstream stops instead,
naming the setting (a copied Deployment env, `docker compose --scale` with a fixed id)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hookstream.settings import Settings
from support import ServiceProcess, wait_until

pytestmark = pytest.mark.integration


READY = {"sender": "sender ready", "matcher": "webhook directory caught up"}


@pytest.mark.parametrize("service", ["sender", "matcher"])
def test_a_duplicate_group_instance_id_stops_a_service_with_a_message(
    make_settings: Callable[..., Settings], tmp_path: Path, service: str
) -> None:
    twin = f"{service}-twin"
    settings = make_settings().model_copy(update={"group_instance_id": twin})
    first = ServiceProcess(service, settings, tmp_path)
    second: ServiceProcess | None = None
    try:
        first.wait_for_log(READY[service])
        second = ServiceProcess(service, settings, tmp_path)
        twins = (first, second)

        def stopped() -> ServiceProcess | None:
            return next((twin for twin in twins if twin.process.poll() is not None), None)

        gone = wait_until(stopped, 120, f"one of the two {service}s to stop")
        assert gone.process.returncode != 0
        assert f"another live process uses HOOKSTREAM_GROUP_INSTANCE_ID={twin}" in (gone.log_text())
    finally:
        first.stop()
        if second is not None:
            second.stop()
