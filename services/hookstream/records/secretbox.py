"""Secrets at rest: webhook credentials are Fernet-encrypted inside Kafka records.

The key comes from HOOKSTREAM_SECURITY__SECRETS_KEYS (newest first; older keys still decrypt, so
keys rotate without downtime). Without one, a development key is made once in the local home and
a warning says so: fine for a laptop, never for production.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from hookstream.core.errors import ConfigurationError, DecodeError
from hookstream.settings import Settings, get_settings

log = logging.getLogger(__name__)

#: Prefix of an encrypted value; a value without it is plain text from before encryption.
PREFIX = "enc:v1:"


class SecretsKeyError(ConfigurationError):
    """Stored secrets cannot be decrypted with the configured keys: the process must stop, not
    go on without every webhook that has a secret."""


class SecretDecryptError(DecodeError):
    """One stored secret no configured key decrypts: a damaged record, or the wrong keys (which
    ``SecretBox.check_keys`` tells apart once a whole topic has been read)."""


class SecretBox:
    """Encrypts with the newest key, decrypts with any configured key."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ConfigurationError("at least one secrets key is needed")
        #: Secrets decrypted and refused so far, for ``check_keys``.
        self.decrypted = 0
        self.refused = 0
        try:
            self._fernet = MultiFernet([Fernet(key) for key in keys])
        except ValueError as exc:
            raise ConfigurationError(
                "HOOKSTREAM_SECURITY__SECRETS_KEYS holds a key that is not a Fernet key "
                "(32 url-safe base64-encoded bytes; make one with `python -c 'from "
                "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)"
            ) from exc

    def encrypt(self, plain: str) -> str:
        return PREFIX + self._fernet.encrypt(plain.encode()).decode("ascii")

    def decrypt(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored
        try:
            plain = self._fernet.decrypt(stored[len(PREFIX) :].encode("ascii")).decode()
        except (InvalidToken, ValueError) as exc:
            self.refused += 1
            raise SecretDecryptError(
                "a webhook secret could not be decrypted with any configured key (a damaged "
                "record, or HOOKSTREAM_SECURITY__SECRETS_KEYS lacks the key that wrote it)"
            ) from exc
        self.decrypted += 1
        return plain

    def check_keys(self) -> None:
        """After a whole config topic was read: if secrets were stored and not one could be
        decrypted, the keys are wrong (a damaged record is one among many): stop."""
        if self.refused and not self.decrypted:
            raise SecretsKeyError(
                f"none of the {self.refused} stored webhook secrets could be decrypted: "
                "HOOKSTREAM_SECURITY__SECRETS_KEYS must hold the key that wrote them (newest "
                "first, older keys after it while secrets are rotated)"
            )


def _development_key(home: Path) -> bytes:
    path = home / "dev-secrets.key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
    log.warning(
        "no HOOKSTREAM_SECURITY__SECRETS_KEYS set: webhook secrets are encrypted with the "
        "development key %s; set a key of your own in production",
        path,
    )
    return path.read_bytes().strip()


def box_for(settings: Settings) -> SecretBox:
    """The secret box these settings describe."""
    keys = [key.get_secret_value().encode() for key in settings.security.secrets_keys]
    return SecretBox(keys or [_development_key(settings.local_kafka.home)])


@lru_cache(maxsize=1)
def secret_box() -> SecretBox:
    """The secret box of this process, from its settings."""
    return box_for(get_settings())
