"""Bearer-token authentication of the admin API: every configured token, in constant time."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

log = logging.getLogger(__name__)

#: The one answer to a missing or wrong token: it says nothing about which part was wrong.
UNAUTHORIZED_DETAIL = "a valid bearer token is required"

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    description="One of the tokens in HOOKSTREAM_ADMIN__TOKENS.",
)


class TokenCheck:
    """Holds the accepted tokens as bytes; ``accepts`` compares with all of them, always."""

    def __init__(self, tokens: Iterable[SecretStr]) -> None:
        self._tokens = [token.get_secret_value().encode() for token in tokens]
        if not self._tokens:
            log.warning(
                "no admin tokens configured (HOOKSTREAM_ADMIN__TOKENS): the admin API refuses "
                "every request until one is set"
            )

    def accepts(self, presented: str) -> bool:
        """True if ``presented`` is one of the tokens; no early exit, so timing tells nothing."""
        candidate = presented.encode("utf-8", "surrogateescape")
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(candidate, token)
        return matched


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """The dependency every /api/v1 route has: 401 with ``WWW-Authenticate: Bearer`` unless the
    request carries ``Authorization: Bearer <token>`` with a configured token."""
    check: TokenCheck = request.app.state.token_check
    if credentials is not None and check.accepts(credentials.credentials):
        return
    client = request.client.host if request.client else None
    log_refusal(request.method, request.url.path, client, credentials is not None)
    raise HTTPException(
        status_code=401, detail=UNAUTHORIZED_DETAIL, headers={"WWW-Authenticate": "Bearer"}
    )


def log_refusal(method: str, path: str, client: str | None, presented: bool) -> None:
    """One log line per refused request, never with the token that was presented."""
    log.warning(
        "refused an admin request to %s %s from %s: %s bearer token",
        method,
        path,
        client or "unknown",
        "an unknown" if presented else "no",
    )
