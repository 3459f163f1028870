"""One real three-broker Kafka cluster per test session (the code of `kafka start --brokers 3`).

The fault tests stop and kill its brokers, so it is always a cluster of their own, never the
shared broker of HOOKSTREAM_TEST_KAFKA_BOOTSTRAP. ``kafka_bootstrap`` is overridden here, so the
shared fixtures (``receiver``, ``pipeline_factory``, ``status_reader_factory``) use the cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from cluster.cluster_support import replicated_settings
from hookstream.localkafka.cluster import LocalCluster
from hookstream.settings import LocalKafkaSettings, Settings


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(
        LocalKafkaSettings(port=0, controller_port=0, start_timeout_s=180),
        brokers=3,
        workdir=tmp_path_factory.mktemp("cluster"),
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(local_cluster: LocalCluster) -> str:
    return local_cluster.bootstrap


@pytest.fixture
def cluster(local_cluster: LocalCluster) -> LocalCluster:
    """The cluster with every broker up, whatever an earlier test left down."""
    down = [node.node_id for node in local_cluster.nodes() if node.pid is None]
    for node_id in down:
        local_cluster.node(node_id).launch()
    local_cluster.wait_ready(local_cluster.node_ids)
    return local_cluster


@pytest.fixture
def cluster_settings(cluster: LocalCluster) -> Callable[..., Settings]:
    """Settings with unique test topics of three replicas on the cluster."""

    def make(**delivery: object) -> Settings:
        return replicated_settings(cluster.bootstrap, **delivery)

    return make
