"""What every console page shares: templates, security headers, the session and CSRF checks,
form parsing, and error pages in place of the API's problem documents."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException

from hookstream.admin.console.session import SESSION_COOKIE, Session, SessionKeeper
from hookstream.admin.problems import field_problems

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
PREFIX = "/console"
#: No inline script or style anywhere: only the console's own stylesheet and images.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
FORM_TYPE = "application/x-www-form-urlencoded"

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def when(ms: int | None) -> str:
    """Epoch milliseconds as UTC wall-clock time, the way every page shows times."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


templates.filters["when"] = when


class SignInRequired(Exception):
    """The request has no valid session: it is sent to the sign-in page."""


class CsrfRefused(Exception):
    """A form came without its session's CSRF token (or with a wrong one)."""


def keeper(request: Request) -> SessionKeeper:
    found: SessionKeeper = request.app.state.console_sessions
    return found


def current_session(request: Request) -> Session:
    """The signed-in session of this request, or a redirect to the sign-in page."""
    session = keeper(request).check(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise SignInRequired
    return session


Signed = Annotated[Session, Depends(current_session)]


class Form:
    """The fields of a submitted form; ``get`` gives one value, ``all`` every value of a name."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[0] if values else default

    def optional(self, name: str) -> str | None:
        """The value with surrounding blanks removed, None when empty."""
        value = self.get(name).strip()
        return value or None

    def all(self, name: str) -> list[str]:
        return self.fields.get(name, [])


async def read_form(request: Request) -> Form:
    """The url-encoded form of a POST (the only kind the console's pages send)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != FORM_TYPE:
        raise HTTPException(415, f"the console accepts forms sent as {FORM_TYPE} only")
    body = (await request.body()).decode("utf-8", "replace")
    return Form(parse_qs(body, keep_blank_values=True, max_num_fields=2000))


async def posted_form(request: Request, session: Signed) -> Form:
    """The form of a POST by a signed-in session, once its CSRF token is checked."""
    form = await read_form(request)
    if not keeper(request).csrf_ok(session, form.fields.get("csrf", [None])[0]):
        raise CsrfRefused
    return form


Posted = Annotated[Form, Depends(posted_form)]


def render(
    request: Request,
    template: str,
    status: int = 200,
    session: Session | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page from its template, with the session's CSRF token for its forms."""
    html = templates.get_template(template).render(
        request=request, session=session, prefix=PREFIX, **context
    )
    return HTMLResponse(html, status_code=status)


def see_other(path: str) -> RedirectResponse:
    """After a form: go to the page showing the result (POST-redirect-GET)."""
    return RedirectResponse(PREFIX + path, status_code=303)


def field_errors(exc: RequestValidationError) -> dict[str, str]:
    """The API's field problems, keyed by the form field they belong next to."""
    found: dict[str, str] = {}
    for item in field_problems(exc.errors()):
        key = form_key(item.field)
        found[key] = f"{found[key]}; {item.message}" if key in found else item.message
    return found


def form_key(field: str) -> str:
    """``auth.headers`` -> ``auth``; ``deactivation_policy.days_in_past`` -> ``days_in_past``;
    ``triggers.2`` -> ``triggers``."""
    head, _, rest = field.partition(".")
    if head == "deactivation_policy" and rest:
        return rest.split(".")[0]
    return head


def _error_page(request: Request, status: int, detail: str) -> HTMLResponse:
    session = keeper(request).check(request.cookies.get(SESSION_COOKIE))
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return render(request, "error.html", status, session, title=title, detail=detail)


class ConsoleRoute(APIRoute):
    """A console route: errors become pages, every answer carries the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired:
                response = RedirectResponse(f"{PREFIX}/login", status_code=303)
            except CsrfRefused:
                client = request.client.host if request.client else "unknown"
                log.warning(
                    "refused a console form to %s from %s: missing or wrong CSRF token",
                    request.url.path,
                    client,
                )
                response = _error_page(
                    request,
                    403,
                    "the form's security token is missing or out of date; reload the page "
                    "and submit the form again",
                )
            except RequestValidationError as exc:
                detail = "; ".join(f"{p.field}: {p.message}" for p in field_problems(exc.errors()))
                response = _error_page(request, 422, detail or "invalid request")
            except HTTPException as exc:
                detail = exc.detail if isinstance(exc.detail, str) else "the request failed"
                response = _error_page(request, exc.status_code, detail)
            response.headers.update(SECURITY_HEADERS)
            return response

        return handle
