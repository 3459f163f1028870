"""The CLI's flags for a webhook's TLS and OAuth2 fields: files read into the request body."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from hookstream.cli.admin import _webhook_body, add_admin_commands


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_admin_commands(parser.add_subparsers())
    return parser.parse_args(["webhooks", "create", *argv])


def test_pem_and_oauth2_flags_fill_the_body_from_files(tmp_path: Path) -> None:
    files = {name: tmp_path / name for name in ("ca.pem", "cert.pem", "key.pem", "client-secret")}
    for name, path in files.items():
        path.write_text(f"-- {name} --\n")
    body = _webhook_body(
        _parse(
            "--ca-bundle-file", str(files["ca.pem"]),
            "--client-cert-file", str(files["cert.pem"]),
            "--client-key-file", str(files["key.pem"]),
            "--token-url", "https://auth.example.com/token",
            "--client-id", "hs",
            "--client-secret-file", str(files["client-secret"]),
            "--scope", "hooks",
        )
    )  # fmt: skip
    assert body["ca_bundle"] == "-- ca.pem --\n"
    assert body["client_cert"] == "-- cert.pem --\n"
    assert body["client_key"] == "-- key.pem --\n"
    assert body["auth"] == {
        "kind": "oauth2",
        "token_url": "https://auth.example.com/token",
        "client_id": "hs",
        "client_secret": "-- client-secret --",
        "scope": "hooks",
    }


def test_a_token_url_without_its_credentials_is_refused() -> None:
    with pytest.raises(ValueError, match="--token-url needs --client-id and --client-secret-file"):
        _webhook_body(_parse("--token-url", "https://auth.example.com/token"))


def test_an_unreadable_pem_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ValueError, match=f"cannot read {missing}"):
        _webhook_body(_parse("--ca-bundle-file", str(missing)))
