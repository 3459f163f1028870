"""How one command changes one webhook: the rules of the registry, the config topic's only writer.

Commands for a webhook are applied one at a time in key order, so a deactivation and a concurrent
edit both land: edits never touch ``active``, and deactivation touches nothing else.

Every webhook also gets a numeric id (device payloads type ``webhook.id`` as an integer), handed
out once by the registry and kept in the config: see ``NumericIds``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hookstream.records.models import (
    CommandKind,
    DeliveryStatus,
    FailureMark,
    Outcome,
    WebhookCommand,
    WebhookConfig,
)

DAY_MS = 24 * 3600 * 1000
#: Numeric ids stay below 2**53 so that every JSON parser (JavaScript's too) reads them exactly.
MAX_NUMERIC_ID = 2**53 - 1
#: Derived numbers (for configs written before numeric ids) are kept below 2**48, far above the
#: ids the registry hands out, which grow by the partition count per webhook created.
_DERIVED_BITS = 48

#: Hands out a new numeric id when called (None: none can be handed out now; the webhook is
#: numbered with a later write); the matcher builds one from ``NumericIds``.
Allocate = Callable[[], int | None]


@dataclass(frozen=True)
class NumericIds:
    """The numeric ids one registry hands out: those with ``id % partitions == partition``.

    The registry runs once per partition of the webhook-commands topic; giving each partition
    its own residue class means two registries never hand out the same id, even before either
    has seen the other's write. Within its class a registry takes the largest id already in the
    directory plus ``partitions``, so an id is never reused while its webhook exists, and the
    first id of partition ``p`` is ``p`` (or ``partitions`` for partition 0): ids start at 1.
    """

    partition: int
    partitions: int

    def __post_init__(self) -> None:
        if not 0 <= self.partition < self.partitions:
            raise ValueError(
                f"partition {self.partition} is not one of the {self.partitions} partitions of "
                f"the webhook-commands topic"
            )

    def next_id(self, taken: Iterable[int | None]) -> int:
        """The id after the largest of ``taken`` in this registry's class (None: no id yet)."""
        mine = [
            number
            for number in taken
            if number is not None and number % self.partitions == self.partition
        ]
        if mine:
            return max(mine) + self.partitions
        return self.partition or self.partitions


def derived_numeric_id(webhook_id: str) -> int:
    """The number shown for a webhook the registry has not numbered yet (a config written before
    numeric ids): the id itself when it is a decimal number below 2**53, else 48 bits of its
    SHA-256. The same on every delivery until the webhook's next write (an edit, activation,
    deactivation or counted failure) gives it its own number for good."""
    if webhook_id.isascii() and webhook_id.isdigit() and 0 < int(webhook_id) <= MAX_NUMERIC_ID:
        return int(webhook_id)
    digest = hashlib.sha256(webhook_id.encode("utf-8")).digest()
    return int.from_bytes(digest[: _DERIVED_BITS // 8], "big") or 1


def numeric_id_of(config: WebhookConfig) -> int:
    """The webhook's number for payloads and the admin API: its own, or the derived one."""
    if config.numeric_id is not None:
        return config.numeric_id
    return derived_numeric_id(config.webhook_id)


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
    allocate: Allocate | None = None,
) -> Change | None:
    """The change a command makes to the current config, or None when it changes nothing.

    ``last_revision`` is the newest revision written for this id, deleted or not, so that a
    re-created webhook never reuses the revision of its own tombstone. ``allocate`` hands out
    numeric ids: a new webhook always gets one (whatever the command carries: only the registry
    numbers webhooks), an existing one keeps its own, and one written before numeric ids gets
    one with its next write. Without ``allocate`` nothing is numbered.
    """
    change = _apply(current, command, now, last_revision, secret_grace_ms)
    if change is None or change.config is None or allocate is None:
        return change
    number = current.numeric_id if current is not None else None
    if number is None:
        number = allocate()
    if number is None or change.config.numeric_id == number:
        return change
    numbered = change.config.model_copy(update={"numeric_id": number})
    return Change(numbered, change.deleted, change.status)


def _apply(
    current: WebhookConfig | None,
    command: WebhookCommand,
    now: int,
    last_revision: int,
    secret_grace_ms: int,
) -> Change | None:
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
                "numeric_id": current.numeric_id,
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
