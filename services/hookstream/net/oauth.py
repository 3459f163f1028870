"""OAuth2 client credentials: the bearer tokens of webhooks whose auth kind is ``oauth2``.

A token is fetched from the webhook's ``token_url`` through the sender's own HTTP client, so the
fetch meets the same rules as a delivery: https only (unless the operator allows plain http),
the SSRF guard on the token URL's host and on every address it resolves to, the webhook's TLS
(CA bundle, client certificate) and the egress proxy. It is kept per webhook until shortly
before ``expires_in`` ends, and concurrent deliveries of one webhook share one fetch (one task
per webhook, awaited by all of them). A token the receiver answers 401 to is fetched again once.

The client authenticates with HTTP Basic (RFC 6749 section 2.3.1, ``client_secret_basic``):
``grant_type=client_credentials`` plus ``scope`` and ``audience`` when set, form-encoded.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

import httpx

from hookstream.core.errors import PermanentError
from hookstream.net.delivery import USER_AGENT
from hookstream.net.ssrf import AddressPolicy, BlockedAddressError
from hookstream.records.models import AuthKind, WebhookConfig

log = logging.getLogger(__name__)

#: What a bearer token may hold to be sent in a header: visible ASCII.
_SENDABLE = re.compile(r"[!-~]+")
#: The most bytes of a token endpoint's answer that are read.
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
#: How long a token without ``expires_in`` is used (it is fetched again on a 401 anyway).
DEFAULT_LIFETIME_S = 300.0
#: A token is replaced this long before it expires (at most a fifth of its lifetime).
REFRESH_MARGIN_S = 60.0
#: Webhooks whose tokens are kept; past that the oldest are dropped (and fetched again).
MAX_CACHED = 10_000


class TokenError(Exception):
    """A token could not be had; the message names the token endpoint's answer.

    ``permanent``: retrying cannot help as configured (a refused token URL).
    """

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class TokenUrlRefused(TokenError, PermanentError):
    """The token URL may not be reached (plain http, a blocked address)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


@dataclass(frozen=True)
class _Token:
    value: str
    #: On the cache's clock: when it is no longer handed out.
    renew_at: float


def token_url_refusal(url: str, guard: AddressPolicy, allow_plain_http: bool) -> str | None:
    """Why a token URL may not be used (plain http, a refused host), or None. The same rule as
    payload URLs; the reason never repeats the URL (it may be shown to whoever submitted it)."""
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        scheme = ""
    if scheme != "https" and not allow_plain_http:
        return (
            "token_url must be an https:// URL (plain http is allowed only in development, "
            "with HOOKSTREAM_DELIVERY__ALLOW_PLAIN_HTTP=true)"
        )
    try:
        guard.check_url(url)
    except BlockedAddressError as exc:
        return "token_url " + exc.without_host.replace("the payload URL's host", "host", 1)
    return None


def _cache_key(config: WebhookConfig) -> str:
    """Per webhook and per credentials: an edit of the auth or TLS fields starts afresh."""
    auth = config.auth
    digest = hashlib.sha256()
    parts = (
        config.webhook_id,
        auth.token_url,
        auth.client_id,
        auth.client_secret.get_secret_value() if auth.client_secret else None,
        auth.scope,
        auth.audience,
        config.ca_bundle,
        config.client_cert,
    )
    for part in parts:
        digest.update(b"\x00" if part is None else b"\x01" + part.encode() + b"\x00")
    return digest.hexdigest()


class OAuthTokens:
    """The bearer tokens of OAuth2 webhooks, one fetch at a time per webhook."""

    def __init__(
        self,
        guard: AddressPolicy,
        allow_plain_http: bool,
        clock: Callable[[], float] = time.monotonic,
        max_cached: int = MAX_CACHED,
    ) -> None:
        self.guard = guard
        self.allow_plain_http = allow_plain_http
        self.clock = clock
        self.max_cached = max_cached
        self._tokens: dict[str, _Token] = {}
        self._fetches: dict[str, asyncio.Task[_Token]] = {}

    async def bearer(
        self,
        client: httpx.AsyncClient,
        config: WebhookConfig,
        timeout: httpx.Timeout,
        rejected: str | None = None,
    ) -> str:
        """The webhook's access token: the kept one while it is fresh (and is not ``rejected``,
        the one a receiver just answered 401 to), else one fetch shared by every caller.
        ``TokenError`` saying why if there is none."""
        if config.auth.kind is not AuthKind.OAUTH2:
            raise TokenError(f"webhook {config.webhook_id!r} does not use oauth2", permanent=True)
        key = _cache_key(config)
        kept = self._tokens.get(key)
        if kept is not None and kept.renew_at > self.clock() and kept.value != rejected:
            return kept.value
        fetch = self._fetches.get(key)
        if fetch is None:
            # The task copies this context: the webhook's SSL context (egress.using) rides along.
            fetch = asyncio.ensure_future(self._fetch(key, client, config, timeout))
            self._fetches[key] = fetch
            fetch.add_done_callback(lambda done: self._settled(key, done))
        # Shielded: a delivery cancelled while waiting does not cancel the others' fetch.
        token = await asyncio.shield(fetch)
        return token.value

    def _settled(self, key: str, fetch: asyncio.Task[_Token]) -> None:
        if self._fetches.get(key) is fetch:
            del self._fetches[key]
        if not fetch.cancelled():
            fetch.exception()  # seen here, so a fetch nobody awaits any more is not "unretrieved"

    async def _fetch(
        self, key: str, client: httpx.AsyncClient, config: WebhookConfig, timeout: httpx.Timeout
    ) -> _Token:
        token_url = config.auth.token_url
        assert token_url is not None  # noqa: S101 - the model's rule for oauth2
        refusal = token_url_refusal(token_url, self.guard, self.allow_plain_http)
        if refusal is not None:
            raise TokenUrlRefused(f"OAuth2 {refusal}")
        started = self.clock()
        status, body = await _exchange(client, _token_request(config, timeout), timeout)
        token = self._read(status, body, started)
        if len(self._tokens) >= self.max_cached:
            self._tokens.pop(next(iter(self._tokens)))
        self._tokens[key] = token
        log.info(
            "fetched an OAuth2 token for webhook %s",
            config.webhook_id,
            extra={"webhook_id": config.webhook_id},
        )
        return token

    def _read(self, status: int, body: bytes, started: float) -> _Token:
        """The token in a token endpoint's answer, or ``TokenError`` quoting what it said."""
        text = body[:MAX_TOKEN_RESPONSE_BYTES].decode("utf-8", "replace")
        if status != 200:
            raise TokenError(f"OAuth2 token endpoint answered {status}: {_excerpt(text)}")
        try:
            answer = json.loads(text)
        except ValueError:
            raise TokenError(
                f"OAuth2 token endpoint answered 200 but not with JSON: {_excerpt(text)}"
            ) from None
        if not isinstance(answer, dict):
            raise TokenError("OAuth2 token endpoint answered 200 but not with a JSON object")
        value = answer.get("access_token")
        if (
            not isinstance(value, str)
            or not value
            or not value.isascii()
            or not value.isprintable()
        ):
            raise TokenError("OAuth2 token endpoint answered 200 without a usable access_token")
        kind = answer.get("token_type", "bearer")
        if not isinstance(kind, str) or kind.lower() != "bearer":
            raise TokenError(
                f"OAuth2 token endpoint handed out a {str(kind)[:40]!r} token; only bearer "
                "tokens can be sent"
            )
        lifetime = answer.get("expires_in", DEFAULT_LIFETIME_S)
        if isinstance(lifetime, str) and lifetime.isdigit():
            lifetime = float(lifetime)
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = 0.0  # used for this attempt only
        margin = min(REFRESH_MARGIN_S, float(lifetime) / 5)
        return _Token(value, started + float(lifetime) - margin)


def _total_s(timeout: httpx.Timeout) -> float:
    return (timeout.connect or 10.0) + (timeout.read or 10.0) + 1.0


def _excerpt(text: str) -> str:
    """The start of a token endpoint's answer, on one line (error descriptions help)."""
    flat = " ".join(text.split())
    return (flat[:300] + "...") if len(flat) > 300 else (flat or "(empty body)")


def _short(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    text = " ".join(str(cause).split())[:300]
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def _blocked(exc: BaseException) -> BlockedAddressError | None:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, BlockedAddressError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _token_request(config: WebhookConfig, timeout: httpx.Timeout) -> httpx.Request:
    """The client-credentials request of a webhook (RFC 6749 section 4.4, client_secret_basic)."""
    auth = config.auth
    assert auth.token_url is not None and auth.client_id is not None  # noqa: S101 - model rule
    assert auth.client_secret is not None  # noqa: S101 - the model's rule for oauth2
    form = {"grant_type": "client_credentials"}
    if auth.scope:
        form["scope"] = auth.scope
    if auth.audience:
        form["audience"] = auth.audience
    credentials = (
        f"{quote(auth.client_id, safe='')}:{quote(auth.client_secret.get_secret_value(), safe='')}"
    )
    return httpx.Request(
        "POST",
        auth.token_url,
        content=urlencode(form).encode("ascii"),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode(),
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            "User-Agent": USER_AGENT,
        },
        extensions={"timeout": timeout.as_dict()},
    )


async def _exchange(
    client: httpx.AsyncClient, request: httpx.Request, timeout: httpx.Timeout
) -> tuple[int, bytes]:
    """Send a token request; its answer's status and at most ``MAX_TOKEN_RESPONSE_BYTES`` (and
    a chunk) of its body, or ``TokenError``/``TokenUrlRefused`` saying why there is none."""
    try:
        async with asyncio.timeout(_total_s(timeout)):
            response = await client.send(request, stream=True)
            try:
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > MAX_TOKEN_RESPONSE_BYTES:
                        break
            finally:
                await response.aclose()
    except TimeoutError:
        raise TokenError(
            f"OAuth2 token endpoint gave no complete answer within {_total_s(timeout):g} s"
        ) from None
    except Exception as exc:
        blocked = _blocked(exc)
        if blocked is not None:
            raise TokenUrlRefused(f"OAuth2 token_url refused: {blocked}") from None
        raise TokenError(f"OAuth2 token endpoint could not be reached: {_short(exc)}") from None
    return response.status_code, bytes(body)
