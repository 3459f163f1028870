"""Retry jitter never shortens the configured interval and spreads a burst of retries."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookstream.core.jitter import jittered_delay_s


@given(st.floats(1.0, 100.0), st.floats(0.0, 1.0), st.floats(0.0, 1.0, exclude_max=True))
def test_never_less_than_the_interval_nor_more_than_the_fraction(
    interval: float, fraction: float, draw: float
) -> None:
    delay = jittered_delay_s(interval, fraction, lambda: draw)
    assert interval <= delay <= interval * (1 + fraction)


def test_a_burst_is_spread() -> None:
    rng = random.Random(7)
    delays = {round(jittered_delay_s(30.0, 0.1, rng.random), 3) for _ in range(100)}
    assert len(delays) > 90
    assert min(delays) >= 30.0 and max(delays) <= 33.0


def test_no_jitter_is_the_interval() -> None:
    assert jittered_delay_s(30.0, 0.0) == 30.0


def test_negative_values_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        jittered_delay_s(-1.0, 0.1)
