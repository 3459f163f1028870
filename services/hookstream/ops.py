"""The operations endpoints every service serves: /metrics, /healthz and /readyz."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hookstream.kafka.follower import ViewLag
from hookstream.metrics import VIEW_FRESH_AGE, VIEW_LAG

log = logging.getLogger(__name__)


class LaggingView(Protocol):
    """A live view of a topic that can say how far it is behind (``CompactedFeed``)."""

    def lag(self) -> ViewLag: ...


def lag_report(lags: Mapping[str, ViewLag]) -> dict[str, dict[str, int | float | None]]:
    """The per-view part of /readyz's body: records behind the topic's end, and seconds since the
    view was last known to hold all of it (null while unknown), so an operator sees which view
    lags and by how much."""
    return {
        name: {
            "records_behind": lag.records,
            "seconds_since_fresh": None if lag.fresh_age_s is None else round(lag.fresh_age_s, 1),
        }
        for name, lag in sorted(lags.items())
    }


def publish_lags(lags: Mapping[str, ViewLag]) -> None:
    """Set the lag gauges (labelled by view name: a few per process, never per record)."""
    for name, lag in lags.items():
        if lag.records is not None:
            VIEW_LAG.labels(view=name).set(lag.records)
        if lag.fresh_age_s is not None:
            VIEW_FRESH_AGE.labels(view=name).set(lag.fresh_age_s)


class OpsServer:
    """A small HTTP server; ``ready`` decides /readyz (200 or 503), /healthz is 200 while alive.

    ``problems`` lists what is broken (a view that stopped following its topic, ...): any makes
    /readyz answer 503 with the reasons, so an operator sees why rather than "starting".
    ``views`` (by name) adds how far each lags its topic to /readyz's body and to /metrics; it
    never changes the status code.
    """

    def __init__(
        self,
        host: str,
        port: int,
        ready: Callable[[], bool],
        problems: Callable[[], list[str]] | None = None,
        views: Mapping[str, LaggingView] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._ready = ready
        self._problems = problems or list
        self._views = dict(views or {})
        self._runner: web.AppRunner | None = None

    def _lags(self) -> dict[str, ViewLag]:
        lags = {name: view.lag() for name, view in self._views.items()}
        publish_lags(lags)
        return lags

    async def _metrics(self, request: web.Request) -> web.Response:
        self._lags()
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        problems = self._problems()
        views = {"views": lag_report(self._lags())} if self._views else {}
        if problems:
            return web.json_response(
                {"status": "failing", "reasons": problems, **views}, status=503
            )
        if self._ready():
            return web.json_response({"status": "ready", **views})
        return web.json_response({"status": "starting", **views}, status=503)

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
