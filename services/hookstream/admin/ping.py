"""A test event sent now to a webhook's payload URL, with its auth, format and signature.

A ping is not a delivery: it does not go through Kafka, is not recorded on the status topic and
does not count against the deactivation policy. It goes through the same HTTP client, SSRF
guard, plain-http rule and connection settings (CA bundles, client certificate, OAuth2 token,
egress proxy) as deliveries do, so an administrator can check them before events flow; a URL
those refuse is a 422 saying why, before anything is sent.
"""

from __future__ import annotations

import uuid

import httpx

from hookstream.admin.problems import invalid_field
from hookstream.admin.schemas import PingResult
from hookstream.admin.state import AdminState
from hookstream.admin.webhooks import url_refusal
from hookstream.core.payloads import build_payload
from hookstream.net import egress
from hookstream.net.delivery import request_headers
from hookstream.net.oauth import OAuthTokens
from hookstream.net.ssrf import AddressPolicy
from hookstream.net.tls import shared_contexts
from hookstream.records.models import DomainEvent, WebhookConfig, now_ms
from hookstream.views.directory import family_of

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
    """POST the test event once and report the answer; 422 if the URL may not be reached."""
    settings = state.settings
    refusal = url_refusal(state, config.payload_url)
    if refusal is not None:
        invalid_field("payload_url", refusal)
    ping_id = f"ping_{uuid.uuid4().hex}"
    payload = build_payload(
        config,
        family_of(config),
        PING_TRIGGER,
        [ping_event(config, ping_id)],
        now_ms(),
        settings.delivery.portal_url,
    )
    connect = config.connect_timeout_s or settings.delivery.default_connect_timeout_s
    read = config.read_timeout_s or state.policy.current.request_timeout_s
    headers = request_headers(config, payload, ping_id, attempt=1)
    headers[PING_HEADER] = "true"
    result = await egress.send(
        state.http,
        config,
        config.payload_url,
        payload,
        headers,
        httpx.Timeout(read, connect=connect, read=read, write=read, pool=connect),
        total_timeout_s=connect + read + 1.0,
        excerpt_bytes=settings.delivery.response_excerpt_bytes,
        contexts=shared_contexts(settings.security.ca_bundle),
        # A token of its own: a ping checks the credentials as they are now, not a kept token.
        tokens=OAuthTokens(
            AddressPolicy(settings.security.allow_networks), settings.delivery.allow_plain_http
        ),
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
