"""Helpers of the admin tests: the real admin app under uvicorn in a thread, a movable clock.

(Named ``test_*`` only so that it sits with the admin tests; it holds no tests itself.)
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Any, Self

import httpx
import uvicorn

from hookstream.admin.app import create_app
from hookstream.history.store import HistoryStore
from hookstream.records.models import now_ms
from hookstream.settings import AdminSettings, Settings
from support import wait_until

TOKEN = "admin-token-" + "a1b2c3d4e5f6"
ROTATED_TOKEN = "admin-token-" + "rotated-0987"
DAY_MS = 24 * 3600 * 1000


class MovableClock:
    """Wall-clock time plus an offset that a test moves forward instead of waiting."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def __call__(self) -> int:
        return now_ms() + self.offset_ms

    def advance(self, ms: int) -> None:
        self.offset_ms += ms


def with_admin(settings: Settings, **admin: Any) -> Settings:
    """These settings with admin tokens (two, as during a rotation) and quick write timeouts."""
    values: dict[str, Any] = {"tokens": [TOKEN, ROTATED_TOKEN], "write_timeout_s": 15.0, **admin}
    return settings.model_copy(update={"admin": AdminSettings.model_validate(values)})


class AdminServer:
    """``create_app`` served by uvicorn on 127.0.0.1 (a free port) in a background thread."""

    def __init__(
        self,
        settings: Settings,
        clock: MovableClock | None = None,
        history: HistoryStore | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or MovableClock()
        app = create_app(
            settings, settings.kafka_bootstrap or "", clock=self.clock, history=history
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True, name="admin-uvicorn")
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve())
        except BaseException as exc:  # reported by start()
            self._error = exc

    def start(self, ready_timeout_s: float = 60.0) -> AdminServer:
        self._thread.start()

        def started() -> bool:
            if self._error is not None or not self._thread.is_alive():
                raise AssertionError(f"the admin app did not start: {self._error!r}")
            return self.server.started

        wait_until(started, 30, "uvicorn to start the admin app")
        with self.client() as client:
            wait_until(
                lambda: client.get("/readyz").status_code == 200,
                ready_timeout_s,
                "the admin views to catch up",
            )
        return self

    @property
    def url(self) -> str:
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
