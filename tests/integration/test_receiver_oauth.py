"""OAuth2 client credentials through the sender's real HTTP client, against a real HTTPS token
endpoint and receiver: one fetch shared by concurrent deliveries, a 401 fetching again once, a
failing token endpoint as a failed attempt saying so, the SSRF guard on the token URL, and the
whole pipeline with the client secret encrypted in Kafka."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from kafka import KafkaConsumer
from pydantic import SecretStr
from test_admin_support import AdminServer, with_admin

from hookstream.client import HookstreamClient
from hookstream.core.payloads import Payload
from hookstream.kafka.topics import create_topics
from hookstream.net import egress
from hookstream.net.delivery import AttemptResult
from hookstream.net.egress import make_http_client
from hookstream.net.oauth import OAuthTokens
from hookstream.net.ssrf import AddressPolicy
from hookstream.net.tls import TlsContexts
from hookstream.records.models import AuthKind, Outcome, WebhookAuth, WebhookConfig
from hookstream.settings import Settings
from oauth_support import OAuthServer
from support import (
    Pipeline,
    StatusReader,
    make_event,
    register_and_wait,
    unique_settings,
    wait_until,
)

pytestmark = pytest.mark.integration

PAYLOAD = Payload(b'{"ping": true}', "application/json")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="hookstream test OAuth CA")


@pytest.fixture
def oauth_server(ca: trustme.CA) -> Iterator[OAuthServer]:
    server = OAuthServer(ca)
    yield server
    server.close()


def _webhook(server: OAuthServer, ca: trustme.CA, token_url: str | None = None) -> WebhookConfig:
    return WebhookConfig(
        webhook_id=f"oauth-{uuid.uuid4().hex[:8]}",
        name="OAuth2",
        payload_url=server.url("/hook"),
        triggers=["/items"],
        ca_bundle=ca.cert_pem.bytes().decode("ascii"),
        auth=WebhookAuth(
            kind=AuthKind.OAUTH2,
            token_url=token_url or server.url("/token"),
            client_id=server.client_id,
            client_secret=SecretStr(server.client_secret),
            scope="webhooks:write",
            audience="https://receiver.example",
        ),
    )


async def _send(
    settings: Settings, tokens: OAuthTokens, webhooks: list[WebhookConfig]
) -> list[AttemptResult]:
    """POST once per webhook, all at once, through one client as the sender does."""
    contexts = TlsContexts(settings.security.ca_bundle)
    timeout = httpx.Timeout(10.0, connect=10.0)
    async with make_http_client(settings) as http:
        return await asyncio.gather(
            *(
                egress.send(
                    http,
                    webhook,
                    webhook.payload_url,
                    PAYLOAD,
                    {"Content-Type": PAYLOAD.content_type},
                    timeout,
                    total_timeout_s=21.0,
                    excerpt_bytes=100,
                    contexts=contexts,
                    tokens=tokens,
                )
                for webhook in webhooks
            )
        )


def _tokens(settings: Settings) -> OAuthTokens:
    return OAuthTokens(AddressPolicy(settings.security.allow_networks), allow_plain_http=False)


def test_concurrent_deliveries_share_one_token_fetch(
    oauth_server: OAuthServer, ca: trustme.CA
) -> None:
    settings = unique_settings("127.0.0.1:1")
    webhook = _webhook(oauth_server, ca)
    tokens = _tokens(settings)
    results = asyncio.run(_send(settings, tokens, [webhook] * 20))
    assert [r.http_status for r in results] == [200] * 20, results
    assert oauth_server.fetches() == 1
    [form] = oauth_server.token_requests
    assert form == {
        "grant_type": ["client_credentials"],
        "scope": ["webhooks:write"],
        "audience": ["https://receiver.example"],
    }
    assert set(oauth_server.tokens_seen()) == {"tok-1"}
    # The kept token serves the next deliveries too.
    again = asyncio.run(_send(settings, tokens, [webhook] * 3))
    assert [r.http_status for r in again] == [200] * 3
    assert oauth_server.fetches() == 1


def test_a_401_fetches_the_token_again_once(oauth_server: OAuthServer, ca: trustme.CA) -> None:
    settings = unique_settings("127.0.0.1:1")
    webhook = _webhook(oauth_server, ca)
    tokens = _tokens(settings)
    [first] = asyncio.run(_send(settings, tokens, [webhook]))
    assert first.http_status == 200
    oauth_server.revoke()
    [second] = asyncio.run(_send(settings, tokens, [webhook]))
    assert second.http_status == 200, second
    assert oauth_server.fetches() == 2
    assert oauth_server.tokens_seen() == ["tok-1", "tok-1", "tok-2"]


def test_a_receiver_refusing_every_token_is_asked_twice_only(
    oauth_server: OAuthServer, ca: trustme.CA
) -> None:
    settings = unique_settings("127.0.0.1:1")
    webhook = _webhook(oauth_server, ca)
    oauth_server.valid = _Never()
    [result] = asyncio.run(_send(settings, _tokens(settings), [webhook]))
    assert result.http_status == 401
    assert oauth_server.fetches() == 2
    assert len(oauth_server.hooks) == 2


class _Never(set[str]):
    """A set of valid tokens that never holds one."""

    def add(self, element: str) -> None:
        return None


def test_a_failing_token_endpoint_is_a_failed_attempt_saying_so(
    oauth_server: OAuthServer, ca: trustme.CA
) -> None:
    settings = unique_settings("127.0.0.1:1")
    webhook = _webhook(oauth_server, ca)
    oauth_server.token_status = 500
    [result] = asyncio.run(_send(settings, _tokens(settings), [webhook]))
    assert result.http_status is None
    assert result.error is not None
    assert result.error.startswith("OAuth2 token endpoint answered 500: "), result
    assert "temporarily_unavailable" in result.error
    assert not result.permanent  # the endpoint may recover before the next attempt
    assert oauth_server.hooks == []

    down = _webhook(oauth_server, ca, token_url="https://127.0.0.1:1/token")
    [unreachable] = asyncio.run(_send(settings, _tokens(settings), [down]))
    assert (unreachable.error or "").startswith("OAuth2 token endpoint could not be reached"), (
        unreachable
    )
    assert not unreachable.permanent


def test_the_ssrf_guard_applies_to_the_token_url(oauth_server: OAuthServer, ca: trustme.CA) -> None:
    base = unique_settings("127.0.0.1:1")
    # The receiver's own address allowed, but not the token endpoint's (127.0.0.2 is loopback).
    webhook = _webhook(oauth_server, ca, token_url="https://127.0.0.2:1/token")
    [result] = asyncio.run(_send(base, _tokens(base), [webhook]))
    assert result.permanent
    assert "token_url" in (result.error or "") and "loopback" in (result.error or ""), result
    plain = _webhook(oauth_server, ca, token_url=oauth_server.url("/token").replace("s:", ":", 1))
    [refused] = asyncio.run(_send(base, _tokens(base), [plain]))
    assert refused.permanent
    assert "token_url must be an https:// URL" in (refused.error or "")
    assert oauth_server.fetches() == 0


def test_the_pipeline_delivers_with_oauth2_and_keeps_the_client_secret_secret(
    kafka_bootstrap: str, oauth_server: OAuthServer, ca: trustme.CA, tmp_path: Path
) -> None:
    settings = unique_settings(kafka_bootstrap, retry_interval_s=1.0, max_attempts=2)
    create_topics(kafka_bootstrap, settings.topics)
    pipeline = Pipeline(settings, tmp_path)
    client = HookstreamClient(kafka_bootstrap, settings.topics)
    statuses = StatusReader(kafka_bootstrap, settings)
    resource = f"i{uuid.uuid4().hex[:6]}"
    webhook = _webhook(oauth_server, ca).model_copy(update={"triggers": [f"/items/{resource}"]})
    oauth_server.token_status = 503
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        register_and_wait(client, webhook)
        client.publish_event(make_event("items", "update", resource))
        [failed] = wait_until(
            lambda: [s for s in statuses.of(webhook.webhook_id) if s.attempt == 1],
            60,
            "the first attempt",
        )
        assert failed.outcome is Outcome.FAILED and not failed.final
        assert (failed.error or "").startswith("OAuth2 token endpoint answered 503"), failed
        oauth_server.token_status = 200
        [status] = wait_until(
            lambda: [s for s in statuses.of(webhook.webhook_id) if s.final], 60, "the delivery"
        )
        assert status.outcome is Outcome.DELIVERED, status
        assert oauth_server.tokens_seen() == ["tok-2"]
        stored = client.latest_webhooks()[webhook.webhook_id].auth.client_secret
        assert stored == webhook.auth.client_secret
    finally:
        pipeline.stop()
        statuses.close()
        client.close()
    consumer = KafkaConsumer(
        settings.topics.webhooks,
        settings.topics.webhook_commands,
        settings.topics.status,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    try:
        raw = b"".join(message.value or b"" for message in consumer)
    finally:
        consumer.close()
    assert raw, "the topics hold the webhook and its status"
    assert oauth_server.client_secret.encode() not in raw, "the secret is encrypted at rest"
    assert b"tok-2" not in raw, "tokens are never recorded"
    logs = "".join(path.read_text() for path in tmp_path.glob("*.log"))
    assert oauth_server.client_secret not in logs


def test_the_admin_api_refuses_unusable_token_urls_and_ping_fetches_a_token(
    kafka_bootstrap: str, oauth_server: OAuthServer, ca: trustme.CA, tmp_path: Path
) -> None:
    settings = with_admin(unique_settings(kafka_bootstrap, allow_plain_http=False))
    create_topics(kafka_bootstrap, settings.topics)
    pipeline = Pipeline(settings, tmp_path)
    admin = AdminServer(settings)
    auth = {
        "kind": "oauth2",
        "token_url": oauth_server.url("/token"),
        "client_id": oauth_server.client_id,
        "client_secret": oauth_server.client_secret,
    }
    base = {
        "name": "Ping with OAuth2",
        "payload_url": oauth_server.url("/hook"),
        "triggers": ["/items"],
        "ca_bundle": ca.cert_pem.bytes().decode("ascii"),
    }
    try:
        pipeline.start_matcher()
        admin.start()
        with admin.client() as http:
            refused = {
                "token_url must be an https:// URL": "http://auth.example.com/token",
                "private address": "https://10.1.2.3/token",
                "loopback address": "https://127.0.0.2/token",  # only 127.0.0.1 is allowed
            }
            for message, url in refused.items():
                body = {**base, "auth": {**auth, "token_url": url}}
                response = http.post("/api/v1/webhooks", json=body)
                assert response.status_code == 422, response.text
                assert "token_url" in response.text and message in response.text, response.text
            missing = http.post(
                "/api/v1/webhooks", json={**base, "auth": {**auth, "client_secret": None}}
            )
            assert missing.status_code == 422 and "client_secret" in missing.text, missing.text
            created = http.post("/api/v1/webhooks", json={**base, "auth": auth})
            assert created.status_code == 201, created.text
            hook = created.json()
            assert hook["auth"]["has_client_secret"] is True
            assert hook["auth"]["client_id"] == oauth_server.client_id
            assert oauth_server.client_secret not in created.text
            result = http.post(f"/api/v1/webhooks/{hook['id']}/ping").json()
            assert result["delivered"] and result["http_status"] == 200, result
            assert oauth_server.fetches() == 1
            oauth_server.token_status = 500
            failed = http.post(f"/api/v1/webhooks/{hook['id']}/ping").json()
            assert not failed["delivered"]
            assert failed["error"].startswith("OAuth2 token endpoint answered 500"), failed
            shown = http.get(f"/api/v1/webhooks/{hook['id']}").text
            assert oauth_server.client_secret not in shown
    finally:
        admin.stop()
        pipeline.stop()
