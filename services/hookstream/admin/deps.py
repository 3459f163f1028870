"""Route dependencies: the admin state, views that must have caught up, paging parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request

from hookstream.admin.state import AdminState
from hookstream.records.models import WebhookConfig

MAX_PAGE = 100


def get_state(request: Request) -> AdminState:
    state: AdminState = request.app.state.admin
    return state


State = Annotated[AdminState, Depends(get_state)]


def _not_ready(view: str) -> HTTPException:
    return HTTPException(
        status_code=503,
        detail=f"the admin service is starting: its {view} view has not caught up yet; retry",
        headers={"Retry-After": "1"},
    )


def webhook_view(state: State) -> AdminState:
    """The state, once the webhook view holds everything the config topic held at start."""
    if not state.webhooks.ready.is_set():
        raise _not_ready("webhooks")
    return state


def policy_view(state: State) -> AdminState:
    if not state.policy.ready.is_set():
        raise _not_ready("settings")
    return state


def status_view(state: State) -> AdminState:
    if not state.webhooks.ready.is_set():
        raise _not_ready("webhooks")
    if not all(feed.ready.is_set() for feed in state.store_feeds):
        raise _not_ready("notification status")
    return state


Webhooks = Annotated[AdminState, Depends(webhook_view)]
Policy = Annotated[AdminState, Depends(policy_view)]
Statuses = Annotated[AdminState, Depends(status_view)]

Start = Annotated[int, Query(ge=1, le=1_000_000_000, description="1-based index of the first.")]
Num = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"How many, up to {MAX_PAGE}.")]


def find_webhook(state: AdminState, webhook_id: str) -> WebhookConfig:
    """The webhook, or 404."""
    config = state.directory.get(webhook_id)
    if config is None:
        raise HTTPException(status_code=404, detail=f"no webhook with id {webhook_id!r}")
    return config


def next_start(start: int, num: int, total: int) -> int | None:
    """The portal's ``nextStart``: where the next page begins, None after the last page."""
    following = start + num
    return following if following <= total else None
