"""TLS towards receivers: which CAs are trusted and which client certificate is shown.

Every HTTPS connection verifies the receiver's certificate and host name; nothing here turns that
off. A connection trusts the public CAs (certifi), the operator's extra bundle
(``HOOKSTREAM_SECURITY__CA_BUNDLE``) and the webhook's own ``ca_bundle``; a webhook with a
``client_cert`` and ``client_key`` shows that certificate (mutual TLS).

The PEM rules are in ``hookstream.core.certificates``, the one reading of the webhook's TLS
fields. SSL contexts are built once per distinct set of PEMs and kept in a bounded cache; the
client key is handed to OpenSSL through an anonymous in-memory file, never written to disk.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization

from hookstream.core.certificates import load_certificates, load_private_key
from hookstream.core.errors import ConfigurationError, PermanentError

#: Distinct (CA bundle, client certificate) combinations whose SSL contexts are kept.
CONTEXT_CACHE_SIZE = 256


class TlsSettingsError(PermanentError):
    """A webhook's TLS fields cannot be used (expired, unreadable); the message names the field."""


@contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    """A path OpenSSL can read ``data`` from; in memory where the system allows it."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("hookstream-client-cert", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory() as folder:  # pragma: no cover - systems without memfd
        path = Path(folder) / "client.pem"
        path.touch(mode=0o600)
        path.write_bytes(data)
        try:
            yield str(path)
        finally:
            path.unlink()


@dataclass(frozen=True)
class _Entry:
    context: ssl.SSLContext
    #: When the client certificate expires (None without one): an expired one is refused.
    client_not_after: datetime | None


class TlsContexts:
    """SSL contexts for receivers: the default one, and one per distinct set of webhook PEMs."""

    def __init__(self, ca_bundle: Path | None = None, size: int = CONTEXT_CACHE_SIZE) -> None:
        self.ca_bundle = ca_bundle
        self.size = size
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, _Entry] = OrderedDict()
        self.default = self._base()

    def _base(self) -> ssl.SSLContext:
        # trust_env=False: SSL_CERT_FILE and friends do not change what a sender trusts behind
        # the operator's back; the setting does.
        context = httpx.create_ssl_context(trust_env=False)
        if self.ca_bundle is not None:
            try:
                context.load_verify_locations(cafile=str(self.ca_bundle))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigurationError(
                    f"HOOKSTREAM_SECURITY__CA_BUNDLE={self.ca_bundle} cannot be loaded ({exc}); "
                    "point it at a readable PEM file of CA certificates"
                ) from exc
        return context

    def context_for(
        self,
        ca: str | None,
        cert: str | None,
        key: str | None,
        now: datetime | None = None,
    ) -> ssl.SSLContext:
        """The SSL context for a webhook's ``ca_bundle``, ``client_cert`` and ``client_key``;
        ``TlsSettingsError`` naming the field if they cannot be used (a client certificate that
        has expired since it was uploaded)."""
        if ca is None and cert is None:
            return self.default
        digest = hashlib.sha256()
        for part in (ca, cert, key):
            digest.update(b"\x00" if part is None else b"\x01" + part.encode() + b"\x00")
        cache_key = digest.digest()
        with self._lock:
            entry = self._cache.get(cache_key)
            if entry is not None:
                self._cache.move_to_end(cache_key)
        if entry is None:
            entry = self._build(ca, cert, key)
            with self._lock:
                self._cache[cache_key] = entry
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
        moment = now or datetime.now(UTC)
        if entry.client_not_after is not None and entry.client_not_after <= moment:
            raise TlsSettingsError(
                f"the webhook's client_cert expired on {entry.client_not_after:%Y-%m-%d %H:%M} "
                "UTC; upload a renewed certificate and key"
            )
        return entry.context

    def _build(self, ca: str | None, cert: str | None, key: str | None) -> _Entry:
        context = self._base()
        if ca is not None:
            try:
                context.load_verify_locations(cadata=ca)
            except (ssl.SSLError, ValueError) as exc:
                raise TlsSettingsError(
                    f"the webhook's ca_bundle cannot be loaded: {exc}; upload PEM CA certificates"
                ) from None
        not_after = None
        if cert is not None:
            if key is None:
                raise TlsSettingsError("the webhook has a client_cert but no client_key")
            not_after = load_certificates(cert, "client_cert")[0].not_valid_after_utc
            private = load_private_key(key, "client_key")
            unencrypted = private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            chain = cert.encode("ascii").rstrip(b"\n") + b"\n" + unencrypted
            try:
                with _memory_file(chain) as path:
                    context.load_cert_chain(path)
            except (ssl.SSLError, OSError) as exc:
                raise TlsSettingsError(
                    f"the webhook's client_cert and client_key cannot be used: {exc}"
                ) from None
        return _Entry(context, not_after)


@lru_cache(maxsize=4)
def shared_contexts(ca_bundle: Path | None) -> TlsContexts:
    """The process's SSL contexts for one extra-CA setting (the sender and the admin's ping
    share them, so a webhook's context is built once)."""
    return TlsContexts(ca_bundle)
