"""Circuit breakers: open after failures in a row, one probe at a time, close on any answer."""

from __future__ import annotations

import pytest

from hookstream.core.circuit import Breakers, CircuitState


def test_opens_after_failures_in_a_row_and_an_answer_resets_the_count() -> None:
    breakers = Breakers(failures=3, open_s=10, max_open_s=60)
    breakers.record("w", reachable=False, now=0)
    breakers.record("w", reachable=False, now=1)
    breakers.record("w", reachable=True, now=2)
    breakers.record("w", reachable=False, now=3)
    assert breakers.record("w", reachable=False, now=4) is CircuitState.CLOSED
    assert breakers.allowed("w", 8, now=4) == 8
    assert breakers.record("w", reachable=False, now=5) is CircuitState.OPEN
    assert breakers.allowed("w", 8, now=5) == 0
    assert breakers.probe_at("w") == 15
    assert breakers.open_count() == 1


def test_half_open_lets_one_probe_through_and_an_answer_closes() -> None:
    breakers = Breakers(failures=1, open_s=10, max_open_s=60)
    breakers.record("w", reachable=False, now=0)
    assert breakers.state("w", now=9.9) is CircuitState.OPEN
    assert breakers.state("w", now=10) is CircuitState.HALF_OPEN
    assert breakers.allowed("w", 8, now=10) == 1
    assert breakers.record("w", reachable=True, now=11) is CircuitState.CLOSED
    assert breakers.allowed("w", 8, now=11) == 8
    assert breakers.probe_at("w") is None
    assert breakers.open_count() == 0 and breakers.failing() == 0


def test_a_failed_probe_doubles_the_wait_up_to_the_maximum() -> None:
    breakers = Breakers(failures=1, open_s=10, max_open_s=25)
    breakers.record("w", reachable=False, now=0)
    assert breakers.record("w", reachable=False, now=10) is CircuitState.OPEN
    assert breakers.probe_at("w") == 30
    breakers.record("w", reachable=False, now=30)
    assert breakers.probe_at("w") == 55
    breakers.record("w", reachable=False, now=55)
    assert breakers.probe_at("w") == 80


def test_failures_of_requests_sent_before_it_opened_do_not_extend_it() -> None:
    breakers = Breakers(failures=1, open_s=10, max_open_s=60)
    breakers.record("w", reachable=False, now=0)
    breakers.record("w", reachable=False, now=3)
    assert breakers.probe_at("w") == 10


def test_webhooks_are_independent() -> None:
    breakers = Breakers(failures=1, open_s=10, max_open_s=60)
    breakers.record("dead", reachable=False, now=0)
    assert breakers.state("alive", now=1) is CircuitState.CLOSED
    assert breakers.allowed("alive", 8, now=1) == 8


def test_invalid_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="max_open_s"):
        Breakers(failures=1, open_s=10, max_open_s=5)


def test_an_opening_keeps_its_number_until_the_circuit_closes() -> None:
    breakers = Breakers(failures=1, open_s=10, max_open_s=60)
    assert breakers.opening("w") is None
    breakers.record("w", reachable=False, now=0)
    first = breakers.opening("w")
    assert first is not None
    # A failed probe re-opens it: still the same opening (its held jobs were reported once).
    breakers.record("w", reachable=False, now=11)
    assert breakers.opening("w") == first
    breakers.record("w", reachable=True, now=40)
    assert breakers.opening("w") is None
    breakers.record("w", reachable=False, now=41)
    assert breakers.opening("w") not in (None, first)
    breakers.record("other", reachable=False, now=41)
    assert breakers.opening("other") not in (None, first, breakers.opening("w"))
