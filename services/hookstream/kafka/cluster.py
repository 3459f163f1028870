"""Which Kafka cluster to talk to: the configured one, or the local broker (or local cluster)
started for us."""

from __future__ import annotations

from hookstream.core.errors import ConfigurationError
from hookstream.localkafka.broker import LocalBroker
from hookstream.localkafka.cluster import LocalCluster
from hookstream.settings import Settings


def resolve_bootstrap(settings: Settings) -> str:
    """The bootstrap servers: HOOKSTREAM_KAFKA_BOOTSTRAP if set, else the running local broker,
    else every node of the running local cluster."""
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    info = LocalBroker(settings.local_kafka).info()
    if info is None:
        cluster = LocalCluster.existing(settings.local_kafka)
        if cluster is not None and cluster.running():
            return cluster.bootstrap
        raise ConfigurationError(
            "no Kafka cluster: set HOOKSTREAM_KAFKA_BOOTSTRAP (or KAFKA_BOOTSTRAP_SERVERS) to an "
            "existing cluster, or start the local broker with `hookstream kafka start`"
            " (`--brokers 3` for a local cluster)"
        )
    return info.bootstrap
