"""The operations endpoints every service serves: /metrics, /healthz and /readyz."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)


class OpsServer:
    """A small HTTP server; ``ready`` decides /readyz (200 or 503), /healthz is 200 while alive.

    ``problems`` lists what is broken (a view that stopped following its topic, ...): any makes
    /readyz answer 503 with the reasons, so an operator sees why rather than "starting".
    """

    def __init__(
        self,
        host: str,
        port: int,
        ready: Callable[[], bool],
        problems: Callable[[], list[str]] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._ready = ready
        self._problems = problems or list
        self._runner: web.AppRunner | None = None

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        problems = self._problems()
        if problems:
            return web.json_response({"status": "failing", "reasons": problems}, status=503)
        if self._ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "starting"}, status=503)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        # aiohttp keeps the listening sockets on the site; read the port that 0 picked.
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("ops endpoints on http://%s:%d (/metrics /healthz /readyz)", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
