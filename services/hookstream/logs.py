"""Logging for every hookstream process: one JSON object per line, with the record's context."""

from __future__ import annotations

import json
import logging
import sys
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


def configure_logging(level: str, json_lines: bool) -> None:
    """One handler on stderr for the whole process. Kafka and HTTP client libraries are kept at
    WARNING: httpx alone would log every delivery at INFO, without the ids our own lines carry."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("kafka", "aiokafka", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
