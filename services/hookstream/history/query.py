"""Searching the delivery history: the filters, the answer, and the opaque cursor of the next
page."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from hookstream.history.schemas import DeliveryOut, DeliveryOutcome

#: ``total`` counts matches up to this many; above it, it says "at least this many". Counting is
#: then bounded like the page itself, however many deliveries are stored.
COUNT_CAP = 1_000


class HistoryQueryError(ValueError):
    """A search the store cannot run (a cursor it did not issue); the message says why."""


@dataclass(frozen=True)
class DeliveryQuery:
    """Filters of a search; None matches everything. ``since`` is inclusive, ``until`` not."""

    webhook_id: str | None = None
    outcome: DeliveryOutcome | None = None
    http_status: int | None = None
    since: int | None = None
    until: int | None = None
    event_id: str | None = None
    trigger: str | None = None


@dataclass(frozen=True)
class SearchResult:
    deliveries: list[DeliveryOut]
    #: Matches, counted up to ``COUNT_CAP``; None on a cursor page (which does not count).
    total: int | None
    #: Where the next page starts (None on the last page); opaque to clients.
    next_cursor: str | None


def encode_cursor(delivery: DeliveryOut) -> str:
    raw = json.dumps([delivery.triggered_at, delivery.delivery_id, delivery.webhook_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        fired_at, delivery_id, webhook_id = json.loads(raw)
        if not (isinstance(fired_at, int) and isinstance(delivery_id, str)):
            raise TypeError("not a cursor")
        return fired_at, delivery_id, str(webhook_id)
    except (ValueError, TypeError, binascii.Error):
        raise HistoryQueryError(
            "cursor is not one this API issued; pass the next_cursor of the previous page"
        ) from None
