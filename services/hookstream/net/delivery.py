"""One HTTP attempt of a delivery, and the one function that judges its result.

An attempt's result is a value (``AttemptResult``); ``judge`` turns it into a ``Verdict``:
delivered, retry at a time for a reason, or failed for good. The rules for status codes,
``Retry-After`` and spacing live only there.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import functools
import logging
import re
import time
from dataclasses import dataclass, field
from enum import StrEnum

import aiohttp
import httpx

from hookstream import __version__
from hookstream.core.jitter import jittered_delay_s
from hookstream.core.payloads import Payload
from hookstream.core.signing import signature_headers
from hookstream.net.ssrf import BlockedAddressError
from hookstream.records.models import AuthKind, WebhookConfig

USER_AGENT = f"hookstream/{__version__} (+webhook delivery)"
DELIVERY_HEADER = "X-Hookstream-Delivery"
ATTEMPT_HEADER = "X-Hookstream-Attempt"
MAX_RETRY_AFTER_S = 100.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttemptResult:
    """What one POST produced: a status code and excerpt, or the error that stopped it."""

    http_status: int | None
    response_excerpt: str | None
    error: str | None
    duration_ms: float
    retry_after_s: float | None = None
    #: The attempt can never succeed as configured (a refused address): no retry.
    permanent: bool = False


class VerdictKind(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class Verdict:
    """Delivered; retry at ``retry_at`` because ``reason``; or failed because ``reason``."""

    kind: VerdictKind
    reason: str | None = None
    retry_at: int | None = None
    gone: bool = False


def judge(
    result: AttemptResult,
    attempt: int,
    max_attempts: int,
    interval_s: float,
    now: int,
    jitter: float = 0.0,
) -> Verdict:
    """Any 2xx is delivered; anything else is a failed attempt, retried while attempts remain.

    A 2xx counts from its status line: a body cut off or dripping past the timeout after it
    does not undo the delivery (the receiver accepted the event). An answer that is not HTTP
    (``http_status`` None, ``error`` saying why) is a failure like any other.

    The next attempt waits ``interval_s`` plus up to ``jitter`` of it at random (so a burst of
    failures does not come back in the same millisecond; the interval stays the minimum); a
    ``Retry-After`` (429/503) may lengthen that, up to 100 s. A 410 Gone ends the delivery at
    once and marks the endpoint gone.
    """
    status = result.http_status
    if status is not None and 200 <= status < 300:
        return Verdict(VerdictKind.DELIVERED)
    if status is None:
        reason = result.error or "no response"
    elif 300 <= status < 400:
        reason = f"HTTP {status}: redirects are not followed"
    else:
        reason = f"HTTP {status}"
    if result.permanent:
        return Verdict(VerdictKind.FAILED, reason=reason)
    if status == 410:
        return Verdict(
            VerdictKind.FAILED, reason="HTTP 410 Gone: the receiver retired this URL", gone=True
        )
    if attempt >= max_attempts:
        return Verdict(VerdictKind.FAILED, reason=f"{reason} (attempt {attempt} of {max_attempts})")
    delay_s = jittered_delay_s(interval_s, jitter)
    if status in (429, 503) and result.retry_after_s is not None:
        asked_s = min(result.retry_after_s, max(MAX_RETRY_AFTER_S, interval_s))
        delay_s = max(delay_s, asked_s)
    return Verdict(VerdictKind.RETRY, reason=reason, retry_at=now + int(delay_s * 1000))


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - now_s)
    except (TypeError, ValueError, OverflowError):
        return None


def request_headers(
    config: WebhookConfig,
    payload: Payload,
    delivery_id: str,
    attempt: int,
    now_s: int | None = None,
) -> dict[str, str]:
    """Every header of a delivery; the auth headers were validated when the webhook was saved."""
    headers = {
        "Content-Type": payload.content_type,
        "User-Agent": USER_AGENT,
        # Only the first bytes of an answer are kept; a compressed one could inflate unbounded.
        "Accept-Encoding": "identity",
        "webhook-id": delivery_id,
        DELIVERY_HEADER: delivery_id,
        ATTEMPT_HEADER: str(attempt),
    }
    headers.update(
        signature_headers(
            config, delivery_id, payload.body, now_s if now_s is not None else int(time.time())
        )
    )
    auth = config.auth
    if auth.kind is AuthKind.BASIC and auth.username is not None and auth.password is not None:
        token = f"{auth.username}:{auth.password.get_secret_value()}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
    elif auth.kind is AuthKind.HEADER:
        for name, value in auth.headers.items():
            headers[name] = value.get_secret_value()
    return headers


_HTTPX_ERRORS: dict[type[Exception], str] = {
    httpx.ConnectTimeout: "connect timeout",
    httpx.ReadTimeout: "read timeout",
    httpx.WriteTimeout: "write timeout",
    httpx.PoolTimeout: "no free connection in time",
    httpx.ConnectError: "connection failed",
}


def _describe(exc: Exception) -> str:
    """What went wrong, from the aiohttp error behind the httpx one when there is one: the
    aiohttp transport reports a refused connection or a hang-up as ``ConnectTimeout``."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ServerDisconnectedError):
        kind = "the receiver closed the connection without answering"
    elif isinstance(cause, aiohttp.ClientConnectorError):
        kind = "connection failed"
    elif isinstance(cause, aiohttp.ClientPayloadError):
        kind = "the answer was cut off"
    else:
        kind = _HTTPX_ERRORS.get(type(exc), type(exc).__name__)
    detail = str(cause or exc).strip()
    return f"{kind}: {detail}" if detail and detail != kind else kind


async def post(
    client: httpx.AsyncClient,
    url: str,
    payload: Payload,
    headers: dict[str, str],
    timeout: httpx.Timeout,
    total_timeout_s: float,
    excerpt_bytes: int,
) -> AttemptResult:
    """POST once and read at most ``excerpt_bytes`` of the answer; never raises but on cancel.

    Every way the exchange can end is a result: a request that cannot be built (a header value
    HTTP cannot carry, a host the client cannot parse) is a permanent failure; an answer that is
    not HTTP (a garbage status line, endless or overlong headers, a bad length or chunk) is a
    failure like a 500. Once a status line and headers have arrived, that status stands: a 2xx
    whose body is cut off or drips past the timeout is delivered (the receiver accepted the
    event), with the excerpt read so far.
    """
    started = time.perf_counter()
    prepared = _prepare(client, url, payload, headers, timeout, started)
    if isinstance(prepared, AttemptResult):
        return prepared
    request, transport = prepared
    answer = _Answer()
    error: str | None = None
    try:
        async with asyncio.timeout(total_timeout_s):
            await _receive(transport, request, answer, excerpt_bytes)
    except TimeoutError:
        error = f"no complete answer within {total_timeout_s:g} s"
    except Exception as exc:
        blocked = _blocked_cause(exc)
        if blocked is not None:
            return AttemptResult(None, None, str(blocked), _ms_since(started), permanent=True)
        error = _failure(exc)
        if isinstance(exc, ValueError | LookupError) and answer.status is None:
            # Raised while the transport encoded the request: it can never be sent as it is.
            return AttemptResult(None, None, error, _ms_since(started), permanent=True)
    if answer.status is not None:
        # The status line and headers arrived: that answer is the result, even if its body did
        # not (or was not well-formed); the error only explains a short excerpt.
        return AttemptResult(
            http_status=answer.status,
            response_excerpt=bytes(answer.excerpt[:excerpt_bytes]).decode("utf-8", "replace"),
            error=None
            if error is None
            else f"the body after the status line is incomplete: {error}",
            duration_ms=_ms_since(started),
            retry_after_s=answer.retry_after_s,
        )
    return AttemptResult(None, None, error, _ms_since(started))


def _prepare(
    client: httpx.AsyncClient,
    url: str,
    payload: Payload,
    headers: dict[str, str],
    timeout: httpx.Timeout,
    started: float,
) -> tuple[httpx.Request, httpx.AsyncBaseTransport] | AttemptResult:
    """The request and the transport that sends it, or the permanent failure of a request that
    cannot be built."""
    unsendable = [name for name, value in headers.items() if not _sendable_value(value)]
    if unsendable:
        refused = (
            f"the request could not be built: the value of header {unsendable[0]!r} is not "
            "printable ASCII; fix the webhook's auth headers"
        )
        return AttemptResult(None, None, refused, _ms_since(started), permanent=True)
    try:
        request = _request(url, payload.body, headers, timeout)
        # The client's transport for this URL, driven directly: the client's own layers (auth,
        # redirects, cookies, event hooks, the response's byte chunker) do nothing for a
        # delivery (no auth flow, redirects not followed, no cookies kept) and cost a tenth of
        # the sender's CPU. Errors are the transport's own httpx errors, as through the client.
        transport = client._transport_for_url(request.url)
    except Exception as exc:  # httpx.InvalidURL, UnicodeEncodeError, IDNA errors, ...
        return AttemptResult(None, None, _unbuildable(exc), _ms_since(started), permanent=True)
    return request, transport


@dataclass(slots=True)
class _Answer:
    """What has arrived of an answer: its status line and headers, then the start of its body
    (kept when the rest fails: the status stands)."""

    status: int | None = None
    retry_after_s: float | None = None
    excerpt: bytearray = field(default_factory=bytearray)


async def _receive(
    transport: httpx.AsyncBaseTransport,
    request: httpx.Request,
    answer: _Answer,
    excerpt_bytes: int,
) -> None:
    """Send the request and read the answer into ``answer``, at most ``excerpt_bytes`` of body."""
    response = await transport.handle_async_request(request)
    stream = response.stream
    if not isinstance(stream, httpx.AsyncByteStream):
        raise TypeError("the sender's HTTP transport must be asynchronous")
    try:
        answer.status = response.status_code
        answer.retry_after_s = parse_retry_after(response.headers.get("retry-after"), time.time())
        async for chunk in stream:
            answer.excerpt += chunk
            if len(answer.excerpt) >= excerpt_bytes:
                break
    finally:
        await stream.aclose()


def _request(
    url: str, body: bytes, headers: dict[str, str], timeout: httpx.Timeout
) -> httpx.Request:
    """The POST of a delivery, as ``httpx.Request(content=body)`` would make it (a Host header,
    ours, a Content-Length header; the body already read), without what it does for
    the general case: it built the header list twice and looked headers up one by one, a tenth
    of the sender's CPU. Header names and values are encoded as ASCII, as httpx does; a Host or
    Content-Length header of our own cannot occur (header authentication refuses them)."""
    parsed, host = _parsed_url(url)
    raw = [(b"Host", host)] if host else []
    raw += [(name.encode("ascii"), value.encode("ascii")) for name, value in headers.items()]
    raw.append((b"Content-Length", b"%d" % len(body)))
    request = httpx.Request(
        "POST",
        parsed,
        headers=raw,
        stream=httpx.ByteStream(body),
        extensions={"timeout": timeout.as_dict()},
    )
    request.read()
    return request


@functools.lru_cache(maxsize=4096)
def _parsed_url(url: str) -> tuple[httpx.URL, bytes]:
    """A payload URL parsed once (httpx.URL is immutable), with its Host header (none without
    a host, as httpx does): webhooks send to the same URL again and again. Reading ``host``
    decodes an IDNA name: one that is not valid raises here, before anything is sent."""
    parsed = httpx.URL(url)
    return parsed, parsed.netloc if parsed.host else b""


#: Printable ASCII (and tab).
_SENDABLE = re.compile(r"[\t -~]*")


def _sendable_value(value: str) -> bool:
    """Printable ASCII (and tab): anything else is refused by HTTP/1.1 clients or smuggles."""
    return _SENDABLE.fullmatch(value) is not None


def _unbuildable(exc: Exception) -> str:
    return (
        f"the request could not be built: {_detail(exc)}; fix the webhook's payload_url or "
        "auth headers (header values must be printable ASCII)"
    )


def _detail(exc: BaseException) -> str:
    """A short description of an error, without the request it carries (URLs may hold tokens)."""
    if isinstance(exc, aiohttp.ClientResponseError):
        text = exc.message
    else:
        text = str(exc)
    text = " ".join(text.split())
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _failure(exc: Exception) -> str:
    """What stopped an attempt, for the status record: the receiver's fault or ours."""
    cause = exc.__cause__
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"malformed answer: {_detail(exc)}"
    if isinstance(cause, aiohttp.ClientResponseError):
        return f"malformed answer: {_detail(cause)}"
    if isinstance(exc, httpx.HTTPError):
        return _describe(exc)
    if isinstance(exc, OSError):
        return f"network error: {exc}"
    if isinstance(exc, ValueError | LookupError):
        return _unbuildable(exc)
    log.warning("unexpected error during a POST to a receiver", exc_info=exc)
    return f"unexpected error: {_detail(exc)}"


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _blocked_cause(exc: BaseException) -> BlockedAddressError | None:
    """The SSRF guard's refusal behind a transport error, if that is what stopped the attempt."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, BlockedAddressError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
