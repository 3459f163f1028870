"""Fetch, format, start and stop a local Apache Kafka broker (KRaft) for dev and tests; one node
of a local cluster too (see ``localkafka.cluster``)."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hookstream.core.errors import BrokerAlreadyRunningError, ConfigurationError, LocalBrokerError
from hookstream.localkafka.jars import _package_file, _require_tool, fetch_jars
from hookstream.settings import LocalKafkaSettings

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
_STATE_FILE = "broker.json"


@dataclass(frozen=True)
class BrokerInfo:
    """What a running local broker is: its process and where clients reach it."""

    pid: int
    port: int
    controller_port: int
    log_file: Path

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _server_properties(
    data_dir: Path, port: int, controller_port: int, extra: Mapping[str, str | None]
) -> str:
    """The broker's configuration; ``extra`` adds properties or replaces defaults by name (None
    removes one, as a cluster node removes the single node's quorum bootstrap)."""
    defaults = [
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers={HOST}:{controller_port}",
        f"listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        f"advertised.listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "inter.broker.listener.name=PLAINTEXT",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={data_dir}",
        "num.partitions=1",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=4",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=false",
        "log.cleaner.backoff.ms=1000",
    ]
    properties: dict[str, str | None] = {}
    for line in defaults:
        name, value = line.split("=", 1)
        properties[name] = value
    properties.update(extra)
    return "".join(f"{name}={value}\n" for name, value in properties.items() if value is not None)


def new_cluster_id() -> str:
    """A KRaft cluster id as Kafka's ``Uuid.randomUuid`` makes it (base64url of 16 random bytes,
    never starting with '-'), without starting a JVM for it."""
    while True:
        text = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def broker_ready(bootstrap: str, timeout_s: float = 3.0) -> bool:
    """True when the broker answers a real metadata request, not merely an open port."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:  # a plain connect first: kafka-python leaks a socket per refused connection
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError:
        return False
    timeout_ms = int(timeout_s * 1000)
    kafka_log = logging.getLogger("kafka")
    previous = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=timeout_ms,
            client_id="hookstream-probe",
        )
        try:
            admin.describe_cluster()
        finally:
            admin.close()
    except (KafkaError, OSError, ValueError):
        return False
    finally:
        kafka_log.setLevel(previous)
    return True


class LocalBroker:
    """One local broker whose jars, storage, logs and pid file live under ``workdir``."""

    def __init__(
        self,
        settings: LocalKafkaSettings,
        workdir: Path | None = None,
        extra_properties: Mapping[str, str | None] | None = None,
        format_args: Sequence[str] = (),
        cluster_id: str | None = None,
        jvm_options: Sequence[str] = (),
    ) -> None:
        """``extra_properties`` and ``format_args`` (e.g. ``--add-scram ...``) are for brokers
        that need more than the development defaults, such as one with TLS and SASL; the nodes of
        one cluster share a ``cluster_id`` and a static ``controller.quorum.voters`` in
        ``extra_properties`` (then storage is formatted without ``--standalone``)."""
        self.settings = settings
        self.extra_properties = dict(extra_properties or {})
        self.format_args = list(format_args)
        self.cluster_id = cluster_id
        self.jvm_options = list(jvm_options)
        self.workdir = workdir or settings.home / "broker"
        self.state_file = self.workdir / _STATE_FILE
        self.log_file = self.workdir / "broker.log"
        self.data_dir = self.workdir / "data"
        self._process: subprocess.Popen[bytes] | None = None

    def info(self) -> BrokerInfo | None:
        """The running broker, or None (a stale pid file is removed)."""
        try:
            state = json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        info = BrokerInfo(
            pid=int(state["pid"]),
            port=int(state["port"]),
            controller_port=int(state["controller_port"]),
            log_file=Path(state["log_file"]),
        )
        if not _pid_alive(info.pid):
            self.state_file.unlink(missing_ok=True)
            return None
        return info

    def start(self) -> BrokerInfo:
        """Start the broker in the background and return once it answers metadata requests."""
        info = self.launch()
        self.wait_ready(info)
        return info

    def launch(self) -> BrokerInfo:
        """Start the broker in the background without waiting: the nodes of a cluster are
        launched together, since none answers before a majority of controllers runs."""
        running = self.info()
        if running is not None:
            raise BrokerAlreadyRunningError(
                f"a local Kafka broker already runs (pid {running.pid}) at {running.bootstrap}; "
                f"`hookstream kafka stop` stops it"
            )
        java = _require_tool("java", "the Kafka broker needs Java 17 or newer")
        libs = fetch_jars(self.settings)
        port, controller_port = self._ports()
        self.workdir.mkdir(parents=True, exist_ok=True)
        properties = self.workdir / "server.properties"
        properties.write_text(
            _server_properties(self.data_dir, port, controller_port, self.extra_properties)
        )
        classpath = f"{libs}/*"
        if not (self.data_dir / "meta.properties").exists():
            self._format(java, classpath, properties)
        command = self._command(java, classpath, properties)
        with self.log_file.open("ab") as log_out:
            process = subprocess.Popen(  # noqa: S603
                command,
                stdout=log_out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._process = process
        info = BrokerInfo(process.pid, port, controller_port, self.log_file)
        self.state_file.write_text(
            json.dumps(
                {
                    "pid": info.pid,
                    "port": port,
                    "controller_port": controller_port,
                    "log_file": str(self.log_file),
                }
            )
        )
        return info

    def _ports(self) -> tuple[int, int]:
        """The client and controller ports: as configured (if free), else free ones."""
        port = self.settings.port or _free_port()
        if not _port_is_free(port):
            raise ConfigurationError(
                f"port {port} on {HOST} is taken by another process; stop it, or choose another "
                f"port with HOOKSTREAM_LOCAL_KAFKA__PORT (0 picks a free one)"
            )
        controller_port = self.settings.controller_port or _free_port()
        if controller_port == port or not _port_is_free(controller_port):
            raise ConfigurationError(
                f"controller port {controller_port} on {HOST} is taken; set "
                f"HOOKSTREAM_LOCAL_KAFKA__CONTROLLER_PORT to a free port (0 picks one)"
            )
        return port, controller_port

    def _command(self, java: str, classpath: str, properties: Path) -> list[str]:
        """The JVM command line of the broker: a fixed heap, G1 unless a collector is chosen,
        the fast-starting C1 compiler only, its logs beside its state."""
        return [
            java,
            f"-Xmx{self.settings.heap}",
            f"-Xms{self.settings.heap}",
            *self.jvm_options,
            *([] if any(o.endswith("GC") for o in self.jvm_options) else ["-XX:+UseG1GC"]),
            "-XX:TieredStopAtLevel=1",
            f"-Dlog4j2.configurationFile={_package_file('log4j2.properties')}",
            f"-Dkafka.logs.dir={self.workdir}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(properties),
        ]

    def _format(self, java: str, classpath: str, properties: Path) -> None:
        formatted = subprocess.run(  # noqa: S603
            [
                java,
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                self.cluster_id or new_cluster_id(),
                "-c",
                str(properties),
                *([] if "controller.quorum.voters" in self.extra_properties else ["--standalone"]),
                *self.format_args,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if formatted.returncode != 0:
            raise LocalBrokerError(
                f"could not format the broker storage in {self.data_dir}:\n"
                f"{(formatted.stdout + formatted.stderr)[-2000:]}"
            )

    def wait_ready(self, info: BrokerInfo) -> None:
        """Return once the launched broker answers a metadata request; stop it and raise with
        the log's tail if it exits or the start timeout passes."""
        deadline = time.monotonic() + self.settings.start_timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            if broker_ready(info.bootstrap):
                return
            time.sleep(0.5)
        self.stop()
        raise LocalBrokerError(
            f"the Kafka broker did not answer within {self.settings.start_timeout_s:.0f} s; "
            f"see {self.log_file}:\n{self._log_tail()}"
        )

    def check_alive(self) -> None:
        """Raise with the log's tail if the process this object launched has exited."""
        process = self._process
        if process is not None and process.poll() is not None:
            self.state_file.unlink(missing_ok=True)
            self._process = None
            raise LocalBrokerError(
                f"the Kafka broker exited with code {process.returncode} while starting; "
                f"see {self.log_file}:\n{self._log_tail()}"
            )

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log written)"

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout_s``); False if none ran."""
        if not self.signal_stop():
            return False
        self.wait_stopped(timeout_s)
        return True

    def signal_stop(self, sig: int = signal.SIGTERM) -> bool:
        """Send ``sig`` (SIGTERM: a controlled shutdown) without waiting; False if none ran."""
        info = self.info()
        if info is None:
            return False
        os.kill(info.pid, sig)
        return True

    def kill(self) -> bool:
        """kill -9: the broker dies at once, as on a power cut; False if none ran."""
        if not self.signal_stop(signal.SIGKILL):
            return False
        self.wait_stopped(30.0)
        return True

    def wait_stopped(self, timeout_s: float = 30.0) -> None:
        """Wait for a signalled broker to exit, SIGKILL it after ``timeout_s``, forget its pid."""
        info = self.info()
        if info is None:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _pid_alive(info.pid):
            _reap(info.pid)
            time.sleep(0.2)
        if _pid_alive(info.pid):
            log.warning("broker pid %s ignored SIGTERM for %.0f s; killing it", info.pid, timeout_s)
            os.kill(info.pid, signal.SIGKILL)
            _reap(info.pid)
        self.state_file.unlink(missing_ok=True)
        if self._process is not None:
            self._process.wait(timeout=10)
            self._process = None


def _reap(pid: int) -> None:
    """Collect the exit status when the broker is our own child, so it is not left a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
