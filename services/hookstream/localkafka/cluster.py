"""A local Kafka cluster of several KRaft nodes on 127.0.0.1, for trying and testing fail-over.

Every node is a combined broker and controller; the controllers form a static quorum
(``controller.quorum.voters``), so a majority of nodes must run for the cluster to work, as in a
production cluster of three. The nodes share the broker jars of the single local broker and each
has its own ports, storage and log under ``<home>/cluster/node-<id>``.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from hookstream.core.errors import BrokerAlreadyRunningError, ConfigurationError, LocalBrokerError
from hookstream.localkafka.broker import (
    HOST,
    BrokerInfo,
    LocalBroker,
    _free_port,
    _port_is_free,
    new_cluster_id,
)
from hookstream.settings import LocalKafkaSettings

log = logging.getLogger(__name__)

_STATE_FILE = "cluster.json"

#: A small footprint for several JVMs on a small machine: the serial collector (no concurrent GC
#: threads competing for two cores), a small code cache and bounded direct buffers.
NODE_JVM_OPTIONS = (
    "-XX:+UseSerialGC",
    "-XX:ReservedCodeCacheSize=64m",
    "-XX:MaxDirectMemorySize=128m",
    "-Xss512k",
)


def cluster_properties(node_id: int, voters: str, brokers: int) -> dict[str, str | None]:
    """What a node of a ``brokers``-node cluster adds to the single broker's defaults: its id,
    the static quorum, and internal topics replicated like hookstream's own (RF 3, min ISR 2)."""
    replicas = str(min(brokers, 3))
    min_isr = "2" if brokers >= 3 else "1"
    return {
        "node.id": str(node_id),
        "controller.quorum.bootstrap.servers": None,
        "controller.quorum.voters": voters,
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
        "default.replication.factor": replicas,
        "min.insync.replicas": min_isr,
        # A replica that fell out of sync never becomes leader: that would drop acknowledged writes.
        "unclean.leader.election.enable": "false",
    }


@dataclass(frozen=True)
class NodeInfo:
    """One node of the cluster: its id, ports and, when it runs, its process."""

    node_id: int
    port: int
    controller_port: int
    pid: int | None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


class LocalCluster:
    """``brokers`` KRaft nodes whose ports, cluster id and storage persist under ``workdir``, so a
    stopped or killed node comes back as the same node."""

    def __init__(
        self, settings: LocalKafkaSettings, brokers: int = 3, workdir: Path | None = None
    ) -> None:
        if brokers < 2:
            raise ConfigurationError(
                f"a local cluster needs at least 2 brokers, not {brokers}; one broker is "
                f"`hookstream kafka start` without --brokers"
            )
        self.settings = settings
        self.brokers = brokers
        self.workdir = workdir or settings.home / "cluster"
        self.state_file = self.workdir / _STATE_FILE
        self._nodes: dict[int, LocalBroker] = {}
        self._cached_state: dict[str, object] | None = None

    @classmethod
    def existing(
        cls, settings: LocalKafkaSettings, workdir: Path | None = None
    ) -> LocalCluster | None:
        """The cluster last started under ``workdir`` (running or not), or None."""
        state_file = (workdir or settings.home / "cluster") / _STATE_FILE
        try:
            state = json.loads(state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return cls(settings, int(state["brokers"]), workdir)

    def _state(self) -> dict[str, object]:
        if self._cached_state is not None:
            return self._cached_state
        try:
            state: dict[str, object] = json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            state = {}
        if state.get("brokers") != self.brokers:
            state = self._new_state()
        self._cached_state = state
        return state

    def _new_state(self) -> dict[str, object]:
        """Ports for every node (from the configured ports upwards, or free ones) and a cluster
        id, chosen once and kept, since every node and client knows them."""
        taken: set[int] = set()

        def pick(base: int, offset: int, what: str, variable: str) -> int:
            port = base + offset if base else _free_port()
            while not base and port in taken:
                port = _free_port()
            if port in taken or not _port_is_free(port):
                raise ConfigurationError(
                    f"{what} {port} on {HOST} is taken; stop what uses it, or set {variable} "
                    f"to another first port (0 picks free ones)"
                )
            taken.add(port)
            return port

        nodes = [
            {
                "node_id": n + 1,
                "port": pick(self.settings.port, n, "port", "HOOKSTREAM_LOCAL_KAFKA__PORT"),
                "controller_port": pick(
                    self.settings.controller_port,
                    n,
                    "controller port",
                    "HOOKSTREAM_LOCAL_KAFKA__CONTROLLER_PORT",
                ),
            }
            for n in range(self.brokers)
        ]
        return {"brokers": self.brokers, "cluster_id": new_cluster_id(), "nodes": nodes}

    def _node_specs(self) -> list[dict[str, int]]:
        return cast(list[dict[str, int]], self._state()["nodes"])

    def node(self, node_id: int) -> LocalBroker:
        """The node ``node_id`` (1-based), to start, stop or kill it on its own."""
        if node_id in self._nodes:
            return self._nodes[node_id]
        state = self._state()
        specs = {spec["node_id"]: spec for spec in self._node_specs()}
        if node_id not in specs:
            raise ConfigurationError(f"the cluster has nodes 1 to {self.brokers}, not {node_id}")
        voters = ",".join(
            f"{spec['node_id']}@{HOST}:{spec['controller_port']}" for spec in specs.values()
        )
        spec = specs[node_id]
        node_settings = self.settings.model_copy(
            update={
                "port": spec["port"],
                "controller_port": spec["controller_port"],
                "heap": self.settings.cluster_heap,
            }
        )
        broker = LocalBroker(
            node_settings,
            workdir=self.workdir / f"node-{node_id}",
            extra_properties=cluster_properties(node_id, voters, self.brokers),
            cluster_id=str(state["cluster_id"]),
            jvm_options=NODE_JVM_OPTIONS,
        )
        self._nodes[node_id] = broker
        return broker

    @property
    def node_ids(self) -> list[int]:
        return list(range(1, self.brokers + 1))

    @property
    def bootstrap(self) -> str:
        """Every node's address: a client reaches the cluster while any one of them runs."""
        return ",".join(f"{HOST}:{spec['port']}" for spec in self._node_specs())

    def nodes(self) -> list[NodeInfo]:
        """Every node with its ports and, when it runs, its pid."""
        found = []
        for spec in self._node_specs():
            running = self.node(spec["node_id"]).info()
            found.append(
                NodeInfo(
                    spec["node_id"],
                    spec["port"],
                    spec["controller_port"],
                    running.pid if running else None,
                )
            )
        return found

    def running(self) -> bool:
        """True while any node's process runs."""
        return any(node.pid is not None for node in self.nodes())

    def start(self) -> list[BrokerInfo]:
        """Launch every node together, then return once a metadata request sees them all."""
        if self.state_file.exists() and self.running():
            raise BrokerAlreadyRunningError(
                f"a local Kafka cluster already runs at {self.bootstrap}; "
                f"`hookstream kafka stop` stops it"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(self._state()))
        infos = [self.node(node_id).launch() for node_id in self.node_ids]
        try:
            self.wait_ready(self.node_ids)
        except LocalBrokerError:
            self.stop()
            raise
        return infos

    def start_node(self, node_id: int) -> BrokerInfo:
        """Bring one stopped or killed node back and wait until the cluster sees it again."""
        info = self.node(node_id).launch()
        self.wait_ready([node_id])
        return info

    def wait_ready(self, node_ids: list[int]) -> None:
        """Wait until every node in ``node_ids`` runs and a metadata request lists it."""
        deadline = time.monotonic() + self.settings.start_timeout_s
        wanted = set(node_ids)
        seen: set[int] = set()
        while time.monotonic() < deadline:
            for node_id in node_ids:
                self.node(node_id).check_alive()
            seen = set(live_broker_ids(self.bootstrap))
            if wanted <= seen:
                return
            time.sleep(0.5)
        raise LocalBrokerError(
            f"the local cluster did not list brokers {sorted(wanted - seen)} within "
            f"{self.settings.start_timeout_s:.0f} s; see the logs under {self.workdir}"
        )

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop every node: SIGTERM to all at once (a node alone would wait for a quorum that is
        going away), SIGKILL after ``timeout_s``; False if none ran."""
        signalled = [node_id for node_id in self.node_ids if self.node(node_id).signal_stop()]
        for node_id in signalled:
            self.node(node_id).wait_stopped(timeout_s)
        return bool(signalled)


def live_broker_ids(bootstrap: str, timeout_s: float = 3.0) -> list[int]:
    """The ids of the brokers a metadata request lists as alive (empty if none answers)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    answering = [address for address in bootstrap.split(",") if _accepts(address, timeout_s)]
    if not answering:
        return []
    kafka_log = logging.getLogger("kafka")
    previous = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=",".join(answering),
            request_timeout_ms=int(timeout_s * 1000),
            client_id="hookstream-probe",
        )
        try:
            described = admin.describe_cluster()
        finally:
            admin.close()
    except (KafkaError, OSError, ValueError):
        return []
    finally:
        kafka_log.setLevel(previous)
    return sorted(
        int(broker["broker_id"])
        for broker in described.get("brokers", [])
        if not broker.get("is_fenced", False)
    )


def _accepts(address: str, timeout_s: float) -> bool:
    """A plain connect first: kafka-python leaks a socket per refused connection."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class PartitionState:
    """Who leads one partition and which replicas are in sync (-1: no leader)."""

    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


def partition_states(bootstrap: str, topics: list[str]) -> list[PartitionState]:
    """Leaders and in-sync replicas of the existing topics among ``topics`` (metadata only)."""
    from kafka import KafkaAdminClient

    answering = [address for address in bootstrap.split(",") if _accepts(address, 3.0)]
    if not answering:
        return []
    admin = KafkaAdminClient(bootstrap_servers=",".join(answering), client_id="hookstream-status")
    try:
        existing = sorted(set(admin.list_topics()) & set(topics))
        described = admin.describe_topics(existing) if existing else []
    finally:
        admin.close()
    return sorted(
        (
            PartitionState(
                topic["name"],
                int(partition["partition_index"]),
                int(partition["leader_id"]),
                tuple(int(r) for r in partition["replica_nodes"]),
                tuple(int(r) for r in partition["isr_nodes"]),
            )
            for topic in described
            for partition in topic["partitions"]
        ),
        key=lambda state: (state.topic, state.partition),
    )
