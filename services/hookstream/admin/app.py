"""The admin service's FastAPI app: one factory, one lifespan holding every I/O lifetime."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from types import FrameType
from typing import Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi

from hookstream import __version__
from hookstream.admin import deliveries, health, policy_routes, schema_routes, webhooks
from hookstream.admin.auth import TokenCheck, require_token
from hookstream.admin.console import mount_console
from hookstream.admin.event_types import check_triggers, open_catalog
from hookstream.admin.event_types import router as event_types_router
from hookstream.admin.limits import AdmissionMiddleware
from hookstream.admin.problems import PROBLEM_JSON, install_problem_handlers
from hookstream.admin.state import open_state
from hookstream.admin.store import Clock
from hookstream.history.store import HistoryStore
from hookstream.metrics import ADMIN_REQUESTS
from hookstream.records.models import now_ms
from hookstream.settings import Settings

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

DESCRIPTION = """\
Manage hookstream's webhooks, its global delivery settings and the notification status.

Every route under `/api/v1` needs `Authorization: Bearer <token>` with one of the tokens in
`HOOKSTREAM_ADMIN__TOKENS`. Writes go to the webhook registry through Kafka; a write answers
once the change is visible, or with 503 if the registry (run by the matcher) did not apply it
within `HOOKSTREAM_ADMIN__WRITE_TIMEOUT_S`. Lists page the way the portal does: `start`
(1-based) and `num` in, `total` and `next_start` (null on the last page) out. Times are epoch
milliseconds. Secrets are write-only. Errors are RFC 9457 problem details.
"""


def create_app(
    settings: Settings,
    bootstrap: str,
    clock: Clock = now_ms,
    history: HistoryStore | None = None,
) -> FastAPI:
    """The admin app for these settings and this Kafka cluster; ``clock`` drives retention,
    ``history`` replaces the delivery history the settings name (the app closes it)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            open_state(settings, bootstrap, clock, history) as state,
            open_catalog(settings, bootstrap) as catalog,
        ):
            app.state.admin = state
            app.state.catalog = catalog
            log.info("admin API started; views are catching up (see /readyz)")
            yield
        log.info("admin API stopped")

    app = FastAPI(
        title="hookstream admin API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.token_check = TokenCheck(settings.admin.tokens)

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        ADMIN_REQUESTS.labels(status=str(response.status_code)).inc()
        return response

    # Added last, so it runs first: nothing reads a body before the token and size are checked.
    app.add_middleware(AdmissionMiddleware)
    install_problem_handlers(app)
    app.include_router(health.router)
    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_token)])
    api.include_router(webhooks.router, dependencies=[Depends(check_triggers)])
    api.include_router(deliveries.router)
    api.include_router(policy_routes.router)
    api.include_router(schema_routes.router)
    api.include_router(event_types_router)
    app.include_router(api)
    mount_console(app, settings)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with error answers under the media type they are sent with."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for path in document.get("paths", {}).values():
            for operation in path.values():
                for code, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if code.startswith(("4", "5")) and "application/json" in content:
                        schema = content["application/json"].get("schema", {})
                        if schema.get("$ref", "").endswith("/Problem"):
                            response["content"] = {PROBLEM_JSON: content["application/json"]}
        app.openapi_schema = document
    return app.openapi_schema


class _Server(uvicorn.Server):
    """uvicorn's server, but a SIGTERM or SIGINT it has shut down for cleanly ends the process
    with 0: uvicorn raises the signal again afterwards, so a clean stop looked like a kill."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def run_admin(settings: Settings, bootstrap: str) -> int:
    """Serve the admin API on ``settings.admin.host:port`` until SIGINT or SIGTERM."""
    app = create_app(settings, bootstrap)
    config = uvicorn.Config(
        app,
        host=settings.admin.host,
        port=settings.admin.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        proxy_headers=False,
        server_header=False,
    )
    server = _Server(config)
    stopped_before_start: list[int] = []

    def stop_before_start(sig: int, frame: FrameType | None) -> None:
        # until uvicorn installs its own handlers in run(), a SIGTERM would kill the process
        stopped_before_start.append(sig)
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop_before_start)
    sock = config.bind_socket()
    sock.listen(config.backlog)  # connections queue from now on, none is refused during start-up
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    log.info("admin API listening on http://%s:%d (console: /console)", shown, port)
    server.run(sockets=[sock])
    return 0 if server.started or stopped_before_start else 1
