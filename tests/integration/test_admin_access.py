"""Who may use the admin API (401s) and what it accepts (422s naming the field)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from test_admin_support import ROTATED_TOKEN, TOKEN, AdminServer, with_admin

from hookstream.topics import create_topics
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
            {"Authorization": "Bearer \u00e9t\u00e9".encode()},
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
