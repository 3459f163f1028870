"""A test event sent now to a webhook's payload URL, with its auth, format and signature.

A ping is not a delivery: it does not go through Kafka, is not recorded on the status topic and
does not count against the deactivation policy. It goes through the same HTTP client, SSRF
guard and plain-http rule as deliveries do.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import httpx

from hookstream.admin.schemas import PingResult
from hookstream.admin.state import AdminState
from hookstream.delivery import AttemptResult, post, request_headers
from hookstream.directory import family_of
from hookstream.models import DomainEvent, WebhookConfig, now_ms
from hookstream.payloads import build_payload
from hookstream.ssrf import AddressPolicy, BlockedAddressError

PING_TRIGGER = "ping"
PING_HEADER = "X-Hookstream-Ping"


def ping_event(config: WebhookConfig, ping_id: str) -> DomainEvent:
    """The test event: source ``webhooks``, operation ``ping``, the webhook as its resource."""
    return DomainEvent(
        event_id=ping_id,
        source="webhooks",
        operation="ping",
        resource_id=config.webhook_id,
        occurred_at=now_ms(),
        properties={"message": "a test event from hookstream; no action is needed"},
    )


async def ping(state: AdminState, config: WebhookConfig) -> PingResult:
    """POST the test event once and report the answer."""
    settings = state.settings
    ping_id = f"ping_{uuid.uuid4().hex}"
    payload = build_payload(
        config,
        family_of(config),
        PING_TRIGGER,
        [ping_event(config, ping_id)],
        now_ms(),
        settings.delivery.portal_url,
    )
    result = _refusal(state, config)
    if result is None:
        connect = config.connect_timeout_s or settings.delivery.default_connect_timeout_s
        read = config.read_timeout_s or state.policy.current.request_timeout_s
        headers = request_headers(config, payload, ping_id, attempt=1)
        headers[PING_HEADER] = "true"
        result = await post(
            state.http,
            config.payload_url,
            payload,
            headers,
            httpx.Timeout(read, connect=connect, read=read, write=read, pool=connect),
            total_timeout_s=connect + read + 1.0,
            excerpt_bytes=settings.delivery.response_excerpt_bytes,
        )
    status = result.http_status
    return PingResult(
        ping_id=ping_id,
        delivered=status is not None and 200 <= status < 300,
        http_status=status,
        response_excerpt=result.response_excerpt,
        error=result.error,
        duration_ms=round(result.duration_ms, 3),
    )


def _refusal(state: AdminState, config: WebhookConfig) -> AttemptResult | None:
    """Why the URL may not be reached at all (plain http, a refused address), or None."""
    settings = state.settings
    if urlsplit(config.payload_url).scheme != "https" and not settings.delivery.allow_plain_http:
        return AttemptResult(None, None, "plain http:// payload URLs are refused", 0.0)
    try:
        AddressPolicy(settings.security.allow_networks).check_url(config.payload_url)
    except BlockedAddressError as exc:
        return AttemptResult(None, None, str(exc), 0.0)
    return None
