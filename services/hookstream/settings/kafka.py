"""How hookstream reaches Kafka: the security of every client, and the local broker of
development."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, Field, SecretStr, model_validator


class LocalKafkaSettings(BaseModel):
    """The broker that ``hookstream kafka start`` runs when no cluster is configured."""

    version: str = Field(default="4.0.2", description="Apache Kafka version fetched from Maven.")
    port: int = Field(default=9092, ge=0, le=65535, description="Client port; 0 picks a free one.")
    controller_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free one.")
    home: Path = Field(
        default=Path.home() / ".cache" / "hookstream",
        description="The broker's storage, logs and pid file live here.",
    )
    jars_dir: Path = Field(
        default=Path.home() / ".cache" / "hookstream",
        description="Where the Kafka jars are cached (kafka-<version>/), shared by every home.",
    )
    heap: str = Field(default="512m", pattern=r"^\d+[mMgG]$", description="Java heap.")
    start_timeout_s: float = Field(
        default=90.0, gt=0, le=600, description="How long `kafka start` waits for readiness."
    )
    brokers: int = Field(
        default=1,
        ge=1,
        le=5,
        description="Nodes `kafka start` runs (broker and controller each); --brokers overrides.",
    )
    cluster_heap: str = Field(
        default="320m",
        pattern=r"^\d+[mMgG]$",
        description="Java heap of each node when brokers > 1.",
    )


class KafkaSecuritySettings(BaseModel):
    """How every hookstream client authenticates to Kafka and protects the connection."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="Kafka security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="SCRAM-SHA-512", description="SASL mechanism (with a SASL_* protocol)."
    )
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password (secret).")
    ssl_cafile: Path | None = Field(
        default=None,
        description="PEM file of the CAs that sign the brokers' certificates; unset: the system's.",
    )
    ssl_certfile: Path | None = Field(
        default=None, description="PEM client certificate, for clusters that require mutual TLS."
    )
    ssl_keyfile: Path | None = Field(
        default=None, description="PEM private key of the client certificate."
    )
    ssl_check_hostname: bool = Field(
        default=True, description="Check that broker certificates name the broker's host."
    )

    @model_validator(mode="after")
    def _complete(self) -> Self:
        prefix = "HOOKSTREAM_KAFKA_SECURITY__"
        if self.protocol.startswith("SASL_") and not (self.sasl_username and self.sasl_password):
            raise ValueError(
                f"protocol {self.protocol} needs {prefix}SASL_USERNAME and {prefix}SASL_PASSWORD"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError(f"set both {prefix}SSL_CERTFILE and {prefix}SSL_KEYFILE, or neither")
        uses_tls = self.protocol in ("SSL", "SASL_SSL")
        if not uses_tls and (self.ssl_cafile or self.ssl_certfile):
            raise ValueError(
                f"TLS files are set but protocol {self.protocol} does not use TLS; "
                f"set {prefix}PROTOCOL to SSL or SASL_SSL"
            )
        return self
