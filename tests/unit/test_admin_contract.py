"""The admin API's contract: current OpenAPI document, write-only secrets, token checks."""

from __future__ import annotations

import hmac
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from hookstream.admin.auth import TokenCheck
from hookstream.admin.problems import field_of
from hookstream.admin.schemas import WebhookOut
from hookstream.cli.tables import deliveries_table, table, webhook_detail
from hookstream.records.ids import generate_secret
from hookstream.records.models import WebhookAuth, WebhookConfig

ROOT = Path(__file__).resolve().parents[2]


def test_docs_openapi_json_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "export_openapi.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((ROOT / "docs" / "openapi.json").read_text())
    return document


def test_every_api_route_needs_the_bearer_token_and_health_does_not() -> None:
    for path, operations in _document()["paths"].items():
        for operation in operations.values():
            secured = operation.get("security") == [{"bearerAuth": []}]
            assert secured == path.startswith("/api/v1/"), path


def test_no_response_schema_has_a_secret_field() -> None:
    schemas = _document()["components"]["schemas"]
    for name in ("WebhookOut", "AuthOut", "WebhookPage", "DeliveryOut", "SettingsOut"):
        properties = set(schemas[name]["properties"])
        assert not properties & {"password", "secret", "previous_secret", "headers"}, name
    assert schemas["WebhookCreate"]["properties"]["secret"]["anyOf"][0]["writeOnly"] is True


def test_webhook_out_shows_that_secrets_exist_but_not_what_they_are() -> None:
    secret = generate_secret()
    config = WebhookConfig(
        webhook_id="w",
        name="W",
        payload_url="https://h.example/x",
        triggers=["/items"],
        auth=WebhookAuth(kind="header", headers={"X-Key": SecretStr("hv-123"), "X-B": "v"}),
        secret=SecretStr(secret),
    )
    out = WebhookOut.of(config)
    dumped = out.model_dump_json()
    assert out.auth.header_names == ["X-B", "X-Key"] and out.has_secret
    assert "hv-123" not in dumped and secret not in dumped and secret[6:] not in dumped
    assert "X-Key" in webhook_detail(json.loads(dumped))


def test_tokens_are_compared_with_every_configured_one(monkeypatch: pytest.MonkeyPatch) -> None:
    check = TokenCheck([SecretStr("first-token"), SecretStr("second-token")])
    calls: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(b)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    assert check.accepts("first-token")
    assert len(calls) == 2  # no early exit on the first match
    assert check.accepts("second-token")
    assert not check.accepts("first-tokenx")
    assert not check.accepts("")
    assert not check.accepts("\u00e9t\u00e9")
    assert not TokenCheck([]).accepts("anything")


@pytest.mark.parametrize(
    ("loc", "field"),
    [
        (("body", "payload_url"), "payload_url"),
        (("body", "webhook_id"), "id"),
        (("body", "auth", "headers"), "auth.headers"),
        (("query", "num"), "num"),
        (("body",), "body"),
    ],
)
def test_error_locations_become_field_names(loc: tuple[str, ...], field: str) -> None:
    assert field_of(loc) == field


def test_tables_line_up() -> None:
    text = table(("A", "LONGER"), [("x" * 5, 1), (None, "y")])
    assert text.splitlines() == ["A      LONGER", "xxxxx  1", "-      y"]
    page: dict[str, Any] = {"total": 0, "start": 1, "num": 0, "next_start": None, "deliveries": []}
    assert deliveries_table(page).splitlines()[-1] == "0 shown (0-0 of 0)"
