"""Logging for every hookstream process: one JSON object per line, with the record's context."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Hashable
from datetime import UTC, datetime

#: Context fields a log call may pass in ``extra`` and that appear as top-level JSON keys.
CONTEXT_FIELDS = (
    "delivery_id",
    "webhook_id",
    "event_id",
    "topic",
    "partition",
    "offset",
    "attempt",
)


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", <context>...}``; exceptions as one string field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class Throttle:
    """At most ``burst`` log lines per key per ``every_s``; the lines in between are counted, so
    the next line let through can say how many were left out."""

    def __init__(
        self, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic, burst: int = 1
    ) -> None:
        self.every_s = every_s
        self.burst = burst
        self._clock = clock
        #: Per key: when its window started and how many lines it has let through.
        self._windows: dict[Hashable, tuple[float, int]] = {}
        self._skipped: dict[Hashable, int] = {}

    def allow(self, key: Hashable = None) -> int | None:
        """None to stay quiet, else how many lines of this key were left out before this one."""
        now = self._clock()
        start, lines = self._windows.get(key, (now, 0))
        if now - start >= self.every_s:
            start, lines = now, 0
        if lines >= self.burst:
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return None
        self._windows[key] = (start, lines + 1)
        return self._skipped.pop(key, 0)


#: Client libraries whose repeated errors are folded (a broker restart makes aiokafka log "Unable
#: connect to node" and "Unable to update metadata" thousands of times a second).
FOLDED_LOGGERS = ("kafka", "aiokafka", "faust", "mode")


class RepeatFilter(logging.Filter):
    """Lets one line of each message template through per logger and ``interval_s``; the next
    line let through says how many were folded meanwhile. Only the client libraries' lines are
    folded: hookstream's own lines carry ids and are bounded where they could repeat."""

    def __init__(self, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.interval_s = interval_s
        self._throttle = Throttle(interval_s, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(FOLDED_LOGGERS) or record.levelno < logging.WARNING:
            return True
        folded = self._throttle.allow((record.name, record.levelno, str(record.msg)))
        if folded is None:
            return False
        if folded:
            record.msg = f"{record.msg} ({folded} more like this in the last {self.interval_s:g} s)"
        return True


def configure_logging(level: str, json_lines: bool) -> None:
    """One handler on stderr for the whole process. Kafka and HTTP client libraries are kept at
    WARNING: httpx alone would log every delivery at INFO, without the ids our own lines carry."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("kafka", "aiokafka", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
