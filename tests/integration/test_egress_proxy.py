"""The egress proxy, through a real HTTP proxy (pproxy, a subprocess on 127.0.0.1) to a real
HTTPS receiver: deliveries and token fetches are tunnelled with CONNECT to the address the SSRF
guard checked, a refused target never reaches the proxy, and NO_PROXY goes direct."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from pydantic import SecretStr

from hookstream.core.payloads import Payload
from hookstream.net import egress
from hookstream.net.delivery import AttemptResult
from hookstream.net.egress import make_http_client
from hookstream.net.oauth import OAuthTokens
from hookstream.net.ssrf import AddressPolicy
from hookstream.net.tls import TlsContexts
from hookstream.records.models import AuthKind, WebhookAuth, WebhookConfig
from hookstream.settings import Settings
from oauth_support import OAuthServer
from support import unique_settings, wait_until
from tls_support import TlsReceiver

pytestmark = pytest.mark.integration

PAYLOAD = Payload(b'{"ping": true}', "application/json")


class Proxy:
    """pproxy serving HTTP (CONNECT and absolute-form) on 127.0.0.1; logs each tunnel."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self.log = folder / f"proxy-{self.port}.log"
        self._out = self.log.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - a fixed command line
            [sys.executable, "-m", "pproxy", "-l", f"http://127.0.0.1:{self.port}", "-v"],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        wait_until(self._listening, 30, "the proxy to listen")

    def _listening(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def url(self, host: str = "localhost") -> str:
        return f"http://{host}:{self.port}"

    def tunnels(self) -> list[str]:
        """The target (host:port) of every connection the proxy made, in order."""
        lines = self.log.read_text(errors="replace").splitlines()
        return [line.rsplit(" -> ", 1)[1] for line in lines if " -> " in line]

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._out.close()


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    server = Proxy(tmp_path)
    yield server
    server.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="hookstream test proxy CA")


@pytest.fixture
def receiver(ca: trustme.CA) -> Iterator[TlsReceiver]:
    server = TlsReceiver(ca)
    yield server
    server.close()


def _proxied(proxy: Proxy, *no_proxy: str) -> Settings:
    """Settings allowing 127.0.0.1 only: the proxy is reached as ``localhost``, a name whose
    addresses (127.0.0.1, maybe ::1) the guard would refuse, were it not the proxy."""
    base = unique_settings("127.0.0.1:1", allow_plain_http=False)
    security = base.security.model_copy(update={"proxy": proxy.url(), "no_proxy": list(no_proxy)})
    return base.model_copy(update={"security": security})


def _webhook(url: str, ca: trustme.CA, **fields: object) -> WebhookConfig:
    return WebhookConfig(
        webhook_id=f"px-{uuid.uuid4().hex[:8]}",
        name="Proxied",
        payload_url=url,
        triggers=["/items"],
        ca_bundle=ca.cert_pem.bytes().decode("ascii"),
        **fields,
    )


async def _send(settings: Settings, webhook: WebhookConfig) -> AttemptResult:
    timeout = httpx.Timeout(10.0, connect=10.0)
    tokens = OAuthTokens(AddressPolicy(settings.security.allow_networks), allow_plain_http=False)
    async with make_http_client(settings) as http:
        return await egress.send(
            http,
            webhook,
            webhook.payload_url,
            PAYLOAD,
            {"Content-Type": PAYLOAD.content_type},
            timeout,
            total_timeout_s=21.0,
            excerpt_bytes=100,
            contexts=TlsContexts(settings.security.ca_bundle),
            tokens=tokens,
        )


def test_a_delivery_goes_through_the_proxy(
    proxy: Proxy, receiver: TlsReceiver, ca: trustme.CA
) -> None:
    result = asyncio.run(_send(_proxied(proxy), _webhook(receiver.url("/via"), ca)))
    assert result.http_status == 200, result
    port = receiver.server.server_address[1]
    assert proxy.tunnels() == [f"127.0.0.1:{port}"]
    [request] = receiver.on("/via")
    assert request.headers["host"] == f"127.0.0.1:{port}"


def test_a_named_target_is_tunnelled_to_its_checked_address_with_its_name_kept(
    proxy: Proxy, ca: trustme.CA
) -> None:
    """``localhost`` resolves to 127.0.0.1 (the hosts file of the test machines): the proxy is
    asked for that address, never the name, and the receiver's certificate (for the name) is
    verified through the tunnel, so SNI and Host kept the name."""
    server = TlsReceiver(ca, name="localhost")
    try:
        port = server.server.server_address[1]
        url = f"https://localhost:{port}/named"
        result = asyncio.run(_send(_proxied(proxy), _webhook(url, ca)))
        assert result.http_status == 200, result
        assert proxy.tunnels() == [f"127.0.0.1:{port}"]
        [request] = server.on("/named")
        assert request.headers["host"] == f"localhost:{port}"
    finally:
        server.close()


def test_a_blocked_target_is_refused_before_any_connect(
    proxy: Proxy, receiver: TlsReceiver, ca: trustme.CA
) -> None:
    port = receiver.server.server_address[1]
    for url in (f"https://127.0.0.2:{port}/no", f"https://10.9.8.7:{port}/no"):
        result = asyncio.run(_send(_proxied(proxy), _webhook(url, ca)))
        assert result.permanent, result
        assert "refused" in (result.error or ""), result
    assert proxy.tunnels() == []


def test_no_proxy_goes_direct(proxy: Proxy, receiver: TlsReceiver, ca: trustme.CA) -> None:
    for exception in ("127.0.0.0/8", "127.0.0.1"):
        settings = _proxied(proxy, exception)
        result = asyncio.run(_send(settings, _webhook(receiver.url("/direct"), ca)))
        assert result.http_status == 200, result
    assert len(receiver.on("/direct")) == 2
    assert proxy.tunnels() == []


def test_the_token_fetch_goes_through_the_proxy_too(
    proxy: Proxy, receiver: TlsReceiver, ca: trustme.CA
) -> None:
    server = OAuthServer(ca)
    try:
        webhook = _webhook(
            receiver.url("/with-token"),
            ca,
            auth=WebhookAuth(
                kind=AuthKind.OAUTH2,
                token_url=server.url("/token"),
                client_id=server.client_id,
                client_secret=SecretStr(server.client_secret),
            ),
        )
        result = asyncio.run(_send(_proxied(proxy), webhook))
        assert result.http_status == 200, result
        token_port = server.server.server_address[1]
        port = receiver.server.server_address[1]
        assert proxy.tunnels() == [f"127.0.0.1:{token_port}", f"127.0.0.1:{port}"]
        [request] = receiver.on("/with-token")
        assert request.headers["authorization"] == "Bearer tok-1"
    finally:
        server.close()
