"""Signing of every delivery: Standard Webhooks headers, and the portal family's optional header.

``webhook-signature`` is ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`` over the exact
bytes sent; while a replaced secret is still in its grace period, both signatures are sent,
space-separated, so receivers can rotate without losing a delivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from hookstream.records.ids import signing_key
from hookstream.records.models import WebhookConfig

ESRI_SIGNATURE_HEADER = "x-esriHook-Signature"


def standard_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One Standard Webhooks signature, ``v1,<base64>``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def esri_signature(secret: str, body: bytes) -> str:
    """``sha256=<base64 HMAC-SHA256(secret, body)>``, keyed by the secret as configured."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode("ascii")


def signature_headers(
    config: WebhookConfig, message_id: str, body: bytes, now_s: int
) -> dict[str, str]:
    """The signing headers of one attempt; none when the webhook has no secret."""
    if config.secret is None:
        return {}
    secret = config.secret.get_secret_value()
    signatures = [standard_signature(secret, message_id, now_s, body)]
    previous = config.previous_secret
    expires_at = config.previous_secret_expires_at
    if previous is not None and (expires_at is None or expires_at > now_s * 1000):
        signatures.append(standard_signature(previous.get_secret_value(), message_id, now_s, body))
    headers = {"webhook-timestamp": str(now_s), "webhook-signature": " ".join(signatures)}
    if config.esri_signature:
        headers[ESRI_SIGNATURE_HEADER] = esri_signature(secret, body)
    return headers
