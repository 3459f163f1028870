"""Readable one-line renderings of records for the CLI and the demo."""

from __future__ import annotations

from hookstream.records.models import DeliveryStatus


def format_status(status: DeliveryStatus) -> str:
    """One readable line per status record."""
    code = status.http_status if status.http_status is not None else "-"
    attempt = f"{status.attempt}/{status.max_attempts}" if status.attempt else "-"
    detail = f"  {status.error}" if status.error else ""
    return (
        f"{status.outcome.value:11} webhook={status.webhook_id} "
        f"delivery={status.delivery_id or '-'} "
        f"attempt={attempt} http={code}{' final' if status.final else ''}{detail}"
    )
