"""How the sender writes the records a job caused: a few tries, then a loud stop.

An offset is done only once every record its job caused is acked, so a write that keeps failing
cannot be skipped: after the last try the sender stops and a restart redoes the job from the last
committed offset. Repeated failures are logged at most once per kind every few seconds.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import murmur2

from hookstream.core.errors import MustStopError
from hookstream.logs import Throttle
from hookstream.sender.attempts import Output

log = logging.getLogger(__name__)

#: Tries to write the outputs of one job before the sender stops; waits between them (seconds).
WRITE_BACKOFF_S = (0.5, 2.0, 8.0)


@functools.lru_cache(maxsize=16384)
def _key_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


def partition_for(key: bytes, partitions: list[int]) -> int:
    """The partition of ``key`` as aiokafka's (and Java's) default partitioner picks it, its
    murmur2 hash kept per key: in pure Python it cost more than the rest of a record's send,
    and the sender writes under the same few keys (webhook and delivery ids) over and over."""
    return partitions[_key_hash(key) % len(partitions)]


class SenderStoppedError(MustStopError):
    """The sender lost work it cannot redo itself; a restart reads it again from Kafka."""


class OutputWriter:
    """Writes a job's outputs; ``headers`` ride only on records of the retry topic."""

    def __init__(self, producer: AIOKafkaProducer, retries_topic: str) -> None:
        self.producer = producer
        self.retries_topic = retries_topic
        self._throttle = Throttle()

    def _partition_of(self, topic: str, key: bytes | None) -> int | None:
        """The partition the producer's default partitioner picks for ``key`` (None: let the
        producer pick, for a record without a key or a topic it has no metadata of yet)."""
        if key is None:
            return None
        partitions = self.producer.client.cluster.partitions_for_topic(topic)
        if not partitions:
            return None
        return partition_for(key, list(partitions))

    async def write(
        self,
        tp: TopicPartition,
        offset: int,
        outputs: list[Output],
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Write and wait for every ack; raise ``SenderStoppedError`` after the last try."""
        for wait_s in (*WRITE_BACKOFF_S, None):
            try:
                pending = [
                    await self.producer.send(
                        topic,
                        value=value,
                        key=key,
                        partition=self._partition_of(topic, key),
                        headers=headers if topic == self.retries_topic else None,
                    )
                    for topic, key, value in outputs
                ]
                if len(pending) == 1:
                    # A delivered attempt's one status record: no gathering future for it.
                    await pending[0]
                else:
                    await asyncio.gather(*pending)
                return
            except Exception as exc:
                if wait_s is None:
                    raise SenderStoppedError(
                        f"could not write the outputs of {tp.topic}[{tp.partition}]@{offset} "
                        f"after {len(WRITE_BACKOFF_S) + 1} tries ({exc!r}); check that Kafka "
                        "is reachable; a restart redoes the job"
                    ) from exc
                skipped = self._throttle.allow("write")
                if skipped is not None:
                    log.warning(
                        "could not write the outputs of %s[%d]@%d, trying again in %g s "
                        "(%d similar lines left out): %r",
                        tp.topic,
                        tp.partition,
                        offset,
                        wait_s,
                        skipped,
                        exc,
                    )
                await asyncio.sleep(wait_s)
