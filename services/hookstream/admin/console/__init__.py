"""The admin console: server-rendered pages under ``/console`` for administrators in a browser.

It is served by the admin service (same process and port). It signs in with an admin token and
keeps a session cookie; every form carries a per-session CSRF token; pages allow no inline
script or style (Content-Security-Policy). Every read and write goes through the API's own
route functions, so the console and the API apply the same rules.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from hookstream.admin.console import auth_pages, status_pages, webhook_pages
from hookstream.admin.console.pages import HERE, PREFIX
from hookstream.admin.console.session import SessionKeeper
from hookstream.settings import Settings

#: Every router of the console's pages, mounted under ``/console``.
ROUTERS = (auth_pages.router, webhook_pages.router, status_pages.router)


def mount_console(app: FastAPI, settings: Settings) -> None:
    """Serve the console under ``/console`` of ``app``, signing sessions for these settings."""
    app.state.console_sessions = SessionKeeper(
        settings.admin.tokens, settings.admin.session_secret, settings.admin.session_ttl_s
    )
    for router in ROUTERS:
        app.include_router(router, prefix=PREFIX)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")
