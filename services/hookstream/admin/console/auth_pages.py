"""Sign-in and sign-out of the console: an admin token in, a session cookie out."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from hookstream.admin.auth import TokenCheck, log_refusal
from hookstream.admin.console.pages import (
    PREFIX,
    ConsoleRoute,
    CsrfRefused,
    Signed,
    keeper,
    read_form,
    render,
    see_other,
)
from hookstream.admin.console.session import (
    COOKIE_PATH,
    LOGIN_COOKIE,
    LOGIN_TTL_S,
    SESSION_COOKIE,
    Session,
)

log = logging.getLogger(__name__)

router = APIRouter(route_class=ConsoleRoute)


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    """HttpOnly, SameSite=Strict, and Secure whenever the console is served over https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _sign_in_page(request: Request, status: int = 200, error: str | None = None) -> Response:
    cookie, csrf = keeper(request).login_form()
    response = render(request, "login.html", status, None, login_csrf=csrf, error=error)
    _set_cookie(request, response, LOGIN_COOKIE, cookie, LOGIN_TTL_S)
    return response


@router.get("/", include_in_schema=False)
async def home(session: Signed) -> Response:
    return see_other("/webhooks")


@router.get("/login", include_in_schema=False)
async def sign_in_form(request: Request) -> Response:
    if keeper(request).check(request.cookies.get(SESSION_COOKIE)) is not None:
        return see_other("/webhooks")
    return _sign_in_page(request)


@router.post("/login", include_in_schema=False)
async def sign_in(request: Request) -> Response:
    form = await read_form(request)
    sessions = keeper(request)
    if not sessions.login_csrf_ok(request.cookies.get(LOGIN_COOKIE), form.optional("csrf")):
        raise CsrfRefused
    token = form.get("token").strip()
    check: TokenCheck = request.app.state.token_check
    if not token or not check.accepts(token):
        client = request.client.host if request.client else None
        log_refusal("POST", request.url.path, client, bool(token))
        return _sign_in_page(request, 401, "That is not one of the admin tokens.")
    cookie, _ = sessions.start(token)
    response = RedirectResponse(f"{PREFIX}/webhooks", status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, cookie, sessions.ttl_s)
    response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
    log.info("console sign-in from %s", request.client.host if request.client else "unknown")
    return response


@router.post("/logout", include_in_schema=False)
async def sign_out(request: Request, session: Signed) -> Response:
    form = await read_form(request)
    if not keeper(request).csrf_ok(session, form.optional("csrf")):
        raise CsrfRefused
    _end(request, session)
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


def _end(request: Request, session: Session) -> None:
    keeper(request).end(session)
