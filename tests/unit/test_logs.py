"""Repeated client-library errors fold into one line per interval, with a count."""

from __future__ import annotations

import logging

from hookstream.logs import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_a_flood_of_one_client_error_is_folded_into_one_line_per_interval() -> None:
    clock = Clock()
    folding = RepeatFilter(interval_s=10.0, clock=clock)
    template = "Unable connect to node with id %s: %s"
    passed = [
        folding.filter(_record("aiokafka.conn", template, node, "refused")) for node in range(1000)
    ]
    assert passed.count(True) == 1
    clock.now = 10.5
    later = _record("aiokafka.conn", template, 1, "refused")
    assert folding.filter(later)
    assert later.getMessage() == (
        "Unable connect to node with id 1: refused (999 more like this in the last 10 s)"
    )


def test_other_messages_and_hookstreams_own_lines_pass() -> None:
    folding = RepeatFilter(interval_s=10.0, clock=Clock())
    assert folding.filter(_record("aiokafka.cluster", "Unable to update metadata from %s", 1))
    assert folding.filter(_record("aiokafka.conn", "Unable connect to node with id %s", 1))
    for attempt in range(5):
        own = _record("hookstream.sender.attempts", "delivery %s attempt %d", "d", attempt)
        assert folding.filter(own)
    for _ in range(5):
        assert folding.filter(_record("kafka.conn", "connected", level=logging.INFO))
