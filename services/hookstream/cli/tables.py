"""Readable renderings of admin API answers for the CLI: tables and detail views."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree

_MAX_CELL = 60


def when(epoch_ms: int | None) -> str:
    """Epoch milliseconds as UTC ``YYYY-MM-DD HH:MM:SS``; ``-`` for none."""
    if not epoch_ms:
        return "-"
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    return "default" if value is None else f"{value:g} s"


def _cell(value: Any) -> str:
    text = "-" if value is None or value == "" else str(value)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 3] + "..."


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell, a header line first."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _page_footer(page: dict[str, Any], shown: int) -> str:
    more = f"; next page: --start {page['next_start']}" if page.get("next_start") else ""
    first = page["start"] if shown else 0
    total = f"{page['total']}" if page.get("total_exact", True) else f"at least {page['total']}"
    return f"{shown} shown ({first}-{first + shown - 1 if shown else 0} of {total}){more}"


def webhooks_table(page: dict[str, Any]) -> str:
    rows = [
        (
            hook["id"],
            hook["name"],
            ("yes" if hook["active"] else "no") + (", circuit open" if hook.get("circuit") else ""),
            ", ".join(hook["triggers"]),
            hook["payload_url"],
        )
        for hook in page["webhooks"]
    ]
    body = table(("ID", "NAME", "ACTIVE", "TRIGGERS", "PAYLOAD URL"), rows)
    return f"{body}\n{_page_footer(page, len(rows))}"


def webhook_detail(hook: dict[str, Any]) -> str:
    auth = hook["auth"]
    if auth["kind"] == "basic":
        auth_text = f"basic (user {auth['username']}, password set: {auth['has_password']})"
    elif auth["kind"] == "header":
        auth_text = f"header ({', '.join(auth['header_names'])})"
    else:
        auth_text = "none"
    policy = hook["deactivation_policy"]
    state = "active" if hook["active"] else f"inactive since {when(hook['deactivated_at'])}"
    if not hook["active"] and hook.get("deactivated_reason"):
        state += f": {hook['deactivated_reason']}"
    circuit = hook.get("circuit")
    if circuit:
        # Deliveries wait (held, not failed) while one probe at a time tries the receiver.
        state += (
            f"; circuit open, deliveries held since {when(circuit['held_at'])}, "
            f"next probe {when(circuit['next_probe_at'])}"
        )
    fields = [
        ("id", hook["id"]),
        ("number", hook.get("numeric_id", "-")),
        ("name", hook["name"]),
        ("state", state),
        ("payload url", hook["payload_url"]),
        ("triggers", ", ".join(hook["triggers"])),
        ("smart group", hook.get("smart_group_id") or "-"),
        ("format", hook["payload_format"]),
        ("auth", auth_text),
        ("signing secret", "set" if hook["has_secret"] else "none"),
        (
            "timeouts",
            f"connect {_seconds(hook['connect_timeout_s'])}, "
            f"read {_seconds(hook['read_timeout_s'])}",
        ),
        (
            "deactivation",
            f"{policy['number_of_failures']} failures in "
            f"{policy['days_in_past']} day(s); now {len(hook['recent_failures'])}",
        ),
        ("created", when(hook["created_at"])),
        ("modified", f"{when(hook['modified_at'])} (revision {hook['revision']})"),
    ]
    width = max(len(name) for name, _ in fields)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in fields)


def settings_detail(settings: dict[str, Any]) -> str:
    modified = when(settings["modified_at"]) if settings["modified_at"] else "defaults"
    return "\n".join(
        [
            f"delivery attempts       {settings['max_attempts']}",
            f"time between attempts   {settings['retry_interval_s']:g} s",
            f"notification timeout    {settings['request_timeout_s']:g} s",
            f"modified                {modified}",
        ]
    )


def deliveries_table(page: dict[str, Any]) -> str:
    rows = []
    for delivery in page["deliveries"]:
        attempts = delivery["attempts"]
        last = attempts[-1] if attempts else {}
        rows.append(
            (
                delivery["delivery_id"],
                when(delivery["triggered_at"]),
                delivery["trigger"],
                delivery["outcome"],
                len(attempts),
                last.get("http_status"),
                last.get("error"),
            )
        )
    headers = ("DELIVERY", "TRIGGERED (UTC)", "TRIGGER", "OUTCOME", "ATTEMPTS", "HTTP", "ERROR")
    footer = _page_footer(page, len(rows))
    if page.get("next_cursor"):
        footer += f"; or by cursor: --cursor {page['next_cursor']}"
    return f"{table(headers, rows)}\n{footer}"


def pretty_payload(text: str | None) -> str:
    """A payload as sent, indented when it is JSON or XML (as it is when hookstream sent it)."""
    if not text:
        return "-"
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        pass
    try:
        # The payload is the body hookstream built itself, not a receiver's answer.
        root = ElementTree.fromstring(text)  # noqa: S314
    except ElementTree.ParseError:
        return text
    ElementTree.indent(root)
    return ElementTree.tostring(root, encoding="unicode")


def delivery_detail(delivery: dict[str, Any]) -> str:
    """One delivery: what fired it, every attempt with its answer, and the payload sent."""
    redelivered = " (redelivered)" if delivery.get("redelivered") else ""
    lines = [
        f"delivery   {delivery['delivery_id']}",
        f"webhook    {delivery['webhook_id']} {delivery.get('webhook_name') or ''}".rstrip(),
        f"trigger    {delivery.get('trigger') or '-'}",
        f"fired      {when(delivery['triggered_at'])} UTC",
        f"outcome    {delivery['outcome']}{redelivered}",
        f"events     {', '.join(delivery['event_ids']) or '-'}",
        "",
    ]
    rows = [
        (
            attempt["attempt"],
            when(attempt["at"]),
            attempt["outcome"],
            attempt["http_status"],
            f"{attempt['duration_ms']:.0f} ms",
            attempt.get("error"),
        )
        for attempt in delivery["attempts"]
    ]
    lines.append(table(("#", "AT (UTC)", "OUTCOME", "HTTP", "TOOK", "ERROR"), rows))
    for attempt in delivery["attempts"]:
        if attempt.get("response_excerpt"):
            lines += ["", f"response to attempt {attempt['attempt']}:", attempt["response_excerpt"]]
    lines += ["", "payload:", pretty_payload(delivery.get("payload"))]
    return "\n".join(lines)


def ping_detail(result: dict[str, Any]) -> str:
    verdict = "delivered" if result["delivered"] else "failed"
    code = result["http_status"] if result["http_status"] is not None else "-"
    line = f"ping {verdict}: HTTP {code} in {result['duration_ms']:.0f} ms"
    if result.get("error"):
        line += f"; {result['error']}"
    if result.get("response_excerpt"):
        line += f"\n{result['response_excerpt'][:500]}"
    return line


def recovery_detail(job: dict[str, Any]) -> str:
    """A bulk recovery's progress, one field a line."""
    lines = [
        f"job       {job['job_id']}",
        f"webhook   {job['webhook_id']}",
        f"since     {when(job['since'])}",
        f"state     {job['state']}",
        f"progress  {job['queued']} of {job['total']} queued, {job['skipped']} skipped",
    ]
    if job.get("finished_at"):
        lines.append(f"finished  {when(job['finished_at'])}")
    if job.get("error"):
        lines.append(f"error     {job['error']} (repeat the recover command to resume)")
    return "\n".join(lines)


def replay_detail(job: dict[str, Any]) -> str:
    """A replay's progress, one field a line."""
    lines = [
        f"job       {job['job_id']}",
        f"webhook   {job['webhook_id']}",
        f"since     {when(job['since'])}",
        f"state     {job['state']}",
        f"progress  {job['events_read']} events read, {job['queued']} deliveries queued, "
        f"{job['undecodable']} unreadable records skipped",
    ]
    if job.get("finished_at"):
        lines.append(f"finished  {when(job['finished_at'])}")
    if job.get("error"):
        lines.append(f"error     {job['error']} (repeat the replay command to start again)")
    return "\n".join(lines)
