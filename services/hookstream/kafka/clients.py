"""aiokafka clients configured the one way the services use them: durable writes, manual commits;
and reading on past a record batch that cannot be unpacked instead of crash-looping on it."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import Counter

from hookstream.kafka.security import aiokafka_options
from hookstream.logs import Throttle
from hookstream.records.codec import encode
from hookstream.records.models import DeadLetter
from hookstream.settings import KafkaSecuritySettings


def make_producer(
    bootstrap: str, client_id: str, security: KafkaSecuritySettings | None = None
) -> AIOKafkaProducer:
    """A producer whose acknowledged writes survive a broker failover, without duplicates."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        **aiokafka_options(security),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )


def make_consumer(
    bootstrap: str,
    client_id: str,
    group_id: str,
    session_timeout_s: float,
    security: KafkaSecuritySettings | None = None,
    heartbeat_interval_s: float | None = None,
    group_instance_id: str | None = None,
) -> AIOKafkaConsumer:
    """A group consumer that never commits on its own: the service commits what is done."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        **aiokafka_options(security),
        client_id=client_id,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        max_poll_interval_ms=300_000,
        session_timeout_ms=int(session_timeout_s * 1000),
        heartbeat_interval_ms=int((heartbeat_interval_s or session_timeout_s / 3) * 1000),
        group_instance_id=group_instance_id,
    )
    return consumer


def dead_letter_bytes(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    reason: str,
    service: str,
) -> bytes:
    """The dead-letter record of an input that could not be used, keeping its bytes."""
    return encode(
        DeadLetter(
            source_topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            value=value,
            reason=reason,
            service=service,
        )
    )


log = logging.getLogger(__name__)

UNREADABLE_BATCHES = Counter(
    "hookstream_unreadable_batches_total",
    "Record batches skipped because they could not be unpacked (codec, CRC, corrupt data).",
    ["service", "topic"],
)

#: Records as ``getmany`` returns them, keyed by partition.
Records = dict[TopicPartition, list[Any]]


@dataclass(frozen=True)
class UnreadableBatch:
    """A record batch the client could not unpack, and the records the failed fetch had read."""

    topic: str
    partition: int
    first_offset: int
    next_offset: int
    reason: str
    read_before: Records = field(default_factory=dict)

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def dead_letter(self, service: str) -> bytes:
        """A dead-letter record naming the skipped offsets; the batch's bytes are not available."""
        return dead_letter_bytes(
            self.topic,
            self.partition,
            self.first_offset,
            None,
            None,
            f"unreadable record batch, offsets {self.first_offset}..{self.next_offset - 1} "
            f"skipped: {self.reason}",
            service,
        )


def unreadable_batch(error: BaseException) -> UnreadableBatch | None:
    """The batch an aiokafka fetch failed to unpack, or None when ``error`` is something else.

    aiokafka raises codec and CRC errors (and the decompressors' own errors for corrupt data)
    from its batch iterator without saying which batch failed, and the records it had already
    taken from other partitions in that fetch are dropped with the exception. Both are still in
    the frames of the traceback: the batch being unpacked (``_unpack_records``), the records of
    its partition read before it (``getall``) and those of other partitions (``fetched_records``).
    Only an error raised while unpacking a batch matches, so every other failure still stops the
    caller. Checked against aiokafka 0.13 and 0.14 by tests/integration/test_compression.py.
    """
    batch_frame: dict[str, Any] | None = None
    partial: list[Any] = []
    drained: Mapping[Any, list[Any]] = {}
    traceback: TracebackType | None = error.__traceback__
    while traceback is not None:
        frame = traceback.tb_frame
        name = frame.f_code.co_name
        local = frame.f_locals
        if name == "fetched_records" and isinstance(local.get("drained"), dict):
            drained = local["drained"]
        elif name == "getall" and isinstance(local.get("ret_list"), list):
            partial = local["ret_list"]
        elif name == "_unpack_records" and "next_batch" in local and "tp" in local:
            batch_frame = local
        traceback = traceback.tb_next
    if batch_frame is None:
        return None
    tp, batch = batch_frame["tp"], batch_frame["next_batch"]
    read_before: Records = {
        TopicPartition(t.topic, t.partition): list(r) for t, r in drained.items()
    }
    if partial:
        read_before[TopicPartition(tp.topic, tp.partition)] = list(partial)
    return UnreadableBatch(
        topic=tp.topic,
        partition=tp.partition,
        first_offset=int(batch.base_offset),
        next_offset=int(batch.next_offset),
        reason=text
        if (text := str(error)).startswith(type(error).__name__)
        else f"{type(error).__name__}: {text}",
        read_before=read_before,
    )


def _report(batch: UnreadableBatch, service: str) -> None:
    """One error line per partition and minute; the batches skipped meanwhile are counted."""
    skipped = _unreadable_log.allow((batch.topic, batch.partition))
    if skipped is None:
        return
    log.error(
        "%s skipped an unreadable record batch at %s[%d] offsets %d..%d: %s%s",
        service,
        batch.topic,
        batch.partition,
        batch.first_offset,
        batch.next_offset - 1,
        batch.reason,
        f" ({skipped} more on this partition since the last report)" if skipped else "",
        extra={
            "topic": batch.topic,
            "partition": batch.partition,
            "offset": batch.first_offset,
        },
    )


_unreadable_log = Throttle(every_s=60.0)


async def fetch_past_unreadable(
    fetch: Callable[[], Awaitable[Mapping[Any, Sequence[Any]]]],
    seek: Callable[[TopicPartition, int], None],
    service: str,
) -> tuple[Records, UnreadableBatch | None]:
    """Run one fetch; if a batch cannot be unpacked, report it, seek past it and go on.

    Returns the records fetched (on a bad batch: those the fetch had read before it, so nothing
    is lost) and the skipped batch, if any, for a caller that dead-letters it. ``fetch`` is e.g.
    ``lambda: consumer.getmany(timeout_ms=100)`` or, in Faust's consumer thread,
    ``lambda: fetcher.fetched_records(partitions, timeout=..., max_records=...)``.
    """
    try:
        fetched = await fetch()
    except Exception as error:
        batch = unreadable_batch(error)
        if batch is None:
            raise
        UNREADABLE_BATCHES.labels(service, batch.topic).inc()
        _report(batch, service)
        seek(batch.tp, batch.next_offset)
        return dict(batch.read_before), batch
    return {TopicPartition(tp.topic, tp.partition): list(r) for tp, r in fetched.items()}, None


async def getmany_past_unreadable(
    consumer: AIOKafkaConsumer,
    service: str,
    timeout_ms: int,
    max_records: int | None = None,
) -> tuple[Records, UnreadableBatch | None]:
    """``consumer.getmany`` that skips (and reports) a batch it cannot unpack instead of raising
    on it forever: the same batch would fail again after every restart."""
    return await fetch_past_unreadable(
        lambda: consumer.getmany(timeout_ms=timeout_ms, max_records=max_records),
        consumer.seek,
        service,
    )
