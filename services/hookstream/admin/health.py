"""/healthz (the process runs), /readyz (every view has caught up) and /metrics; no token."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hookstream.admin.deps import State
from hookstream.admin.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="200 while the process runs")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="200 once the webhook, settings and notification-status views have caught up",
    responses={503: {"model": Health, "description": "Still catching up."}},
)
async def readyz(state: State, response: Response) -> Health:
    waiting = state.waiting_for()
    if waiting:
        response.status_code = 503
        return Health(status="starting", waiting_for=waiting)
    return Health(status="ready")


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format), admin requests by status code among them",
    response_class=PlainTextResponse,
)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
