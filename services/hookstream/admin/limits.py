"""Admission of admin API requests before any body is read: the token first, then a size cap.

A pure ASGI middleware, so that nothing reads a body it has not admitted: a request under
``/api/`` without a valid token is answered 401 before one byte of its body is received, and a
body over ``MAX_BODY_BYTES`` (by ``Content-Length`` up front, or counted as a chunked body
arrives) is answered 413. The admitted body (at most the cap) is replayed to the app.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookstream.admin.auth import UNAUTHORIZED_DETAIL, TokenCheck, log_refusal
from hookstream.admin.problems import problem

#: The largest request body the admin API reads (a webhook config is a few KB).
MAX_BODY_BYTES = 1024 * 1024
_PROTECTED = "/api/"


class AdmissionMiddleware:
    """Refuses unauthenticated and oversized requests before their bodies are read."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        path: str = scope.get("path", "")
        if path.startswith(_PROTECTED) and not self._authenticated(scope, headers):
            await _problem(scope, send, 401, UNAUTHORIZED_DETAIL, {"WWW-Authenticate": "Bearer"})
            return
        too_large = (
            f"the request body is larger than {self.max_body_bytes} bytes, the admin API's limit"
        )
        length = headers.get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _problem(scope, send, 400, "the Content-Length header is not a number")
                return
            if declared > self.max_body_bytes:
                await _problem(scope, send, 413, too_large)
                return
        if scope.get("method") in ("GET", "HEAD", "DELETE", "OPTIONS") and length is None:
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                await _problem(scope, send, 413, too_large)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(bytes(body), receive), send)

    @staticmethod
    def _authenticated(scope: Scope, headers: dict[str, bytes]) -> bool:
        check: TokenCheck = scope["app"].state.token_check
        scheme, _, token = headers.get("authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and token and check.accepts(token.strip()):
            return True
        client = scope.get("client")
        log_refusal(
            scope.get("method", ""),
            scope.get("path", ""),
            client[0] if client else None,
            bool(token),
        )
        return False


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands over the admitted body once, then waits for the disconnect."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _problem(
    scope: Scope, send: Send, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    """Answer with a problem document without reading the body, and close the connection."""
    response = problem(status, detail, headers={**(headers or {}), "Connection": "close"})
    await response(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}
