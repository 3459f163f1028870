"""hookstream on a cluster that requires TLS and SCRAM: every client library, every process.

A second local broker gets a SASL_SSL listener (SCRAM-SHA-512, a certificate signed by a CA made
here); its plain listener serves only the broker's own readiness check. Topic provisioning
(kafka-python), the matcher (Faust), the sender and the admin service (aiokafka) and the client
(kafka-python) must all get through it, and a wrong password must be refused with a message.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr
from test_admin_support import AdminServer, with_admin

from hookstream.client import HookstreamClient
from hookstream.kafka.topics import topic_specs
from hookstream.localkafka.broker import HOST, LocalBroker
from hookstream.records.models import WebhookConfig
from hookstream.settings import KafkaSecuritySettings, LocalKafkaSettings, Settings
from support import Pipeline, Receiver, make_event, settings_env, unique_settings, wait_until

pytestmark = pytest.mark.integration

USER = "hookstream"
PASSWORD = "scram-password-for-tests"


@dataclass(frozen=True)
class SecuredCluster:
    bootstrap: str
    security: KafkaSecuritySettings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _write_certificates(folder: Path) -> tuple[Path, Path]:
    """A CA (ca.pem) and the broker's key and certificate for 127.0.0.1 (broker.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hookstream test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    broker_file = folder / "broker.pem"  # Kafka's PEM key store: PKCS#8 key, then the chain
    broker_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + certificate.public_bytes(serialization.Encoding.PEM)
        + ca.public_bytes(serialization.Encoding.PEM)
    )
    return ca_file, broker_file


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredCluster]:
    folder = tmp_path_factory.mktemp("secured-kafka")
    ca_file, broker_file = _write_certificates(folder)
    port, controller_port, secure_port = _free_port(), _free_port(), _free_port()
    listeners = (
        f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port},"
        f"SECURE://{HOST}:{secure_port}"
    )
    broker = LocalBroker(
        LocalKafkaSettings(port=port, controller_port=controller_port),
        workdir=folder / "broker",
        extra_properties={
            "listeners": listeners,
            "advertised.listeners": listeners,
            "listener.security.protocol.map": (
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SECURE:SASL_SSL"
            ),
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.secure.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "listener.name.secure.ssl.keystore.type": "PEM",
            "listener.name.secure.ssl.keystore.location": str(broker_file),
        },
        format_args=["--add-scram", f"SCRAM-SHA-512=[name={USER},password={PASSWORD}]"],
    )
    broker.start()
    try:
        yield SecuredCluster(
            bootstrap=f"{HOST}:{secure_port}",
            security=KafkaSecuritySettings(
                protocol="SASL_SSL",
                sasl_mechanism="SCRAM-SHA-512",
                sasl_username=USER,
                sasl_password=SecretStr(PASSWORD),
                ssl_cafile=ca_file,
            ),
        )
    finally:
        broker.stop()


def _settings(cluster: SecuredCluster, **security: object) -> Settings:
    settings = unique_settings(cluster.bootstrap, retry_interval_s=1.0)
    kafka_security = cluster.security.model_copy(update=security)
    return settings.model_copy(update={"kafka_security": kafka_security})


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookstream.cli", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_every_service_and_client_gets_through_sasl_ssl(
    secured: SecuredCluster, receiver: Receiver, tmp_path: Path
) -> None:
    settings = _settings(secured)
    created = _cli(settings, "topics", "create")
    assert created.returncode == 0, created.stderr[-3000:]
    assert created.stdout.count("created") == len(topic_specs(settings.topics))

    pipeline = Pipeline(settings, tmp_path)
    client = HookstreamClient(secured.bootstrap, settings.topics, settings.kafka_security)
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        webhook = WebhookConfig(
            webhook_id=f"tls-{uuid.uuid4().hex[:6]}",
            name="Over TLS",
            payload_url=receiver.url("/tls"),
            triggers=["/items"],
        )
        client.register_webhook(webhook)
        client.wait_for_webhooks({webhook.webhook_id}, timeout_s=60)
        client.publish_event(make_event("items", "add", "i-tls"))
        wait_until(lambda: receiver.on("/tls"), 60, "the delivery through the secured cluster")
        statuses = [s for s in client.statuses(timeout_s=5) if s.webhook_id == webhook.webhook_id]
        assert [s.outcome.value for s in statuses] == ["delivered"]

        # The admin service's views and producer connect the same way.
        with AdminServer(with_admin(settings)) as admin, admin.client() as http:
            wait_until(lambda: http.get("/readyz").status_code == 200, 60, "admin ready")
            listed = http.get("/api/v1/webhooks").json()
            assert [w["id"] for w in listed["webhooks"]] == [webhook.webhook_id]
    finally:
        client.close()
        pipeline.stop()
    for service in (pipeline.matcher, pipeline.sender):
        assert service is not None and PASSWORD not in service.log_text()


def test_a_wrong_password_is_refused_with_a_message(secured: SecuredCluster) -> None:
    settings = _settings(secured, sasl_password=SecretStr("not-the-password"))
    refused = _cli(settings, "topics", "create")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    last_line = refused.stderr.strip().splitlines()[-1]
    assert last_line.startswith("hookstream: Kafka refused or did not answer"), last_line
    assert "HOOKSTREAM_KAFKA_SECURITY__" in last_line
    # (The client also logs "Authentication failed" once the SASL exchange ran; on a loaded
    # machine the bootstrap can time out before it does, so that line is not asserted.)
    assert "not-the-password" not in refused.stdout + refused.stderr


def test_the_settings_say_what_is_missing() -> None:
    with pytest.raises(ValueError, match="SASL_USERNAME and HOOKSTREAM_KAFKA_SECURITY__SASL_"):
        KafkaSecuritySettings(protocol="SASL_SSL")
    with pytest.raises(ValueError, match="does not use TLS"):
        KafkaSecuritySettings(protocol="PLAINTEXT", ssl_cafile=Path("ca.pem"))
    with pytest.raises(ValueError, match="SSL_CERTFILE and HOOKSTREAM_KAFKA_SECURITY__SSL_KEYFILE"):
        KafkaSecuritySettings(protocol="SSL", ssl_certfile=Path("client.pem"))
    masked = json.dumps(
        Settings(
            kafka_security=KafkaSecuritySettings(
                protocol="SASL_SSL", sasl_username=USER, sasl_password=SecretStr(PASSWORD)
            )
        ).masked()
    )
    assert PASSWORD not in masked
