"""Retry jitter: spread retries of a burst of failures, never earlier than the interval."""

from __future__ import annotations

import random
from collections.abc import Callable

#: The system's random source is enough: jitter spreads load, it protects nothing.
_RANDOM = random.Random()  # noqa: S311


def jittered_delay_s(
    interval_s: float, fraction: float, uniform: Callable[[], float] = _RANDOM.random
) -> float:
    """``interval_s`` plus up to ``fraction`` of it at random: the configured interval stays the
    minimum (the portal's spacing), and failures of one moment do not all come back at once."""
    if interval_s < 0 or fraction < 0:
        raise ValueError("interval_s and fraction cannot be negative")
    return interval_s * (1.0 + fraction * uniform())
