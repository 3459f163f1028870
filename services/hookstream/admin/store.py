"""The admin's clock. The notification status itself is the delivery history (hookstream.history),
kept in a database fed from Kafka, so the admin's memory does not grow with it."""

from __future__ import annotations

from collections.abc import Callable

#: Epoch milliseconds now; injected so that tests can move time (retention is judged by it).
Clock = Callable[[], int]
