"""hookstream's signatures verify with the Standard Webhooks reference library, not only our own."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hookstream.core.payloads import Payload
from hookstream.core.signing import ESRI_SIGNATURE_HEADER, signature_headers
from hookstream.net.delivery import request_headers
from hookstream.records.ids import generate_secret
from hookstream.records.models import WebhookConfig

BODY = b'{"info":{"webhookName":"n"},"events":[]}'


def _config(**update: object) -> WebhookConfig:
    base = WebhookConfig(
        webhook_id="w1", name="n", payload_url="https://receiver.example/h", triggers=["/items"]
    )
    return base.model_copy(update=update)


def test_reference_library_verifies_our_signature() -> None:
    secret = generate_secret()
    now = int(time.time())
    headers = request_headers(
        _config(secret=SecretStr(secret)), Payload(BODY, "application/json"), "msg_1", 1, now
    )
    verified = Webhook(secret).verify(BODY, headers)
    assert verified == {"info": {"webhookName": "n"}, "events": []}
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(now)


def test_a_changed_body_fails_verification() -> None:
    secret = generate_secret()
    headers = request_headers(
        _config(secret=SecretStr(secret)), Payload(BODY, "application/json"), "msg_1", 1
    )
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY + b" ", headers)


def test_rotation_sends_both_signatures_until_the_old_secret_expires() -> None:
    old, new = generate_secret(), generate_secret()
    now = int(time.time())
    config = _config(
        secret=SecretStr(new),
        previous_secret=SecretStr(old),
        previous_secret_expires_at=(now + 60) * 1000,
    )
    headers = signature_headers(config, "msg_2", BODY, now)
    assert len(headers["webhook-signature"].split(" ")) == 2
    full = {"webhook-id": "msg_2", **headers}
    Webhook(new).verify(BODY, full)
    Webhook(old).verify(BODY, full)  # a receiver that has not rotated yet still verifies
    expired = signature_headers(config, "msg_2", BODY, now + 61)
    assert len(expired["webhook-signature"].split(" ")) == 1
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(
            BODY, {"webhook-id": "msg_2", **expired, "webhook-timestamp": str(now + 61)}
        )


def test_esri_signature_is_base64_hmac_of_the_body() -> None:
    secret = generate_secret()
    headers = signature_headers(
        _config(secret=SecretStr(secret), esri_signature=True), "m", BODY, 1
    )
    expected = base64.b64encode(hmac.new(secret.encode(), BODY, hashlib.sha256).digest()).decode()
    assert headers[ESRI_SIGNATURE_HEADER] == f"sha256={expected}"


def test_no_secret_no_signature_headers() -> None:
    headers = request_headers(_config(), Payload(BODY, "application/json"), "m", 1)
    assert "webhook-signature" not in headers
    assert headers["webhook-id"] == "m"


@pytest.mark.parametrize(
    "bad", ["plain", "whsec_", "whsec_!!!", "whsec_" + base64.b64encode(b"short").decode()]
)
def test_malformed_secrets_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="signing secret"):
        _config(secret=SecretStr(bad)).model_validate(_config(secret=SecretStr(bad)).model_dump())
