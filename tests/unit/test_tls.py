"""The webhook TLS fields: PEM rules naming the field, and the bounded cache of SSL contexts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr, ValidationError

from hookstream.core.certificates import check_current
from hookstream.net.tls import TlsContexts, TlsSettingsError
from hookstream.records.codec import decode, encode
from hookstream.records.models import WebhookConfig

CA = trustme.CA()
LEAF = CA.issue_cert("sender.hookstream.test")
OTHER = CA.issue_cert("other.hookstream.test")
CERT = LEAF.cert_chain_pems[0].bytes().decode()
KEY = LEAF.private_key_pem.bytes().decode()
CA_PEM = CA.cert_pem.bytes().decode()


def _config(**fields: object) -> WebhookConfig:
    return WebhookConfig(
        webhook_id="wh-tls",
        name="TLS",
        payload_url="https://receiver.example.com/hook",
        triggers=["/items"],
        **fields,
    )


def _errors(**fields: object) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        _config(**fields)
    return [
        (".".join(str(part) for part in error["loc"]), error["msg"])
        for error in caught.value.errors(include_input=False)
    ]


def test_a_client_certificate_and_its_key_make_a_config_whose_key_is_encrypted_at_rest() -> None:
    config = _config(ca_bundle=CA_PEM, client_cert=CERT, client_key=SecretStr(KEY))
    data = encode(config)
    assert KEY.splitlines()[1].encode() not in data
    assert CERT.splitlines()[1].encode() in data  # a certificate is public
    assert decode(data, WebhookConfig) == config
    assert KEY not in repr(config)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"ca_bundle": "hello"}, "ca_bundle", "PEM"),
        (
            {"ca_bundle": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
            "ca_bundle",
            "does not parse",
        ),
        ({"client_cert": "junk", "client_key": SecretStr(KEY)}, "client_cert", "PEM"),
        ({"client_cert": CERT, "client_key": SecretStr("junk")}, "client_key", "does not parse"),
        (
            {"client_cert": CERT, "client_key": SecretStr(OTHER.private_key_pem.bytes().decode())},
            "client_key",
            "does not match client_cert",
        ),
        ({"client_cert": CERT}, "client_key", "needs its client_key"),
        ({"client_key": SecretStr(KEY)}, "client_key", "set client_cert too"),
    ],
)
def test_unusable_tls_fields_are_refused_naming_the_field(
    fields: dict[str, object], field: str, words: str
) -> None:
    [(where, message)] = _errors(**fields)
    assert where == field
    assert words in message
    assert "PRIVATE KEY-----" not in message


def test_an_encrypted_key_is_refused_with_what_to_do() -> None:
    key = LEAF.private_key_pem.bytes()
    private = serialization.load_pem_private_key(key, password=None)
    encrypted = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()
    [(where, message)] = _errors(client_cert=CERT, client_key=SecretStr(encrypted))
    assert where == "client_key" and "without one" in message


def test_an_expired_or_future_certificate_is_named_by_check_current() -> None:
    past = CA.issue_cert(
        "old.hookstream.test",
        not_before=datetime(2020, 1, 1, tzinfo=UTC),
        not_after=datetime(2021, 1, 1, tzinfo=UTC),
    )
    pem = past.cert_chain_pems[0].bytes().decode()
    with pytest.raises(ValueError, match=r"client_cert: certificate 1 .* expired on 2021-01-01"):
        check_current(pem, "client_cert")
    future = CA.issue_cert(
        "new.hookstream.test", not_before=datetime.now(UTC) + timedelta(days=30)
    ).cert_chain_pems[0]
    with pytest.raises(ValueError, match="ca_bundle: certificate 1 .* not valid before"):
        check_current(future.bytes().decode(), "ca_bundle")
    check_current(CERT, "client_cert")
    # A stored config stays readable once its certificate has expired.
    expired = _config(client_cert=pem, client_key=SecretStr(past.private_key_pem.bytes().decode()))
    assert decode(encode(expired), WebhookConfig) == expired


def test_contexts_are_cached_per_distinct_pems_and_bounded() -> None:
    contexts = TlsContexts(size=2)
    assert contexts.context_for(None, None, None) is contexts.default
    first = contexts.context_for(CA_PEM, None, None)
    assert contexts.context_for(CA_PEM, None, None) is first
    with_cert = contexts.context_for(CA_PEM, CERT, KEY)
    assert with_cert is not first
    contexts.context_for(None, CERT, KEY)
    assert len(contexts._cache) == 2
    assert contexts.context_for(CA_PEM, None, None) is not first  # evicted, built again


def test_a_client_certificate_expired_since_upload_fails_the_attempt_naming_it() -> None:
    soon = CA.issue_cert("soon.hookstream.test", not_after=datetime.now(UTC) + timedelta(days=1))
    cert, key = soon.cert_chain_pems[0].bytes().decode(), soon.private_key_pem.bytes().decode()
    contexts = TlsContexts()
    assert contexts.context_for(None, cert, key) is not contexts.default
    later = datetime.now(UTC) + timedelta(days=2)
    with pytest.raises(TlsSettingsError, match="client_cert expired on"):
        contexts.context_for(None, cert, key, now=later)
