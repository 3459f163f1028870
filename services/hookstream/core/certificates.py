"""The PEM rules of a webhook's TLS fields and of the operator's extra CA bundle: the one reading
of them, used by the models (a PEM that does not parse, a key that does not match), where a
webhook is written (expired) and by the settings (a CA file). Parsing only: no file, no network."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

#: The longest PEM text one TLS field of a webhook may hold (a CA bundle of a few dozen CAs).
MAX_PEM_CHARS = 65536


def load_certificates(pem: str, field: str) -> list[x509.Certificate]:
    """The certificates of a PEM text; a ValueError naming ``field`` if there is none or one is
    damaged. Messages never repeat the PEM."""
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise ValueError(
            f"{field} must be PEM text holding at least one '-----BEGIN CERTIFICATE-----' block"
        )
    try:
        return x509.load_pem_x509_certificates(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise ValueError(
            f"{field} does not parse as PEM certificates (a block is damaged or not X.509)"
        ) from None


def load_private_key(pem: str, field: str) -> PrivateKeyTypes:
    """The private key of an unencrypted PEM text; a ValueError naming ``field`` otherwise."""
    try:
        return serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except TypeError:
        raise ValueError(
            f"{field} is encrypted with a passphrase; upload the key without one (hookstream "
            "encrypts it at rest itself)"
        ) from None
    except Exception:  # ValueError, UnsupportedAlgorithm, UnicodeEncodeError
        raise ValueError(
            f"{field} does not parse as a PEM private key (PKCS#8 or traditional RSA/EC, "
            "unencrypted)"
        ) from None


def _public_bytes(key: object) -> bytes:
    public = key.public_key()  # type: ignore[attr-defined]
    data: bytes = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


def check_client_pair(cert_pem: str, key_pem: str) -> None:
    """Refuse a client key that does not belong to the first certificate of ``client_cert``."""
    leaf = load_certificates(cert_pem, "client_cert")[0]
    key = load_private_key(key_pem, "client_key")
    if _public_bytes(key) != _public_bytes(leaf):
        raise ValueError(
            "client_key does not match client_cert: the key must be the private key of the "
            "first certificate in client_cert"
        )


def check_current(pem: str, field: str, now: datetime | None = None) -> None:
    """Refuse a PEM holding a certificate that has expired (or is not valid yet)."""
    moment = now or datetime.now(UTC)
    for number, cert in enumerate(load_certificates(pem, field), start=1):
        if cert.not_valid_after_utc <= moment:
            raise ValueError(
                f"{field}: certificate {number} ({cert.subject.rfc4514_string()}) expired on "
                f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; upload a renewed one"
            )
        if cert.not_valid_before_utc > moment:
            raise ValueError(
                f"{field}: certificate {number} ({cert.subject.rfc4514_string()}) is not valid "
                f"before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
            )


def check_client_key(cert_pem: str | None, key_pem: str | None) -> None:
    """Mutual TLS needs both a client certificate and its key, or neither; the key must be the
    certificate's."""
    if key_pem is None:
        if cert_pem is not None:
            raise ValueError("client_cert needs its client_key (mutual TLS needs both)")
        return
    if cert_pem is None:
        raise ValueError("client_key is the key of a client_cert; set client_cert too")
    check_client_pair(cert_pem, key_pem)
