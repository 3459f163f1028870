"""TLS towards receivers through the sender's real HTTP client: private CAs (per webhook and the
operator's extra bundle), mutual TLS, the connect timeout, and the whole pipeline with a client
key encrypted in Kafka."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
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
from hookstream.net.tls import TlsContexts
from hookstream.records.models import Outcome, WebhookConfig
from hookstream.settings import Settings
from support import (
    Pipeline,
    StatusReader,
    make_event,
    register_and_wait,
    unique_settings,
    wait_until,
)
from tls_support import SilentListener, TlsReceiver

pytestmark = pytest.mark.integration

PAYLOAD = Payload(b'{"ping": true}', "application/json")


@pytest.fixture(scope="module")
def private_ca() -> trustme.CA:
    return trustme.CA(organization_name="hookstream test private CA")


@pytest.fixture
def tls_receiver(private_ca: trustme.CA) -> Iterator[TlsReceiver]:
    server = TlsReceiver(private_ca)
    yield server
    server.close()


def _pem(blob: trustme.Blob) -> str:
    return blob.bytes().decode("ascii")


def _webhook(url: str, **fields: object) -> WebhookConfig:
    return WebhookConfig(
        webhook_id=f"tls-{uuid.uuid4().hex[:8]}",
        name="TLS",
        payload_url=url,
        triggers=["/items"],
        **fields,
    )


async def _send_all(
    settings: Settings,
    webhooks: list[WebhookConfig],
    connect_s: float = 10.0,
    read_s: float = 10.0,
) -> list[AttemptResult]:
    """POST once per webhook, in order, through one client as the sender does."""
    contexts = TlsContexts(settings.security.ca_bundle)
    timeout = httpx.Timeout(read_s, connect=connect_s, read=read_s, write=read_s, pool=connect_s)
    async with make_http_client(settings) as http:
        return [
            await egress.send(
                http,
                webhook,
                webhook.payload_url,
                PAYLOAD,
                {"Content-Type": PAYLOAD.content_type},
                timeout,
                total_timeout_s=connect_s + read_s + 1.0,
                excerpt_bytes=100,
                contexts=contexts,
            )
            for webhook in webhooks
        ]


def test_a_private_ca_is_trusted_only_where_configured(
    tls_receiver: TlsReceiver, private_ca: trustme.CA
) -> None:
    settings = unique_settings("127.0.0.1:1")
    url = tls_receiver.url("/private")
    trusting = _webhook(url, ca_bundle=_pem(private_ca.cert_pem))
    plain = _webhook(url)
    other_ca = _webhook(url, ca_bundle=_pem(trustme.CA().cert_pem))
    # The same host with and without the CA, on one client: trust never leaks through a pooled
    # connection.
    results = asyncio.run(_send_all(settings, [plain, trusting, plain, other_ca, trusting]))
    assert [r.http_status for r in results] == [None, 200, None, None, 200]
    for refused in (results[0], results[2], results[3]):
        assert "CERTIFICATE_VERIFY_FAILED" in (refused.error or ""), refused
        assert not refused.permanent  # the receiver may yet fix its certificate
    assert len(tls_receiver.on("/private")) == 2


def test_the_operators_extra_ca_bundle_is_trusted_for_every_webhook(
    tls_receiver: TlsReceiver, private_ca: trustme.CA, tmp_path: Path
) -> None:
    bundle = tmp_path / "internal-ca.pem"
    private_ca.cert_pem.write_to_path(str(bundle))
    base = unique_settings("127.0.0.1:1")
    settings = base.model_copy(
        update={"security": base.security.model_copy(update={"ca_bundle": bundle})}
    )
    [result] = asyncio.run(_send_all(settings, [_webhook(tls_receiver.url("/global"))]))
    assert result.http_status == 200, result
    [without] = asyncio.run(_send_all(base, [_webhook(tls_receiver.url("/global"))]))
    assert "CERTIFICATE_VERIFY_FAILED" in (without.error or ""), without


def test_an_extra_ca_bundle_that_is_not_pem_stops_the_settings(tmp_path: Path) -> None:
    bundle = tmp_path / "not-a-ca.pem"
    bundle.write_text("hello")
    with pytest.raises(ValueError, match="PEM"):
        Settings(security={"ca_bundle": bundle})


def test_the_host_name_is_still_verified_with_a_trusted_ca(private_ca: trustme.CA) -> None:
    """A certificate of the trusted CA for another name is refused: trusting a CA does not
    switch off the host name check."""
    server = TlsReceiver(private_ca, name="receiver.example.com")
    try:
        settings = unique_settings("127.0.0.1:1")
        webhook = _webhook(server.url("/other-name"), ca_bundle=_pem(private_ca.cert_pem))
        [result] = asyncio.run(_send_all(settings, [webhook]))
        assert result.http_status is None
        assert "CERTIFICATE_VERIFY_FAILED" in (result.error or ""), result
        assert "127.0.0.1" in (result.error or ""), result
        assert server.on("/other-name") == []
    finally:
        server.close()


def test_mutual_tls_shows_the_webhooks_client_certificate(private_ca: trustme.CA) -> None:
    client_ca = trustme.CA(organization_name="hookstream test client CA")
    client = client_ca.issue_cert("sender.hookstream.test", common_name="hookstream-sender")
    server = TlsReceiver(private_ca, client_ca=client_ca)
    try:
        settings = unique_settings("127.0.0.1:1")
        url = server.url("/mtls")
        ca = _pem(private_ca.cert_pem)
        with_cert = _webhook(
            url,
            ca_bundle=ca,
            client_cert="".join(_pem(blob) for blob in client.cert_chain_pems),
            client_key=SecretStr(_pem(client.private_key_pem)),
        )
        without = _webhook(url, ca_bundle=ca)
        results = asyncio.run(_send_all(settings, [without, with_cert, without]))
        assert [r.http_status for r in results] == [None, 200, None], results
        assert server.client_subjects == ["hookstream-sender"]
        key_text = _pem(client.private_key_pem)
        assert all(key_text not in (r.error or "") for r in results)
    finally:
        server.close()


def test_the_connect_timeout_ends_a_handshake_that_never_completes() -> None:
    """A receiver that accepts TCP but never answers the TLS handshake: the attempt ends after
    the connect timeout (0.5 s), far before the read timeout (30 s)."""
    listener = SilentListener()
    try:
        settings = unique_settings("127.0.0.1:1")
        started = time.monotonic()
        [result] = asyncio.run(
            _send_all(settings, [_webhook(listener.url("/h"))], connect_s=0.5, read_s=30.0)
        )
        elapsed = time.monotonic() - started
        assert result.http_status is None
        assert (result.error or "").startswith("connect timeout"), result
        assert not result.permanent
        assert result.duration_ms < 10_000 and elapsed < 15.0, (result, elapsed)
        assert listener.accepted, "the TCP connection was made; the handshake timed out"
    finally:
        listener.close()


def test_the_pipeline_delivers_with_a_private_ca_and_mutual_tls_and_keeps_the_key_secret(
    kafka_bootstrap: str, private_ca: trustme.CA, tmp_path: Path
) -> None:
    client_ca = trustme.CA()
    client_cert = client_ca.issue_cert("sender.hookstream.test", common_name="pipeline-sender")
    key_text = _pem(client_cert.private_key_pem)
    marker = key_text.splitlines()[1]  # a line of the key's base64
    server = TlsReceiver(private_ca, client_ca=client_ca)
    settings = unique_settings(kafka_bootstrap, retry_interval_s=1.0, max_attempts=1)
    create_topics(kafka_bootstrap, settings.topics)
    pipeline = Pipeline(settings, tmp_path)
    client = HookstreamClient(kafka_bootstrap, settings.topics)
    statuses = StatusReader(kafka_bootstrap, settings)
    resource = f"i{uuid.uuid4().hex[:6]}"
    webhook = WebhookConfig(
        webhook_id=f"mtls-{uuid.uuid4().hex[:6]}",
        name="mTLS",
        payload_url=server.url("/pipeline"),
        triggers=[f"/items/{resource}"],
        ca_bundle=_pem(private_ca.cert_pem),
        client_cert=_pem(client_cert.cert_chain_pems[0]),
        client_key=SecretStr(key_text),
    )
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        register_and_wait(client, webhook)
        client.publish_event(make_event("items", "update", resource))
        [status] = wait_until(
            lambda: [s for s in statuses.of(webhook.webhook_id) if s.final], 60, "the delivery"
        )
        assert status.outcome is Outcome.DELIVERED, status
        assert server.client_subjects == ["pipeline-sender"]
        assert client.latest_webhooks()[webhook.webhook_id].client_key == webhook.client_key
    finally:
        pipeline.stop()
        statuses.close()
        client.close()
        server.close()
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
    assert marker.encode() not in raw, "the client key is encrypted at rest"
    logs = "".join(path.read_text() for path in tmp_path.glob("*.log"))
    assert marker not in logs


def test_the_admin_api_refuses_unusable_tls_fields_and_ping_uses_the_webhooks_tls(
    kafka_bootstrap: str, private_ca: trustme.CA, tmp_path: Path
) -> None:
    client_ca = trustme.CA()
    leaf = client_ca.issue_cert("sender.hookstream.test", common_name="ping-sender")
    expired = client_ca.issue_cert(
        "old.hookstream.test",
        not_before=datetime(2020, 1, 1, tzinfo=UTC),
        not_after=datetime(2021, 1, 1, tzinfo=UTC),
    )
    key_text = _pem(leaf.private_key_pem)
    server = TlsReceiver(private_ca, client_ca=client_ca)
    settings = with_admin(unique_settings(kafka_bootstrap))
    create_topics(kafka_bootstrap, settings.topics)
    pipeline = Pipeline(settings, tmp_path)
    admin = AdminServer(settings)
    base = {
        "name": "Ping over mTLS",
        "payload_url": server.url("/ping"),
        "triggers": ["/items"],
        "ca_bundle": _pem(private_ca.cert_pem),
    }
    try:
        pipeline.start_matcher()
        admin.start()
        with admin.client() as http:
            refused = {
                "client_cert": {
                    **base,
                    "client_cert": _pem(expired.cert_chain_pems[0]),
                    "client_key": _pem(expired.private_key_pem),
                },
                "client_key": {
                    **base,
                    "client_cert": _pem(leaf.cert_chain_pems[0]),
                    "client_key": _pem(expired.private_key_pem),
                },
                "ca_bundle": {**base, "ca_bundle": "not a certificate"},
            }
            for field, body in refused.items():
                response = http.post("/api/v1/webhooks", json=body)
                assert response.status_code == 422, response.text
                assert field in response.text, response.text
                assert "PRIVATE KEY" not in response.text
            created = http.post(
                "/api/v1/webhooks",
                json={**base, "client_cert": _pem(leaf.cert_chain_pems[0]), "client_key": key_text},
            )
            assert created.status_code == 201, created.text
            hook = created.json()
            assert hook["has_client_key"] is True
            assert "PRIVATE KEY" not in created.text
            result = http.post(f"/api/v1/webhooks/{hook['id']}/ping").json()
            assert result["delivered"] and result["http_status"] == 200, result
            assert server.client_subjects == ["ping-sender"]
            shown = http.get(f"/api/v1/webhooks/{hook['id']}").text
            assert "PRIVATE KEY" not in shown and key_text.splitlines()[1] not in shown
    finally:
        admin.stop()
        pipeline.stop()
        server.close()
