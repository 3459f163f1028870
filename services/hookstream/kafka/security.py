"""How each Kafka library is told to use TLS and SASL, from the one ``KafkaSecuritySettings``.

aiokafka (the sender, the admin service, the feeds), Faust (the matcher) and kafka-python (the
client, topic provisioning) each spell the same options differently; they are translated here
so that a cluster that needs SASL_SSL with SCRAM works for every process or for none.
"""

from __future__ import annotations

import ssl
from typing import Any

import faust

from hookstream.core.errors import ConfigurationError
from hookstream.settings import KafkaSecuritySettings

PLAINTEXT = KafkaSecuritySettings()


def ssl_context(security: KafkaSecuritySettings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL (certificates verified), else None."""
    if security.protocol not in ("SSL", "SASL_SSL"):
        return None
    try:
        context = ssl.create_default_context(
            cafile=str(security.ssl_cafile) if security.ssl_cafile else None
        )
        if security.ssl_certfile and security.ssl_keyfile:
            context.load_cert_chain(str(security.ssl_certfile), str(security.ssl_keyfile))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"cannot load the Kafka TLS files (HOOKSTREAM_KAFKA_SECURITY__SSL_*): {exc}"
        ) from exc
    context.check_hostname = security.ssl_check_hostname
    return context


def _sasl(security: KafkaSecuritySettings) -> dict[str, Any]:
    if not security.protocol.startswith("SASL_"):
        return {}
    password = security.sasl_password.get_secret_value() if security.sasl_password else None
    return {
        "sasl_mechanism": security.sasl_mechanism,
        "sasl_plain_username": security.sasl_username,
        "sasl_plain_password": password,
    }


def aiokafka_options(security: KafkaSecuritySettings | None) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaProducer`` and ``AIOKafkaConsumer``."""
    security = security or PLAINTEXT
    options: dict[str, Any] = {"security_protocol": security.protocol, **_sasl(security)}
    context = ssl_context(security)
    if context is not None:
        options["ssl_context"] = context
    return options


def kafka_python_options(security: KafkaSecuritySettings | None) -> dict[str, Any]:
    """Keyword arguments for kafka-python's producer, consumer and admin client."""
    security = security or PLAINTEXT
    options: dict[str, Any] = {"security_protocol": security.protocol, **_sasl(security)}
    context = ssl_context(security)
    if context is not None:
        options["ssl_context"] = context
        options["ssl_check_hostname"] = security.ssl_check_hostname
    return options


def faust_credentials(
    security: KafkaSecuritySettings | None,
) -> faust.types.auth.CredentialsT | None:
    """Faust's ``broker_credentials`` for these settings (None for PLAINTEXT)."""
    security = security or PLAINTEXT
    context = ssl_context(security)
    if security.protocol.startswith("SASL_"):
        password = security.sasl_password.get_secret_value() if security.sasl_password else None
        return faust.SASLCredentials(
            username=security.sasl_username,
            password=password,
            ssl_context=context,
            mechanism=security.sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
