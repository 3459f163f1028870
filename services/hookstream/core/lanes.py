"""Fair scheduling of due jobs over webhooks: one lane per webhook, no I/O, time passed in.

Each webhook may have at most ``limit`` requests in flight, all webhooks together at most
``concurrency``. A job whose webhook is at its limit waits in that webhook's lane without holding
a global slot, and jobs of other webhooks overtake it: ``ready`` hands out slots round-robin over
the lanes that can start something.

A lane also predicts when each waiting job would start, from how long its requests take. Jobs
that would wait longer than ``max_wait_s`` are handed back by ``overdue`` so the caller can park
them elsewhere (the sender re-publishes them, due at the predicted time): a slow or hung receiver
then keeps a few jobs in memory, not its whole backlog, and the offsets behind it keep moving.
Parked jobs book their webhook's future slots one after the other (a job parked later is due
after those parked before), so they come back when there should be room, not all at once to be
parked again.

The last ``reserve`` global slots go only to webhooks whose requests are quick (under
``quick_s``): however many receivers are slow, they never hold every slot, and a healthy
webhook always finds one.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

#: Weight of the newest request duration in a lane's moving average.
EWMA_WEIGHT = 0.3
#: Idle webhooks whose request duration is remembered (the least recently busy are forgotten).
REMEMBERED_IDLE = 4096
#: Requests shorter than this make a webhook quick: it may use the reserved slots.
QUICK_S = 1.0


def _start_delay_s(position: int, free: int, slots: int, estimate_s: float) -> float:
    """When the job at ``position`` of a lane starts, with ``free`` of ``slots`` unused."""
    return 0.0 if position < free else ((position - free) // slots + 1) * estimate_s


@dataclass
class Lane(Generic[T]):
    """The jobs of one webhook: waiting in arrival order, and the start times of those running."""

    waiting: deque[T] = field(default_factory=deque)
    started: list[float] = field(default_factory=list)
    #: Moving average of request durations (seconds); None until one has finished.
    duration_s: float | None = None

    def estimate_s(self, now: float) -> float:
        """How long a request of this webhook takes: the average, or longer if one runs longer."""
        oldest = now - min(self.started) if self.started else 0.0
        return max(self.duration_s or 0.0, oldest)


@dataclass(frozen=True)
class Overdue(Generic[T]):
    """A waiting job predicted to start ``delay_s`` from now, later than the lanes may hold it."""

    key: str
    item: T
    delay_s: float


class Lanes(Generic[T]):
    """Per-webhook FIFO lanes with a per-webhook and a global in-flight bound.

    ``gate(key)`` may lower a webhook's limit for a while (an open circuit gives 0, a half-open
    one 1); it is asked whenever slots are handed out. ``reserve`` (at most ``concurrency - 1``)
    slots are kept for quick webhooks.
    """

    def __init__(
        self,
        limit: int,
        concurrency: int,
        max_wait_s: float,
        gate: Callable[[str], int] | None = None,
        reserve: int = 0,
        quick_s: float = QUICK_S,
    ) -> None:
        if limit < 1 or concurrency < 1 or reserve < 0:
            raise ValueError("limit and concurrency must be at least 1, reserve at least 0")
        self.limit = min(limit, concurrency)
        self.concurrency = concurrency
        self.max_wait_s = max_wait_s
        self.reserve = min(reserve, concurrency - 1)
        self.quick_s = quick_s
        self._gate = gate
        self._lanes: OrderedDict[str, Lane[T]] = OrderedDict()
        self._idle_durations: OrderedDict[str, float] = OrderedDict()
        #: Per webhook, until when its slots are booked by parked jobs (see ``overdue``).
        self._booked: dict[str, float] = {}
        self._in_flight = 0
        self._waiting = 0

    def add(self, key: str, item: T) -> None:
        """Queue a due job behind the other waiting jobs of its webhook."""
        self._lane(key).waiting.append(item)
        self._waiting += 1

    def ready(self, now: float) -> list[tuple[str, T]]:
        """Jobs to start now, marked as running: round-robin over lanes with room, FIFO within."""
        started: list[tuple[str, T]] = []
        if not self._waiting:
            return started
        # Each webhook's gate is asked once per call (it is the same within one moment).
        allowed: dict[str, int] = {}
        more = True
        while more and self._in_flight < self.concurrency:
            # Another round only while a lane that started a job may start one more.
            more = False
            for key in list(self._lanes):
                if self._in_flight >= self.concurrency:
                    break
                lane = self._lanes[key]
                if not lane.waiting:
                    continue
                limit = allowed.get(key)
                if limit is None:
                    limit = allowed[key] = self.allowed(key)
                if self._may_start(lane, limit, now):
                    item = lane.waiting.popleft()
                    self._waiting -= 1
                    lane.started.append(now)
                    self._in_flight += 1
                    started.append((key, item))
                    # The lane that just started moves to the back: the next round starts elsewhere.
                    self._lanes.move_to_end(key)
                    more = more or (bool(lane.waiting) and len(lane.started) < limit)
        return started

    def finished(self, key: str, started_at: float, now: float) -> None:
        """A running job of ``key`` that started at ``started_at`` ended; its slot is free."""
        lane = self._lanes.get(key)
        if lane is None or started_at not in lane.started:
            raise ValueError(f"no job of {key!r} started at {started_at} is running")
        lane.started.remove(started_at)
        self._in_flight -= 1
        took = max(0.0, now - started_at)
        previous = lane.duration_s
        lane.duration_s = took if previous is None else previous + EWMA_WEIGHT * (took - previous)
        self._tidy(key)

    def _may_start(self, lane: Lane[T], allowed: int, now: float) -> bool:
        """A waiting job of a lane may start: its webhook has a slot left of the ``allowed``,
        and either a general slot is free or the webhook is quick enough for the reserve."""
        if not lane.waiting or len(lane.started) >= allowed:
            return False
        if self._in_flight < self.concurrency - self.reserve:
            return True
        return lane.estimate_s(now) < self.quick_s

    def booked_until(self, key: str) -> float | None:
        """Until when ``key``'s slots are booked by jobs parked earlier; None if not booked."""
        return self._booked.get(key)

    def allowed(self, key: str) -> int:
        """How many requests ``key`` may have in flight now."""
        gate = self._gate(key) if self._gate is not None else self.limit
        return max(0, min(self.limit, gate))

    def overdue(self, now: float) -> list[Overdue[T]]:
        """Remove and return the waiting jobs predicted to start later than ``max_wait_s``.

        With ``free`` slots of its webhook unused, the n-th waiting job (from 0) starts at once
        if n < free, else after about ``(n - free) // slots + 1`` request durations. The jobs
        from the first overdue one on leave, oldest first, each due one ``duration / slots``
        after the one before and never before the slots booked by jobs parked earlier.
        """
        removed: list[Overdue[T]] = []
        for key in list(self._lanes):
            lane = self._lanes[key]
            if not lane.waiting:
                continue
            estimate = lane.estimate_s(now)
            if estimate <= 0:
                continue
            slots = max(1, self.allowed(key))
            free = max(0, slots - len(lane.started))
            cut = len(lane.waiting)
            while cut > 0 and _start_delay_s(cut - 1, free, slots, estimate) > self.max_wait_s:
                cut -= 1
            if cut == len(lane.waiting):
                continue
            booked = self._booked.get(key, now)
            due = max(booked, now + _start_delay_s(cut, free, slots, estimate))
            leaving = [lane.waiting[n] for n in range(cut, len(lane.waiting))]
            for _ in leaving:
                lane.waiting.pop()
            self._waiting -= len(leaving)
            for item in leaving:
                removed.append(Overdue(key, item, due - now))
                due += estimate / slots
            self._booked[key] = due
            self._tidy(key)
        self._forget_bookings(now)
        return removed

    def _forget_bookings(self, now: float) -> None:
        """Keep the bookings bounded: past ones are forgotten once there are many."""
        if len(self._booked) > REMEMBERED_IDLE:
            self._booked = {key: at for key, at in self._booked.items() if at > now}

    def take_waiting(self, key: str) -> list[T]:
        """Remove every waiting job of ``key`` (for example while its circuit is open)."""
        lane = self._lanes.get(key)
        if lane is None:
            return []
        items = list(lane.waiting)
        lane.waiting.clear()
        self._waiting -= len(items)
        self._tidy(key)
        return items

    def drop(self, unwanted: Callable[[T], bool]) -> int:
        """Forget waiting jobs ``unwanted`` selects (their partition was revoked); how many."""
        dropped = 0
        for key in list(self._lanes):
            lane = self._lanes[key]
            kept = deque(item for item in lane.waiting if not unwanted(item))
            dropped += len(lane.waiting) - len(kept)
            lane.waiting = kept
            self._tidy(key)
        self._waiting -= dropped
        return dropped

    def waiting_keys(self) -> Iterator[str]:
        """Webhooks with jobs waiting."""
        return (key for key, lane in list(self._lanes.items()) if lane.waiting)

    def waiting(self, key: str | None = None) -> int:
        """Jobs waiting, of one webhook or of all."""
        if key is None:
            return self._waiting
        lane = self._lanes.get(key)
        return len(lane.waiting) if lane is not None else 0

    def in_flight(self, key: str | None = None) -> int:
        """Jobs running, of one webhook or of all."""
        if key is None:
            return self._in_flight
        lane = self._lanes.get(key)
        return len(lane.started) if lane is not None else 0

    def at_limit(self) -> int:
        """Webhooks that have jobs waiting because they use every slot they may."""
        return sum(
            1
            for key, lane in self._lanes.items()
            if lane.waiting and len(lane.started) >= self.allowed(key)
        )

    def _lane(self, key: str) -> Lane[T]:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = Lane(duration_s=self._idle_durations.pop(key, None))
        return lane

    def _tidy(self, key: str) -> None:
        """Drop an idle lane, keeping its average duration in a bounded memory: a slow webhook
        whose jobs come back from the retry topic is known to be slow at once."""
        lane = self._lanes.get(key)
        if lane is not None and not lane.waiting and not lane.started:
            del self._lanes[key]
            if lane.duration_s is not None:
                self._idle_durations[key] = lane.duration_s
                while len(self._idle_durations) > REMEMBERED_IDLE:
                    self._idle_durations.popitem(last=False)
