"""The admin service stops cleanly on SIGTERM (as Kubernetes stops it) and exits 0."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from hookstream.kafka.topics import create_topics
from support import ServiceProcess, unique_settings


@pytest.mark.integration
def test_sigterm_stops_the_admin_with_exit_code_0(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = unique_settings(kafka_bootstrap)
    settings = settings.model_copy(
        update={
            "admin": settings.admin.model_copy(
                update={"port": 0, "history_path": tmp_path / "history.sqlite3"}
            )
        }
    )
    create_topics(kafka_bootstrap, settings.topics)
    admin = ServiceProcess("admin", settings, tmp_path)
    try:
        admin.wait_for_log("admin API listening on")
    finally:
        code = admin.stop(signal.SIGTERM, timeout_s=60)
    assert code == 0, admin.log_text()[-3000:]
