"""How the sender writes the records a job caused: a few tries, then a loud stop.

An offset is done only once every record its job caused is acked, so a write that keeps failing
cannot be skipped: after the last try the sender stops and a restart redoes the job from the last
committed offset. Repeated failures are logged at most once per kind every few seconds.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer, TopicPartition

from hookstream.attempts import Output
from hookstream.errors import MustStopError
from hookstream.logs import Throttle

log = logging.getLogger(__name__)

#: Tries to write the outputs of one job before the sender stops; waits between them (seconds).
WRITE_BACKOFF_S = (0.5, 2.0, 8.0)


class SenderStoppedError(MustStopError):
    """The sender lost work it cannot redo itself; a restart reads it again from Kafka."""


class OutputWriter:
    """Writes a job's outputs; ``headers`` ride only on records of the retry topic."""

    def __init__(self, producer: AIOKafkaProducer, retries_topic: str) -> None:
        self.producer = producer
        self.retries_topic = retries_topic
        self._throttle = Throttle()

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
                        headers=headers if topic == self.retries_topic else None,
                    )
                    for topic, key, value in outputs
                ]
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
