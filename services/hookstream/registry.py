"""How one command changes one webhook: the rules of the registry, the config topic's only writer.

Commands for a webhook are applied one at a time in key order, so a deactivation and a concurrent
edit both land: edits never touch ``active``, and deactivation touches nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from hookstream.models import (
    CommandKind,
    DeliveryStatus,
    FailureMark,
    Outcome,
    WebhookCommand,
    WebhookConfig,
)

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Change:
    """What applying a command does: the new config (None with ``deleted``), and a status record."""

    config: WebhookConfig | None
    deleted: bool = False
    status: DeliveryStatus | None = None


def _state_status(
    config: WebhookConfig, outcome: Outcome, reason: str | None, at: int
) -> DeliveryStatus:
    return DeliveryStatus(
        webhook_id=config.webhook_id,
        webhook_name=config.name,
        attempted_at=at,
        outcome=outcome,
        final=True,
        error=reason,
    )


def apply_command(
    current: WebhookConfig | None,
    command: WebhookCommand,
    now: int,
    last_revision: int,
    secret_grace_ms: int = DAY_MS,
) -> Change | None:
    """The change a command makes to the current config, or None when it changes nothing.

    ``last_revision`` is the newest revision written for this id, deleted or not, so that a
    re-created webhook never reuses the revision of its own tombstone.
    """
    revision = max(last_revision, current.revision if current else -1) + 1
    kind = command.kind
    if kind is CommandKind.UPSERT:
        incoming = command.config
        if incoming is None:  # refused by WebhookCommand's validator; kept for the type checker
            return None
        if current is None:
            return Change(
                incoming.model_copy(update={"revision": max(revision, incoming.revision)})
            )
        # An edit keeps the webhook's state: only activate/deactivate change it.
        edited = incoming.model_copy(
            update={
                **_rotation(current, incoming, now, secret_grace_ms),
                "active": current.active,
                "deactivated_reason": current.deactivated_reason,
                "deactivated_at": current.deactivated_at,
                "recent_failures": current.recent_failures,
                "created_at": current.created_at,
                "modified_at": now,
                "revision": revision,
            }
        )
        return Change(edited)
    if current is None:
        return None
    if kind is CommandKind.DELETE:
        return Change(None, deleted=True)
    if kind is CommandKind.ACTIVATE:
        activated = current.model_copy(
            update={
                "active": True,
                "deactivated_reason": None,
                "deactivated_at": None,
                "recent_failures": [],
                "modified_at": now,
                "revision": revision,
            }
        )
        return Change(
            activated, status=_state_status(current, Outcome.ACTIVATED, command.reason, now)
        )
    if kind is CommandKind.DEACTIVATE:
        if not current.active:
            return None
        reason = command.reason or "deactivated by an administrator"
        return Change(
            _deactivated(current, reason, now, revision),
            status=_state_status(current, Outcome.DEACTIVATED, reason, now),
        )
    return _record_failure(current, command, now, revision)


def _rotation(
    current: WebhookConfig, incoming: WebhookConfig, now: int, grace_ms: int
) -> dict[str, object]:
    """A new secret keeps the old one signing for the grace period, so receivers can rotate."""
    old = current.secret.get_secret_value() if current.secret else None
    new = incoming.secret.get_secret_value() if incoming.secret else None
    if old is None or old == new:
        return {
            "previous_secret": current.previous_secret,
            "previous_secret_expires_at": current.previous_secret_expires_at,
        }
    return {"previous_secret": current.secret, "previous_secret_expires_at": now + grace_ms}


def _deactivated(current: WebhookConfig, reason: str, now: int, revision: int) -> WebhookConfig:
    return current.model_copy(
        update={
            "active": False,
            "deactivated_reason": reason,
            "deactivated_at": now,
            "modified_at": now,
            "revision": revision,
        }
    )


def _record_failure(
    current: WebhookConfig, command: WebhookCommand, now: int, revision: int
) -> Change | None:
    delivery_id = command.delivery_id
    if (
        delivery_id is None
        or not current.active
        or any(mark.delivery_id == delivery_id for mark in current.recent_failures)
    ):
        return None  # a repeated command after a restart counts once
    policy = current.deactivation_policy
    window_start = now - policy.days_in_past * DAY_MS
    marks = [*current.recent_failures, FailureMark(delivery_id=delivery_id, at=command.issued_at)]
    failures = [mark for mark in marks if mark.at >= window_start]
    failures = failures[-policy.number_of_failures :]
    counted = current.model_copy(update={"recent_failures": failures, "revision": revision})
    if len(failures) < policy.number_of_failures:
        return Change(counted)
    reason = (
        f"{len(failures)} deliveries failed within {policy.days_in_past} day(s), meeting the "
        f"deactivation policy ({policy.number_of_failures} failures in {policy.days_in_past} days)"
    )
    return Change(
        _deactivated(counted, reason, now, revision),
        status=_state_status(current, Outcome.DEACTIVATED, reason, now),
    )
