"""The identifiers and secrets records carry: delivery ids (stable per event and webhook) and
Standard Webhooks signing secrets (``whsec_`` + base64)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import uuid

#: Standard Webhooks spelling of a signing secret.
SECRET_PREFIX = "whsec_"  # noqa: S105 - a format prefix, not a secret

#: Namespace of delivery ids: uuid5(event id, webhook id) is the same whenever it is recomputed.
DELIVERY_NAMESPACE = uuid.UUID("6f1d1f0e-6a55-4b53-9d53-3d0c7f6b2a11")

#: SHA-1 over the namespace, copied per id: what ``uuid.uuid5`` hashes, without its UUID object.
_DELIVERY_HASH = hashlib.sha1(DELIVERY_NAMESPACE.bytes, usedforsecurity=False)


def delivery_id_for(event_id: str, webhook_id: str) -> str:
    """The delivery id of (event, webhook): stable, so a re-run of the matcher repeats it.

    ``str(uuid.uuid5(DELIVERY_NAMESPACE, event_id + NUL + webhook_id))``, computed directly: the
    matcher makes one per job and the uuid module's objects cost more than the hash."""
    digest = _DELIVERY_HASH.copy()
    digest.update(f"{event_id}\x00{webhook_id}".encode())
    raw = bytearray(digest.digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def signing_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (``whsec_`` + base64 of 24 to 64 bytes)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a signing secret starts with {SECRET_PREFIX!r} (use generate_secret())")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a signing secret is whsec_ followed by base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("a signing secret holds 24 to 64 bytes of key")
    return key


def generate_secret() -> str:
    """A new random signing secret in the Standard Webhooks format."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")
