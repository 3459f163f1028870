"""A wrong secrets key stops the process; one damaged secret among good ones is only skipped."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from hookstream.records.secretbox import SecretBox, SecretDecryptError, SecretsKeyError


def test_a_wrong_key_is_told_apart_from_a_damaged_record() -> None:
    key = Fernet.generate_key()
    sealed = [SecretBox([key]).encrypt(f"secret-{n}") for n in range(3)]

    wrong = SecretBox([Fernet.generate_key()])
    for value in sealed:
        with pytest.raises(SecretDecryptError):
            wrong.decrypt(value)
    with pytest.raises(SecretsKeyError, match="HOOKSTREAM_SECURITY__SECRETS_KEYS"):
        wrong.check_keys()

    # The right key (second, as after a rotation) and one damaged value among good ones.
    right = SecretBox([Fernet.generate_key(), key])
    damaged = sealed[1][:-8] + ("A" * 8 if not sealed[1].endswith("A" * 8) else "B" * 8)
    assert right.decrypt(sealed[0]) == "secret-0"
    with pytest.raises(SecretDecryptError):
        right.decrypt(damaged)
    assert right.decrypt(sealed[2]) == "secret-2"
    right.check_keys()  # skipped as damaged, not a reason to stop


def test_nothing_stored_is_no_reason_to_stop() -> None:
    SecretBox([Fernet.generate_key()]).check_keys()
