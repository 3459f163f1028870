"""Circuit breakers per webhook: a dead endpoint gets one probe at a time, not every job.

After ``failures`` connection failures or timeouts in a row a webhook's circuit opens for
``open_s``; then it is half-open: one request (a probe) may go. An answer of any kind closes
the circuit; another failure opens it again for twice as long, up to ``max_open_s``. An HTTP
error status is an answer: the receiver is there, and the retry policy deals with it. From the
first opening to the closing is one *opening*, numbered so that the jobs it holds back are
reported once each, however often they come back before it closes. No I/O here; the caller
passes the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass
class _Circuit:
    failures: int = 0
    #: When an open circuit lets a probe through; None while closed.
    open_until: float | None = None
    open_s: float = 0.0
    #: Number of this opening (unique in this Breakers); 0 while it never opened.
    opening: int = 0


class Breakers:
    """The circuit of every webhook that has failed lately (closed circuits are not kept)."""

    def __init__(self, failures: int, open_s: float, max_open_s: float) -> None:
        if failures < 1 or open_s <= 0 or max_open_s < open_s:
            raise ValueError("need failures >= 1 and 0 < open_s <= max_open_s")
        self.failures = failures
        self.open_s = open_s
        self.max_open_s = max_open_s
        self._circuits: dict[str, _Circuit] = {}
        self._openings = 0

    def state(self, key: str, now: float) -> CircuitState:
        circuit = self._circuits.get(key)
        if circuit is None or circuit.open_until is None:
            return CircuitState.CLOSED
        return CircuitState.OPEN if now < circuit.open_until else CircuitState.HALF_OPEN

    def allowed(self, key: str, limit: int, now: float) -> int:
        """Requests ``key`` may have in flight: ``limit`` closed, 1 half-open, 0 open."""
        state = self.state(key, now)
        if state is CircuitState.CLOSED:
            return limit
        return 1 if state is CircuitState.HALF_OPEN else 0

    def probe_at(self, key: str) -> float | None:
        """When an open circuit lets its next probe through; None when closed."""
        circuit = self._circuits.get(key)
        return circuit.open_until if circuit is not None else None

    def opening(self, key: str) -> int | None:
        """The number of the opening ``key``'s circuit is in; None while closed."""
        circuit = self._circuits.get(key)
        if circuit is None or circuit.open_until is None:
            return None
        return circuit.opening

    def record(self, key: str, reachable: bool, now: float) -> CircuitState:
        """Count one attempt's result: ``reachable`` when the receiver answered at all."""
        if reachable:
            self._circuits.pop(key, None)
            return CircuitState.CLOSED
        circuit = self._circuits.setdefault(key, _Circuit())
        circuit.failures += 1
        if circuit.open_until is not None:
            if now >= circuit.open_until:
                # The probe failed: wait longer before the next one.
                circuit.open_s = min(circuit.open_s * 2, self.max_open_s)
                circuit.open_until = now + circuit.open_s
        elif circuit.failures >= self.failures:
            self._openings += 1
            circuit.opening = self._openings
            circuit.open_s = self.open_s
            circuit.open_until = now + circuit.open_s
        return self.state(key, now)

    def open_count(self) -> int:
        """Circuits open or half-open now (for the metrics)."""
        return sum(1 for circuit in self._circuits.values() if circuit.open_until is not None)

    def failing(self) -> int:
        """Webhooks with a failure streak, open or not (how much state is kept)."""
        return len(self._circuits)
