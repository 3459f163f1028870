"""Following a compacted topic from its beginning: the shared machinery of the live views."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from hookstream.core.errors import ConfigurationError
from hookstream.kafka.clients import getmany_past_unreadable
from hookstream.kafka.security import aiokafka_options
from hookstream.logs import Throttle
from hookstream.settings import KafkaSecuritySettings

log = logging.getLogger(__name__)

#: Longest the event loop is held applying records before other tasks get a turn: a batch of a
#: large topic takes seconds to apply, and /healthz, /readyz and the API share this loop.
YIELD_EVERY_S = 0.02

#: Longest a poll of a quiet view's topic is held by the broker (ms). A record written meanwhile
#: ends the poll at once, so this bounds only how often an idle view asks: every 100 ms was about
#: a quarter of the matcher's idle CPU (docs/benchmarks.md, "Matcher CPU (issue 11, second
#: pass)").
POLL_TIMEOUT_MS = 500

#: Longest a reader waits for a view to reach its topic's end (``fresh_since``) before it goes on
#: with the view as it is; the view is reported lagging (/readyz) until it catches up again.
FRESH_TIMEOUT_S = 5.0

#: Bytes fetched per partition and records taken per batch while a view reads its topic: with the
#: client's defaults (1 MiB per partition, every record fetched) a catch-up turned about 6 MiB at
#: a time into records at once, and the process kept that peak (docs/benchmarks.md, "Memory at
#: 100,000 webhooks (issue 11)").
FETCH_BYTES_PER_PARTITION = 256 * 1024
MAX_RECORDS = 2000

#: Least time between two reads of a topic's end offsets for the lag figure (/readyz, /metrics):
#: the figure is asked for by probes and scrapes, never per record.
LAG_REFRESH_S = 5.0


@dataclass(frozen=True)
class ViewLag:
    """How far a view is behind its topic, as last measured (for /readyz and /metrics)."""

    #: End offsets minus the view's positions, summed over partitions; None before the view has
    #: started.
    records: int | None
    #: Seconds since the view was last known to hold everything its topic had; None if never.
    fresh_age_s: float | None


class CompactedFeed:
    """Reads every partition of a topic from the beginning, then follows it; no consumer group.

    Subclasses apply each record in ``apply``; ``ready`` is set once the records that were in the
    topic at start have all been applied, so a service can wait for a complete view. If following
    stops on an error, ``ready`` is cleared, ``failure`` says why and ``failed`` is set: a frozen
    view must never pass for a live one (the services stop on it).
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        client_id: str,
        poll_timeout_ms: int = POLL_TIMEOUT_MS,
        security: KafkaSecuritySettings | None = None,
    ) -> None:
        self.topic = topic
        self._security = security
        self.ready = asyncio.Event()
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._poll_timeout_ms = poll_timeout_ms
        self._consumer: AIOKafkaConsumer | None = None
        #: Asks for the topic's end offsets on connections of its own: on the follower's, the
        #: broker would answer only after the long poll under way (up to ``poll_timeout_ms``).
        self._ends: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None
        self.failed = asyncio.Event()
        self._assignment: list[TopicPartition] = []
        self._positions: dict[TopicPartition, int] = {}
        self._progress = asyncio.Event()
        #: The latest moment (monotonic) of which the view is known to hold all its topic had.
        self.fresh_at = 0.0
        self._barrier: tuple[float, asyncio.Task[None]] | None = None
        self._lagging_since: float | None = None
        #: The topic's end offsets as last read, when they were asked for, and the task reading
        #: them again (at most one at a time, one per ``LAG_REFRESH_S``).
        self._known_ends: dict[TopicPartition, int] = {}
        self._ends_asked_at = 0.0
        self._seen_fresh_at = 0.0
        self._measured_at = 0.0
        self._measuring: asyncio.Task[None] | None = None
        self._measure_warnings = Throttle(every_s=60.0)

    def apply(self, record: Any) -> None:
        """Apply one record (an aiokafka ``ConsumerRecord``) to the view."""
        raise NotImplementedError

    def caught_up(self) -> None:
        """Called once when the view holds everything that was in the topic at start."""

    async def start(self) -> None:
        """Assign every partition from the beginning and start following in the background."""
        self._ends = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            **aiokafka_options(self._security),
            client_id=f"{self._client_id}-ends",
            group_id=None,
            enable_auto_commit=False,
        )
        await self._ends.start()
        self._consumer = consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            **aiokafka_options(self._security),
            client_id=self._client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self._poll_timeout_ms,
            max_partition_fetch_bytes=FETCH_BYTES_PER_PARTITION,
        )
        await consumer.start()
        # The consumer learns partitions only for subscribed topics; ask the cluster directly.
        metadata = await consumer._client.fetch_all_metadata()
        partitions = metadata.partitions_for_topic(self.topic)
        if not partitions:
            raise ConfigurationError(
                f"topic {self.topic!r} does not exist; run `hookstream topics create`"
            )
        assignment = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        self._assignment = assignment
        asked_at = time.monotonic()
        end_offsets = await consumer.end_offsets(assignment)
        self._note_ends(end_offsets, asked_at)
        self._task = asyncio.create_task(
            self._follow(consumer, end_offsets), name=f"feed-{self.topic}"
        )
        self._task.add_done_callback(self._ended)

    def problem(self) -> str | None:
        """Why this view cannot be trusted, for /readyz; None while it follows its topic."""
        if self.failure is not None:
            return f"the view of {self.topic} stopped following it: {self.failure!r}"
        if self._lagging_since is not None:
            behind = time.monotonic() - self._lagging_since
            return f"the view of {self.topic} has not reached the end of it for {behind:.0f} s"
        return None

    def lag(self) -> ViewLag:
        """How far the view is behind its topic's end offsets as last read; reading them again
        (in the background, at most every ``LAG_REFRESH_S``) is started by this call, so a view
        nobody asks about costs nothing."""
        now = time.monotonic()
        if (
            self._ends is not None
            and now - max(self._ends_asked_at, self._measured_at) >= LAG_REFRESH_S
            and (self._measuring is None or self._measuring.done())
        ):
            self._measuring = asyncio.create_task(self._measure(), name=f"lag-{self.topic}")
        if not self._known_ends:
            return ViewLag(records=None, fresh_age_s=None)
        behind = self._behind(self._known_ends)
        if behind == 0:
            self._seen_fresh_at = max(self._seen_fresh_at, self._ends_asked_at)
        fresh_at = max(self.fresh_at, self._seen_fresh_at)
        return ViewLag(records=behind, fresh_age_s=now - fresh_at if fresh_at > 0 else None)

    def _behind(self, ends: dict[TopicPartition, int]) -> int:
        return sum(max(0, end - self._positions.get(tp, 0)) for tp, end in ends.items())

    def _note_ends(self, ends: dict[TopicPartition, int], asked_at: float) -> None:
        """Keep the end offsets read at ``asked_at`` if they are newer than those known."""
        if asked_at < self._ends_asked_at:
            return
        if self._known_ends and self._behind(self._known_ends) == 0:
            self._seen_fresh_at = max(self._seen_fresh_at, self._ends_asked_at)
        self._known_ends, self._ends_asked_at = dict(ends), asked_at

    async def _measure(self) -> None:
        ends_client = self._ends
        if ends_client is None:
            return
        # A failed read holds the place of the next one too: one try per LAG_REFRESH_S.
        asked_at = self._measured_at = time.monotonic()
        try:
            ends = await ends_client.end_offsets(self._assignment)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if (skipped := self._measure_warnings.allow()) is not None:
                log.warning(
                    "could not read the end offsets of %s for its lag figure (%d such warnings "
                    "left out): %r",
                    self.topic,
                    skipped,
                    exc,
                )
            return
        self._note_ends(ends, asked_at)

    async def fresh_since(self, moment: float) -> None:
        """Return once the view holds every record its topic had at ``moment`` (monotonic).

        One reader's many calls share one check of the topic's end offsets at a time, so a busy
        reader pays about one round trip per batch. A check that takes over ``FRESH_TIMEOUT_S``
        lets the reader go on with the view as it is (the check goes on, and /readyz reports the
        lag): a partition of the view's topic without a leader must not stop every delivery.
        """
        if self.fresh_at >= moment:
            return
        if self.failure is not None:
            raise self.failure
        deadline = time.monotonic() + FRESH_TIMEOUT_S
        barrier = self._barrier
        if barrier is not None and barrier[0] < moment and self._lagging_since is None:
            # The check under way began too early for this reader: let it end, then check again.
            await asyncio.wait([barrier[1]], timeout=FRESH_TIMEOUT_S)
            if self.fresh_at >= moment:
                return
        barrier = self._barrier
        if barrier is None or (barrier[0] < moment and barrier[1].done()):
            started = time.monotonic()
            task = asyncio.create_task(self._catch_up(started), name=f"fresh-{self.topic}")
            barrier = self._barrier = (started, task)
        if self._lagging_since is not None:
            return
        done, _ = await asyncio.wait([barrier[1]], timeout=max(0.0, deadline - time.monotonic()))
        if self.failure is not None:
            raise self.failure
        if not done and self.fresh_at < moment and self._lagging_since is None:
            self._lagging_since = barrier[0]
            log.warning(
                "the view of %s has not reached the end of it within %g s; going on with the "
                "view as it is until it does",
                self.topic,
                FRESH_TIMEOUT_S,
            )

    async def _catch_up(self, started: float) -> None:
        """Wait until the view has applied everything up to the topic's end offsets now."""
        ends_client = self._ends
        if ends_client is None:
            return
        try:
            ends = await ends_client.end_offsets(self._assignment)
            self._note_ends(ends, started)
            while self.failure is None and any(
                self._positions.get(tp, 0) < end for tp, end in ends.items()
            ):
                progress = self._progress
                await progress.wait()
        except asyncio.CancelledError:
            raise
        except Exception:
            # The view goes on following; the next reader starts the next check, one a second
            # at most (this one holds its place meanwhile).
            log.warning("could not read the end offsets of %s", self.topic, exc_info=True)
            await asyncio.sleep(1.0)
            return
        self.fresh_at = max(self.fresh_at, started)
        if self._lagging_since is not None:
            log.info("the view of %s has reached the end of it again", self.topic)
            self._lagging_since = None

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        self.failure = task.exception()
        self.ready.clear()
        self.failed.set()
        self._progress.set()
        log.critical("%s", self.problem(), exc_info=self.failure)

    async def wait_ready(self, timeout_s: float) -> None:
        """Wait until the view has caught up; raise at once if following it failed."""
        waits = [
            asyncio.ensure_future(self.ready.wait()),
            asyncio.ensure_future(self.failed.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if self.failure is not None:
            raise self.failure
        if not self.ready.is_set():
            raise TimeoutError(f"the view of {self.topic} did not catch up within {timeout_s:g} s")

    async def stop(self) -> None:
        if self._barrier is not None:
            self._barrier[1].cancel()
        if self._measuring is not None:
            self._measuring.cancel()
        if self._task is not None:
            self._task.cancel()
            # Waits without raising: a failure of the task was reported when it ended.
            await asyncio.wait([self._task])
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._ends is not None:
            await self._ends.stop()
            self._ends = None

    async def _follow(
        self, consumer: AIOKafkaConsumer, end_offsets: dict[TopicPartition, int]
    ) -> None:
        remaining = {tp: end for tp, end in end_offsets.items() if end > 0}
        if not remaining:
            self._set_ready()
        while True:
            # A batch no client here can unpack is logged, counted and skipped: the view goes on
            # without those records rather than the process failing on them at every start.
            batches, _ = await getmany_past_unreadable(
                consumer, self._client_id, timeout_ms=self._poll_timeout_ms, max_records=MAX_RECORDS
            )
            turn_ends = time.monotonic() + YIELD_EVERY_S
            for records in batches.values():
                for record in records:
                    self.apply(record)
                    if time.monotonic() >= turn_ends:
                        await asyncio.sleep(0)
                        turn_ends = time.monotonic() + YIELD_EVERY_S
            for tp in self._assignment:
                self._positions[tp] = await consumer.position(tp)
            progress, self._progress = self._progress, asyncio.Event()
            progress.set()
            if not self.ready.is_set() and all(
                self._positions[tp] >= end for tp, end in remaining.items()
            ):
                self._set_ready()

    def _set_ready(self) -> None:
        self.caught_up()
        self.ready.set()
