"""Jobs the sender holds for later: the schedule of jobs not yet due, and parking them aside.

A job leaves the shared partitions unattempted ("parked") when its webhook's lane is full for
longer than the lanes may hold it, or when its webhook's circuit is open. It is re-published to
the retry topic with the same delivery id and attempt number, due when its webhook should have
room (or at the circuit's next probe), keyed by delivery id so a busy webhook's jobs spread over
senders. A job held by an open circuit gets one status record saying why per opening: the
opening's tag rides in a header of the parked copy, and a job that comes back to the same
opening is parked again silently.

Parked jobs read back wait in the same in-memory schedule as real retries but are counted
apart, each kind against its own bound, so a slow webhook's parked backlog does not use up the
room of other webhooks' retries. A parked job's due time is a prediction made while its webhook
was busy; the sender takes it early (``take_parked``) as soon as the webhook has room again, so
a receiver that was slow for a moment gets its backlog at its own pace, not minutes later. No
I/O here.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from hookstream.core.circuit import Breakers, CircuitState
from hookstream.core.lanes import Lanes
from hookstream.records.codec import encode
from hookstream.records.models import DeliveryJob, DeliveryStatus, Outcome
from hookstream.sender.attempts import Output

#: Kafka header on a job parked unattempted on the retry topic (value: backlog or circuit).
PARKED_HEADER = "hookstream-parked"
#: Kafka header on a job held by an open circuit: the tag of the opening it was reported to.
HELD_HEADER = "hookstream-held"
#: A circuit-held job comes back this long after the probe may go, never just before it.
PROBE_MARGIN_MS = 100

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Item:
    """A job and where it was read from (its offset is done once its outputs are acked)."""

    tp: TopicPartition
    offset: int
    job: DeliveryJob
    #: Read back after being parked (not a retry of an attempt).
    parked: bool = False
    #: The tag of the circuit opening its hold was reported to, if any.
    held: str | None = None

    @classmethod
    def read(
        cls,
        tp: TopicPartition,
        offset: int,
        job: DeliveryJob,
        headers: Sequence[tuple[str, bytes]] | None,
    ) -> Item:
        """An item from a record, with what its headers say about earlier parking."""
        found = dict(headers or ())
        held = found.get(HELD_HEADER)
        return cls(
            tp,
            offset,
            job,
            parked=PARKED_HEADER in found,
            held=held.decode("ascii", "replace") if held is not None else None,
        )


@dataclass(order=True)
class _Scheduled:
    due_at: int
    seq: int
    item: Item = field(compare=False)
    #: Handed out already (a parked job taken early): skipped where it still sits in a heap.
    taken: bool = field(default=False, compare=False)


class Schedule:
    """Jobs not yet due, earliest first; parked jobs and retries counted apart."""

    def __init__(self, max_retries: int, max_parked: int) -> None:
        self.max_retries = max_retries
        self.max_parked = max_parked
        self._heap: list[_Scheduled] = []
        #: Per webhook, its parked jobs, earliest first (entries shared with ``_heap``).
        self._parked_of: dict[str, list[_Scheduled]] = {}
        self._seq = itertools.count()
        self._parked = 0
        self._live = 0

    def __len__(self) -> int:
        return self._live

    @property
    def parked(self) -> int:
        """Parked jobs waiting here (the slow lane's depth in memory)."""
        return self._parked

    @property
    def retries(self) -> int:
        return self._live - self._parked

    def push(self, item: Item) -> None:
        entry = _Scheduled(item.job.due_at, next(self._seq), item)
        heapq.heappush(self._heap, entry)
        self._live += 1
        if item.parked:
            self._parked += 1
            heapq.heappush(self._parked_of.setdefault(item.job.webhook_id, []), entry)

    def _take(self, entry: _Scheduled) -> Item:
        entry.taken = True
        self._live -= 1
        self._parked -= entry.item.parked
        return entry.item

    def pop_due(self, now_ms: int) -> list[Item]:
        """Remove and return the jobs due at ``now_ms``, earliest first."""
        due: list[Item] = []
        while self._heap and self._heap[0].due_at <= now_ms:
            entry = heapq.heappop(self._heap)
            if not entry.taken:
                due.append(self._take(entry))
        return due

    def parked_webhooks(self) -> list[str]:
        """The webhooks that have parked jobs waiting here."""
        for key in [key for key, heap in self._parked_of.items() if not _trim(heap)]:
            del self._parked_of[key]
        return list(self._parked_of)

    def take_parked(self, webhook_id: str, limit: int) -> list[Item]:
        """Remove and return up to ``limit`` parked jobs of a webhook before they are due,
        earliest first: their webhook has room now, sooner than their parking predicted."""
        heap = self._parked_of.get(webhook_id, [])
        taken: list[Item] = []
        while len(taken) < limit and _trim(heap):
            taken.append(self._take(heapq.heappop(heap)))
        return taken

    def drop(self, unwanted: Callable[[Item], bool]) -> None:
        """Forget the jobs ``unwanted`` selects (their partition was revoked)."""
        self._heap = [e for e in self._heap if not e.taken and not unwanted(e.item)]
        heapq.heapify(self._heap)
        self._parked_of = {}
        for entry in self._heap:
            if entry.item.parked:
                self._parked_of.setdefault(entry.item.job.webhook_id, []).append(entry)
        for heap in self._parked_of.values():
            heapq.heapify(heap)
        self._live = len(self._heap)
        self._parked = sum(entry.item.parked for entry in self._heap)

    def full(self) -> bool:
        """Reading more from the retry topic would pass a bound: pause it."""
        return self.retries >= self.max_retries or self._parked >= self.max_parked

    def roomy(self) -> bool:
        """Both kinds are below half their bound: resume reading the retry topic."""
        return self.retries < self.max_retries // 2 and self._parked < self.max_parked // 2


def take_early(
    schedule: Schedule, lanes: Lanes[Item], breakers: Breakers, now: float
) -> list[Item]:
    """Parked jobs to start before they are due, because their webhook has room now: a parking
    time predicted during a moment of timeouts (minutes, for a long backlog) must not hold back
    a receiver that answers quickly again. A webhook takes only what it can start at once, so
    what it cannot start stays parked instead of being parked again."""
    free = lanes.concurrency - lanes.reserve - lanes.in_flight() - lanes.waiting()
    taken: list[Item] = []
    for webhook_id in schedule.parked_webhooks():
        if free <= 0:
            break
        if lanes.waiting(webhook_id) or breakers.state(webhook_id, now) is not CircuitState.CLOSED:
            continue
        room = min(free, lanes.allowed(webhook_id) - lanes.in_flight(webhook_id))
        items = schedule.take_parked(webhook_id, room)
        free -= len(items)
        taken.extend(items)
    return taken


def _trim(heap: list[_Scheduled]) -> bool:
    """Drop the handed-out entries at the head of a webhook's heap; True if one is left."""
    while heap and heap[0].taken:
        heapq.heappop(heap)
    return bool(heap)


def park(
    item: Item,
    due_at: int,
    retries_topic: str,
    status_topic: str,
    held: tuple[str, DeliveryStatus] | None = None,
) -> tuple[list[Output], Headers]:
    """The records that park a job: its copy on the retry topic, due at ``due_at``; for a job
    held by an open circuit (``held``: the opening's tag and the status that says why), also
    that status record, unless this job was already reported to the same opening."""
    job = item.job
    copy = job.model_copy(update={"due_at": due_at})
    outputs: list[Output] = [(retries_topic, job.delivery_id.encode(), encode(copy))]
    headers: Headers = [(PARKED_HEADER, b"circuit" if held is not None else b"backlog")]
    if held is not None:
        tag, status = held
        headers.append((HELD_HEADER, tag.encode("ascii")))
        if item.held != tag:
            outputs.append((status_topic, job.webhook_id.encode(), encode(status)))
    return outputs, headers


def held_status(
    job: DeliveryJob, webhook_name: str, max_attempts: int, due_at: int, failures: int
) -> DeliveryStatus:
    """The status record of a job held back by an open circuit: not an attempt."""
    return DeliveryStatus(
        delivery_id=job.delivery_id,
        webhook_id=job.webhook_id,
        webhook_name=webhook_name,
        event_ids=[event.event_id for event in job.events],
        trigger=job.trigger,
        attempt=job.attempt,
        max_attempts=max_attempts,
        # Not final and not a failure: nothing counts it toward deactivation.
        outcome=Outcome.HELD,
        final=False,
        next_attempt_at=due_at,
        error=f"held back, not attempted: the receiver's circuit is open after {failures} "
        "connection failures or timeouts in a row; one probe at a time is sent until it "
        "answers",
    )
