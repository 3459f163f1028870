"""How a request leaves the sender: the SSL context of its webhook, on the shared connection pool.

The sender has one HTTP client (``make_http_client``) for every webhook; what differs
per webhook is the TLS (its CA bundle and client certificate). ``using(context)`` sets it for the
requests made inside it (a context variable, so concurrent deliveries in their own tasks do not
see each other's), and ``EgressTransport`` hands it to aiohttp per request. aiohttp keys pooled
connections by their SSL context too, so a connection that showed one webhook's client
certificate is never reused for another webhook. With an egress proxy, ``ProxyRoutes`` picks
the route of each request and pins a proxied target to the address the SSRF guard checked.
"""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

import aiohttp
import httpx
from aiohttp import ClientSession, ClientTimeout
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions

from hookstream.core.payloads import Payload
from hookstream.net.delivery import AttemptResult, post
from hookstream.net.oauth import OAuthTokens, TokenError
from hookstream.net.proxy import ProxyRoutes, Route, proxy_host
from hookstream.net.ssrf import AddressPolicy, GuardedResolver
from hookstream.net.tls import TlsContexts, TlsSettingsError, shared_contexts
from hookstream.records.models import AuthKind, WebhookConfig
from hookstream.settings import Settings

#: The SSL context of the request being made in this task; None: the client's default.
_REQUEST_SSL: ContextVar[ssl.SSLContext | None] = ContextVar("hookstream_request_ssl", default=None)


@contextmanager
def using(context: ssl.SSLContext | None) -> Iterator[None]:
    """Make the requests sent inside this block with ``context`` (None: the default)."""
    token = _REQUEST_SSL.set(context)
    try:
        yield
    finally:
        _REQUEST_SSL.reset(token)


def proxy_routes(settings: Settings) -> ProxyRoutes | None:
    """The egress proxy's routing for these settings, or None without a proxy."""
    security = settings.security
    if security.proxy is None:
        return None
    return ProxyRoutes(security.proxy, security.no_proxy, AddressPolicy(security.allow_networks))


class EgressTransport(AiohttpTransport):
    """The aiohttp transport, with the SSL context of the current webhook per request, and
    through the egress proxy where ``routes`` says so (hookstream.net.proxy)."""

    def __init__(self, *args: Any, routes: ProxyRoutes | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.routes = routes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(self.client, ClientSession):
            self.client = self.get_client()
        timeout = request.extensions.get("timeout", {})
        # Before anything is sent: a proxied target is resolved and checked here.
        route = await self.routes.route(request.url) if self.routes else Route(request.url)
        with map_aiohttp_exceptions():
            data: object
            try:
                data = request.content or None
            except httpx.RequestNotRead:  # a streamed body (deliveries send bytes)
                data = request.stream
                request.headers.pop("transfer-encoding", None)  # aiohttp frames it
            headers = request.headers
            encoding = headers.encoding
            response = await self.client.request(
                method=request.method,
                url=str(route.url),
                # Name/value pairs as aiohttp takes them: handed the ``httpx.Headers`` it copied
                # them one lookup at a time (and lowercased every name).
                headers=[
                    (name.decode(encoding), value.decode(encoding)) for name, value in headers.raw
                ],
                data=data,
                allow_redirects=False,
                auto_decompress=False,
                compress=False,
                timeout=_client_timeout(
                    timeout.get("connect"), timeout.get("read"), timeout.get("pool")
                ),
                # True: the connector's context (certifi and the operator's extra CAs).
                ssl=_REQUEST_SSL.get() or True,
                proxy=route.proxy,
                server_hostname=route.server_hostname,
            ).__aenter__()
        extensions = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Answer(response),
            request=request,
            extensions=extensions,
        )


@functools.lru_cache(maxsize=256)
def _client_timeout(connect: float | None, read: float | None, pool: float | None) -> ClientTimeout:
    """aiohttp's timeouts for httpx's (immutable, and the same for most requests)."""
    return ClientTimeout(sock_connect=connect, sock_read=read, connect=pool)


class _Answer(AiohttpResponseStream):
    """An answer's body as aiohttp receives it, with httpx's errors: the library's stream, with
    the error mapping set up only when an error is raised (per chunk, it cost as much as the
    chunk)."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._aiohttp_response.content
        try:
            while chunk := await content.readany():
                yield chunk
        except Exception:
            with map_aiohttp_exceptions():
                raise

    async def aclose(self) -> None:
        try:
            await self._aiohttp_response.__aexit__(None, None, None)
        except Exception:
            with map_aiohttp_exceptions():
                raise


async def send(
    client: httpx.AsyncClient,
    config: WebhookConfig,
    url: str,
    payload: Payload,
    headers: dict[str, str],
    timeout: httpx.Timeout,
    total_timeout_s: float,
    excerpt_bytes: int,
    contexts: TlsContexts,
    tokens: OAuthTokens | None = None,
) -> AttemptResult:
    """POST once with the webhook's connection settings (its TLS, its OAuth2 token); never
    raises but on cancel.

    Deliveries and the admin's ping both come here, so a ping tries exactly what a delivery
    will. TLS fields that cannot be used (a client certificate expired since it was uploaded)
    are a permanent failure that names the field, before anything is sent. An OAuth2 webhook's
    token comes from ``tokens`` (fetched through this client, with this TLS); a token endpoint
    that fails is a failed attempt saying so, and a 401 from the receiver fetches the token
    again once and repeats the POST.
    """
    started = time.perf_counter()
    try:
        context = contexts.context_for(
            config.ca_bundle,
            config.client_cert,
            config.client_key.get_secret_value() if config.client_key is not None else None,
        )
    except (TlsSettingsError, ValueError) as exc:
        return AttemptResult(None, None, str(exc), _ms_since(started), permanent=True)
    oauth = config.auth.kind is AuthKind.OAUTH2
    if not oauth and context is contexts.default and _REQUEST_SSL.get() is None:
        # The common case: the default TLS, already in force; nothing to set per request.
        return await post(client, url, payload, headers, timeout, total_timeout_s, excerpt_bytes)
    with using(None if context is contexts.default else context):
        if not oauth:
            return await post(
                client, url, payload, headers, timeout, total_timeout_s, excerpt_bytes
            )
        if tokens is None:
            reason = "an oauth2 webhook needs a token cache here (a bug: report it)"
            return AttemptResult(None, None, reason, 0.0, permanent=True)
        rejected: str | None = None
        for _ in range(2):
            try:
                token = await tokens.bearer(client, config, timeout, rejected=rejected)
            except TokenError as exc:
                return AttemptResult(
                    None, None, str(exc), _ms_since(started), permanent=exc.permanent
                )
            signed = {**headers, "Authorization": f"Bearer {token}"}
            result = await post(
                client, url, payload, signed, timeout, total_timeout_s, excerpt_bytes
            )
            if result.http_status != 401:
                break
            rejected = token
        return replace(result, duration_ms=_ms_since(started))


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    """The one HTTP client of the sender: aiohttp transport (several times faster than httpx's
    own under concurrency, see docs/benchmarks.md), the SSRF guard as its resolver, no redirects,
    no proxy variables."""
    limit = settings.delivery.concurrency
    policy = AddressPolicy(settings.security.allow_networks)
    # certifi plus HOOKSTREAM_SECURITY__CA_BUNDLE; a webhook's own CAs and client certificate
    # are chosen per request (hookstream.net.egress).
    ssl_context = shared_contexts(settings.security.ca_bundle).default

    def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=limit,
            # The egress proxy is the operator's own: its address is not a receiver's.
            resolver=GuardedResolver(policy, exempt=proxy_host(settings.security.proxy)),
            ssl=ssl_context,
            ttl_dns_cache=10,
            # Shorter than receivers' usual idle timeouts, so a POST rarely meets a dead connection.
            keepalive_timeout=4,
        )
        return aiohttp.ClientSession(connector=connector, trust_env=False)

    client = httpx.AsyncClient(
        transport=EgressTransport(client=session, routes=proxy_routes(settings)),
        follow_redirects=False,
        trust_env=False,
    )
    # A receiver's cookies must never ride along to the next delivery (nor cost time per answer).
    client._cookies = _NoCookies()
    return client


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing: deliveries are independent requests."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None
