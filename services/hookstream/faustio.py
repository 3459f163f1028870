"""Faust's aiokafka consumer, reading on past a record batch it cannot unpack.

Faust fetches in a consumer thread of its own; an error there (a batch in a codec the process
lacks, a corrupt batch) would crash the worker, and the restarted worker would fetch the same
batch again, forever. This consumer reports and skips such a batch as the sender and the views do
(``hookstream.kafkaio.fetch_past_unreadable``); every other error still stops the worker.
"""

from __future__ import annotations

from typing import Any, cast

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaFaustConsumer

from hookstream.kafkaio import fetch_past_unreadable


class _SkippingConsumerThread(AIOKafkaConsumerThread):
    service = "matcher"

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        fetch = super()._fetch_records
        records, _ = await fetch_past_unreadable(
            lambda: fetch(consumer, active_partitions, timeout=timeout, max_records=max_records),
            consumer.seek,
            self.service,
        )
        return records


class SkippingConsumer(AIOKafkaFaustConsumer):
    """The aiokafka consumer of Faust with ``_SkippingConsumerThread`` as its fetcher."""

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _SkippingConsumerThread(self, loop=self.loop, beacon=self.beacon)


def skip_unreadable_batches(app: faust.App) -> None:
    """Make ``app`` consume with ``SkippingConsumer`` (set before the app starts)."""
    # A class attribute of the transport, set on this app's transport instance only.
    cast(Any, app.transport).Consumer = SkippingConsumer
