"""How the matcher runs Faust: views ready before the group is joined, and a consumer that reads
on past a record batch it cannot unpack.

Faust fetches in a consumer thread of its own; an error there (a batch in a codec the process
lacks, a corrupt batch) would crash the worker, and the restarted worker would fetch the same
batch again, forever. This consumer reports and skips such a batch as the sender and the views do
(``hookstream.kafka.clients.fetch_past_unreadable``); every other error still stops the worker.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaFaustConsumer
from faust.types.tuples import ConsumerMessage

from hookstream.kafka.clients import fetch_past_unreadable

#: The longest the broker may hold a fetch of the matcher's consumer (ms). Faust asks for 1,500,
#: and aiokafka fetches a partition again only once its buffered records are consumed: a fetch
#: sent for the quiet state partitions alone then held new events back that long, beside every
#: busy webhook (docs/benchmarks.md, "Noisy neighbours").
FETCH_MAX_WAIT_MS = 100


class _SkippingConsumerThread(AIOKafkaConsumerThread):
    service = "matcher"

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust passes no setting for it; aiokafka reads the attribute when the consumer starts.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

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
    """The aiokafka consumer of Faust with ``_SkippingConsumerThread`` as its fetcher.

    Each message it hands on carries ``fetched_at`` (see ``fetched_at``)."""

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _SkippingConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def _to_message(self, tp: Any, record: Any) -> ConsumerMessage:
        message = super()._to_message(tp, record)
        message.fetched_at = time.monotonic()  # type: ignore[attr-defined]
        return message


def member_id(app: faust.App) -> str:
    """The coordinator's current name of this app's consumer in its group ("" before a join)."""
    consumer = getattr(cast(Any, app.consumer)._thread, "_consumer", None)
    return "" if consumer is None else str(consumer._coordinator.member_id)


def fetched_at(message: Any) -> float:
    """A monotonic time at or after the one the broker handed ``message`` to this process.

    A config written before the event was produced is in its topic by then, so a view that has
    reached the topic's end as of this moment routes the event with it."""
    stamp: float | None = getattr(message, "fetched_at", None)
    return time.monotonic() if stamp is None else stamp


def skip_unreadable_batches(app: faust.App) -> None:
    """Make ``app`` consume with ``SkippingConsumer`` (set before the app starts)."""
    # A class attribute of the transport, set on this app's transport instance only.
    cast(Any, app.transport).Consumer = SkippingConsumer


class ViewsFirstApp(faust.App):
    """A Faust app that runs ``before_consumer`` before its consumer starts and joins the group.

    The matcher's agents route with its webhook view; joining the group before the view has
    caught up would hold partitions idle (and take them from a ready replica) for the whole
    catch-up, which at 100,000 webhooks is more than a minute.
    """

    before_consumer: Callable[[], Awaitable[None]] | None = None

    async def on_first_start(self) -> None:
        await super().on_first_start()
        if self.before_consumer is not None:
            await self.before_consumer()
