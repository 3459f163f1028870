"""Console sign-in: signed session cookies, per-session CSRF tokens, sign-out.

A session is a cookie ``v1.<expires>.<nonce>.<token mark>.<signature>``, signed with HMAC-SHA256
under ``HOOKSTREAM_ADMIN__SESSION_SECRET`` so that every admin replica accepts it. The token
mark is an HMAC of the admin token the session signed in with: removing that token from
``HOOKSTREAM_ADMIN__TOKENS`` ends its sessions. The CSRF token of a session is an HMAC of its
nonce, so it needs no storage; sign-out remembers the nonce until the session would expire.
The sign-in form has its own CSRF token, bound to a short-lived pre-session cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import SecretStr

log = logging.getLogger(__name__)

SESSION_COOKIE = "hookstream_console"
LOGIN_COOKIE = "hookstream_console_login"
COOKIE_PATH = "/console"
#: How long a sign-in form may stay open before it is submitted.
LOGIN_TTL_S = 3600
_VERSION = "v1"


@dataclass(frozen=True)
class Session:
    """A signed-in administrator's session; ``csrf`` goes into every form it is shown."""

    nonce: str
    expires_at: int
    csrf: str


class SessionKeeper:
    """Issues and checks session cookies and CSRF tokens for the configured admin tokens."""

    def __init__(self, tokens: Iterable[SecretStr], secret: SecretStr | None, ttl_s: int) -> None:
        if secret is None:
            log.warning(
                "HOOKSTREAM_ADMIN__SESSION_SECRET is not set: console sessions are signed with a "
                "random key of this process, so a restart (or another replica) signs everyone out"
            )
            self._key = secrets.token_bytes(32)
        else:
            self._key = secret.get_secret_value().encode()
        self._marks = {self._mark(token.get_secret_value()) for token in tokens}
        self.ttl_s = ttl_s
        self._ended: dict[str, int] = {}

    def _sign(self, purpose: str, text: str) -> str:
        return hmac.new(self._key, f"{purpose}:{text}".encode(), hashlib.sha256).hexdigest()

    def _mark(self, token: str) -> str:
        return self._sign("token", token)[:32]

    def start(self, token: str) -> tuple[str, Session]:
        """The cookie value and session for a sign-in with ``token`` (already checked)."""
        expires_at = int(time.time()) + self.ttl_s
        nonce = secrets.token_urlsafe(18)
        body = f"{_VERSION}.{expires_at}.{nonce}.{self._mark(token)}"
        return f"{body}.{self._sign('session', body)}", self._session(nonce, expires_at)

    def _session(self, nonce: str, expires_at: int) -> Session:
        return Session(nonce=nonce, expires_at=expires_at, csrf=self._sign("csrf", nonce))

    def check(self, cookie: str | None) -> Session | None:
        """The session a cookie carries, or None if it is absent, forged, expired, signed out or
        made with a token that is no longer configured."""
        if not cookie:
            return None
        body, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature.encode(), self._sign("session", body).encode()):
            return None
        parts = body.split(".")
        if len(parts) != 4 or parts[0] != _VERSION or not parts[1].isdigit():
            return None
        _, expires, nonce, mark = parts
        now = int(time.time())
        if int(expires) <= now or nonce in self._ended or mark not in self._marks:
            return None
        return self._session(nonce, int(expires))

    def csrf_ok(self, session: Session, presented: str | None) -> bool:
        """Whether a submitted form carries this session's CSRF token."""
        return presented is not None and hmac.compare_digest(
            presented.encode("utf-8", "surrogateescape"), session.csrf.encode()
        )

    def end(self, session: Session) -> None:
        """Sign out: the session's cookie is refused from now on, on this replica."""
        now = int(time.time())
        self._ended = {nonce: at for nonce, at in self._ended.items() if at > now}
        self._ended[session.nonce] = session.expires_at

    def login_form(self) -> tuple[str, str]:
        """A pre-session cookie value and the CSRF token the sign-in form must return with it."""
        body = f"{int(time.time()) + LOGIN_TTL_S}.{secrets.token_urlsafe(18)}"
        return f"{body}.{self._sign('login', body)}", self._sign("login-csrf", body)

    def login_csrf_ok(self, cookie: str | None, presented: str | None) -> bool:
        """Whether a sign-in form came back with the token its pre-session cookie was issued."""
        if not cookie or presented is None:
            return False
        body, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature.encode(), self._sign("login", body).encode()):
            return False
        expires, _, _ = body.partition(".")
        if not expires.isdigit() or int(expires) <= int(time.time()):
            return False
        return hmac.compare_digest(
            presented.encode("utf-8", "surrogateescape"), self._sign("login-csrf", body).encode()
        )
