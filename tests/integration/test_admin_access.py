"""Who may use the admin API (401s) and what it accepts (422s naming the field)."""

from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from test_admin_support import ROTATED_TOKEN, TOKEN, AdminServer, with_admin

from hookstream.kafka.topics import create_topics
from hostile import DISGUISED, HostileReceiver
from support import BLOCKED_ADDRESSES, unique_settings, url_host

pytestmark = pytest.mark.integration

API = "/api/v1"


@pytest.fixture(scope="module")
def server(kafka_bootstrap: str) -> Iterator[AdminServer]:
    """An admin server with production rules (https only); no write here reaches the registry."""
    settings = with_admin(unique_settings(kafka_bootstrap, allow_plain_http=False))
    create_topics(kafka_bootstrap, settings.topics)
    with AdminServer(settings) as running:
        yield running


def test_every_route_but_health_needs_a_valid_token(
    server: AdminServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hookstream.admin.auth")
    with server.client(token=None) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/readyz").json() == {"status": "ready", "waiting_for": []}
        for method, path in (
            ("GET", "/webhooks"),
            ("POST", "/webhooks"),
            ("GET", "/settings"),
            ("PATCH", "/settings"),
            ("GET", "/webhooks/x/deliveries"),
            ("POST", "/webhooks/x/ping"),
        ):
            answer = anonymous.request(method, API + path)
            assert answer.status_code == 401, (method, path)
            assert answer.headers["www-authenticate"] == "Bearer"
        missing = anonymous.get(f"{API}/webhooks").json()
        for headers in (
            {"Authorization": "Bearer wrong-token"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": f"Bearer {TOKEN}x"},
            {b"Authorization": "Bearer \u00e9t\u00e9".encode()},
        ):
            wrong = anonymous.get(f"{API}/webhooks", headers=headers)
            assert wrong.status_code == 401
            assert wrong.json() == missing  # the same answer whatever was wrong
    refusals = [r.getMessage() for r in caplog.records if r.name == "hookstream.admin.auth"]
    assert "refused an admin request to GET /api/v1/webhooks from 127.0.0.1" in refusals[0]
    assert not any("wrong-token" in line or TOKEN in line for line in refusals)
    for token in (TOKEN, ROTATED_TOKEN):
        with server.client(token=token) as client:
            assert client.get(f"{API}/webhooks").status_code == 200


def test_no_configured_token_refuses_everything(server: AdminServer) -> None:
    settings = with_admin(server.settings, tokens=[])
    with AdminServer(settings) as tokenless, tokenless.client() as client:
        assert client.get(f"{API}/settings").status_code == 401
        assert client.get("/readyz").status_code == 200


def test_invalid_input_is_a_422_naming_the_field(server: AdminServer) -> None:
    valid = {"name": "n", "payload_url": "https://hooks.example.com/x", "triggers": ["/items"]}
    cases: list[tuple[str, str, dict[str, Any], str, str]] = [
        (
            "POST",
            "/webhooks",
            {**valid, "payload_url": "http://hooks.example.com/x"},
            "payload_url",
            "https://",
        ),
        (
            "POST",
            "/webhooks",
            {**valid, "payload_url": "https://10.1.2.3/x"},
            "payload_url",
            "private",
        ),
        (
            "POST",
            "/webhooks",
            {**valid, "auth": {"kind": "header", "headers": {"cOnTeNt-TyPe": "x"}}},
            "auth",
            "cOnTeNt-TyPe",
        ),
        (
            "POST",
            "/webhooks",
            {**valid, "auth": {"kind": "header", "headers": {"HOST": "x"}}},
            "auth",
            "forbidden",
        ),
        (
            "POST",
            "/webhooks",
            {**valid, "triggers": ["/items/frobnicate/x"]},
            "triggers",
            "unknown",
        ),
        (
            "POST",
            "/webhooks",
            {**valid, "triggers": ["ComputerExploded"]},
            "triggers",
            "ComputerAdded",
        ),
        ("POST", "/webhooks", {**valid, "read_timeout_s": 61}, "read_timeout_s", "60"),
        ("POST", "/webhooks", {**valid, "id": "has space"}, "id", "pattern"),
        ("PATCH", "/settings", {"max_attempts": 0}, "max_attempts", "greater than or equal to 1"),
        ("PATCH", "/settings", {"max_attempts": 6}, "max_attempts", "less than or equal to 5"),
        ("PATCH", "/settings", {"retry_interval_s": 101}, "retry_interval_s", "100"),
        ("PATCH", "/settings", {"request_timeout_s": 61}, "request_timeout_s", "60"),
    ]
    with server.client() as http:
        for method, path, body, field_name, allowed in cases:
            answer = http.request(method, API + path, json=body)
            assert answer.status_code == 422, (body, answer.text)
            problem = answer.json()
            assert answer.headers["content-type"] == "application/problem+json"
            assert [e["field"] for e in problem["errors"]] == [field_name], problem
            assert field_name in problem["detail"] and allowed in problem["detail"], problem
        broken = http.post(
            f"{API}/webhooks", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert broken.status_code == 422
        assert http.get(f"{API}/webhooks", params={"trigger": "/nope"}).status_code == 422
        assert http.get(f"{API}/webhooks", params={"num": 101}).status_code == 422


@pytest.fixture(scope="module")
def guarded(kafka_bootstrap: str) -> Iterator[AdminServer]:
    """An admin server with the production SSRF guard: no network allow-listed."""
    settings = with_admin(unique_settings(kafka_bootstrap, allow_plain_http=False))
    security = settings.security.model_copy(update={"allow_networks": []})
    settings = settings.model_copy(update={"security": security})
    create_topics(kafka_bootstrap, settings.topics)
    with AdminServer(settings) as running:
        yield running


@pytest.mark.parametrize(("address", "reason"), BLOCKED_ADDRESSES.items())
def test_every_blocked_address_class_is_refused_at_create(
    guarded: AdminServer, address: str, reason: str
) -> None:
    url = f"https://{url_host(address)}/hook"
    with guarded.client() as http:
        answer = http.post(
            f"{API}/webhooks", json={"name": "n", "payload_url": url, "triggers": ["/items"]}
        )
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert [e["field"] for e in problem["errors"]] == ["payload_url"], problem
    assert reason in problem["detail"], problem
    assert "HOOKSTREAM_SECURITY__ALLOW_NETWORKS" in problem["detail"], problem


def _client_parses(url: str) -> bool:
    try:
        httpx.URL(url).host  # noqa: B018 - the IDNA check happens on access
    except (httpx.InvalidURL, UnicodeError):
        return False
    return True


def test_every_spelling_of_a_blocked_address_is_refused_at_create_and_nothing_connects(
    guarded: AdminServer,
) -> None:
    trap = HostileReceiver()
    try:
        with guarded.client() as http:
            for host, reason in DISGUISED.items():
                url = f"https://{host}:{trap.port}/hook"
                answer = http.post(
                    f"{API}/webhooks",
                    json={"name": "n", "payload_url": url, "triggers": ["/items"]},
                )
                assert answer.status_code == 422, (host, answer.text)
                problem = answer.json()
                assert [e["field"] for e in problem["errors"]] == ["payload_url"], problem
                if _client_parses(url):  # else the model refuses it first, in its own words
                    assert f"{reason} address" in problem["detail"], (host, problem)
                assert url not in answer.text
        assert trap.connections == 0
    finally:
        trap.close()


def test_a_422_never_echoes_submitted_values(server: AdminServer) -> None:
    marker = "echo-" + "c4f3b2a1"
    bodies = [
        {"name": "n", "payload_url": f"http://{marker}.example.com/x", "triggers": ["/items"]},
        {"name": "n", "payload_url": f"https://{marker}:99999/x", "triggers": ["/items"]},
        {
            "name": "n",
            "payload_url": "https://hooks.example.com/x",
            "triggers": ["/items"],
            "auth": {"kind": "header", "headers": {"X-Token": marker + "\u0001"}},
        },
        {"name": "n", "payload_url": marker, "triggers": ["/items"]},
    ]
    with server.client() as http:
        for body in bodies:
            answer = http.post(f"{API}/webhooks", json=body)
            assert answer.status_code == 422, (body, answer.text)
            assert marker not in answer.text, answer.text
            assert "input" not in answer.json()["errors"][0]


def _post_raw(url: str, head: bytes, body_bytes: int) -> tuple[bytes, int]:
    """Send a request head, then up to ``body_bytes`` of body while the server lets us; the
    answer's first bytes and how many body bytes went out before it came."""
    host, port = url.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        chunk = b"x" * 65_536
        answer = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and b"\r\n\r\n" not in answer:
            readable, writable, _ = select.select(
                [sock], [sock] if sent < body_bytes else [], [], 1
            )
            if readable:
                data = sock.recv(65_536)
                if not data:
                    break
                answer += data
            elif writable:
                try:
                    sent += sock.send(chunk[: body_bytes - sent])
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    break
    return answer, sent


def test_a_huge_unauthenticated_body_is_refused_before_it_is_read(server: AdminServer) -> None:
    size = 50 * 1024 * 1024
    head = (
        b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % size
    )
    answer, sent = _post_raw(server.url, head, size)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"application/problem+json" in answer
    assert sent < size // 2, sent  # answered long before the body was through
    chunked = b"POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    answer, _ = _post_raw(server.url, chunked, 0)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_a_body_over_the_limit_is_a_413_problem(server: AdminServer) -> None:
    big = b'{"name": "' + b"n" * (2 * 1024 * 1024) + b'"}'
    with server.client() as http:
        answer = http.post(
            f"{API}/webhooks", content=big, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 413, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert "limit" in answer.json()["detail"]

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(big), 65_536):
                yield big[start : start + 65_536]

        streamed = http.post(
            f"{API}/webhooks", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413, streamed.text
        small = http.post(f"{API}/webhooks", json={"name": "n"})
        assert small.status_code == 422  # within the limit: read and validated as before
