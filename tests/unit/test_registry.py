"""How commands change a webhook (SPEC §5): edits, activation, failure counting, revisions."""

from __future__ import annotations

from typing import Any

import pytest

from hookstream.core.registry import (
    DAY_MS,
    Change,
    NumericIds,
    apply_command,
    derived_numeric_id,
    numeric_id_of,
)
from hookstream.records.codec import decode, encode
from hookstream.records.models import (
    CommandKind,
    DeactivationPolicy,
    FailureMark,
    Outcome,
    WebhookCommand,
    WebhookConfig,
)

NOW = 1_700_000_000_000
HOUR_MS = 3600 * 1000


def config(**overrides: Any) -> WebhookConfig:
    fields: dict[str, Any] = {
        "webhook_id": "wh-1",
        "name": "Hook",
        "payload_url": "https://example.com/hook",
        "triggers": ["/items"],
        "deactivation_policy": DeactivationPolicy(number_of_failures=3, days_in_past=2),
        "created_at": 1000,
        "modified_at": 1000,
        "revision": 4,
    }
    fields.update(overrides)
    return WebhookConfig(**fields)


def upsert(cfg: WebhookConfig) -> WebhookCommand:
    return WebhookCommand(webhook_id=cfg.webhook_id, kind=CommandKind.UPSERT, config=cfg)


def command(kind: CommandKind, **fields: Any) -> WebhookCommand:
    return WebhookCommand(webhook_id="wh-1", kind=kind, **fields)


def failure(delivery_id: str, at: int = NOW) -> WebhookCommand:
    return command(CommandKind.RECORD_FAILURE, delivery_id=delivery_id, issued_at=at)


def applied(
    current: WebhookConfig | None, cmd: WebhookCommand, now: int = NOW, last: int = -1
) -> Change:
    change = apply_command(current, cmd, now, last)
    assert change is not None
    return change


# --- upsert -----------------------------------------------------------------------------------


def test_upsert_new_webhook() -> None:
    incoming = config(revision=0)
    change = applied(None, upsert(incoming))
    assert change.config is not None
    assert not change.deleted
    assert change.status is None
    assert change.config.model_dump(exclude={"revision"}) == incoming.model_dump(
        exclude={"revision"}
    )
    assert change.config.revision == 0


def test_upsert_new_webhook_keeps_a_higher_incoming_revision() -> None:
    assert applied(None, upsert(config(revision=12)), last=3).config.revision == 12  # type: ignore[union-attr]


def test_edit_keeps_state_and_bumps_revision() -> None:
    marks = [FailureMark(delivery_id="d0", at=NOW - HOUR_MS)]
    current = config(recent_failures=marks, revision=4)
    incoming = config(
        name="Renamed",
        payload_url="https://example.com/new",
        triggers=["/groups/add"],
        recent_failures=[],
        created_at=999_999,
        revision=0,
    )
    change = applied(current, upsert(incoming), now=NOW)
    edited = change.config
    assert edited is not None
    assert edited.name == "Renamed"
    assert edited.payload_url == "https://example.com/new"
    assert edited.triggers == ["/groups/add"]
    assert edited.recent_failures == marks
    assert edited.active is True
    assert edited.created_at == 1000
    assert edited.modified_at == NOW
    assert edited.revision == 5
    assert change.status is None


def test_edit_does_not_reactivate_a_deactivated_webhook() -> None:
    current = config(active=False, deactivated_reason="policy", deactivated_at=NOW - 5)
    edited = applied(current, upsert(config(active=True, name="Edited"))).config
    assert edited is not None
    assert edited.name == "Edited"
    assert edited.active is False
    assert edited.deactivated_reason == "policy"
    assert edited.deactivated_at == NOW - 5


def test_edit_does_not_deactivate_an_active_webhook() -> None:
    edited = applied(config(), upsert(config(active=False, deactivated_reason="x"))).config
    assert edited is not None
    assert edited.active is True
    assert edited.deactivated_reason is None


# --- activate / deactivate --------------------------------------------------------------------


def test_deactivate() -> None:
    change = applied(config(), command(CommandKind.DEACTIVATE, reason="maintenance"))
    assert change.config is not None
    assert change.config.active is False
    assert change.config.deactivated_reason == "maintenance"
    assert change.config.deactivated_at == NOW
    assert change.config.revision == 5
    assert change.status is not None
    assert change.status.outcome is Outcome.DEACTIVATED
    assert change.status.final is True
    assert change.status.error == "maintenance"
    assert change.status.webhook_id == "wh-1"


def test_deactivate_without_reason_says_who() -> None:
    change = applied(config(), command(CommandKind.DEACTIVATE))
    assert change.config is not None
    assert "administrator" in (change.config.deactivated_reason or "")


def test_deactivating_an_inactive_webhook_is_a_noop() -> None:
    inactive = config(active=False, deactivated_reason="r", deactivated_at=1)
    assert apply_command(inactive, command(CommandKind.DEACTIVATE), NOW, 4) is None


def test_activate_clears_state_and_failures() -> None:
    marks = [FailureMark(delivery_id=f"d{i}", at=NOW) for i in range(2)]
    current = config(active=False, deactivated_reason="r", deactivated_at=1, recent_failures=marks)
    change = applied(current, command(CommandKind.ACTIVATE, reason="fixed"))
    assert change.config is not None
    assert change.config.active is True
    assert change.config.deactivated_reason is None
    assert change.config.deactivated_at is None
    assert change.config.recent_failures == []
    assert change.config.revision == 5
    assert change.status is not None and change.status.outcome is Outcome.ACTIVATED


# --- failures ---------------------------------------------------------------------------------


def test_failures_count_until_the_policy_deactivates() -> None:
    current = config()
    for index in range(2):
        change = applied(current, failure(f"d{index}"))
        assert change.config is not None
        assert change.config.active is True, index
        assert change.status is None
        assert len(change.config.recent_failures) == index + 1
        current = change.config
    change = applied(current, failure("d2"))
    assert change.config is not None
    assert change.config.active is False
    assert change.config.deactivated_at == NOW
    assert "3 deliveries failed" in (change.config.deactivated_reason or "")
    assert [m.delivery_id for m in change.config.recent_failures] == ["d0", "d1", "d2"]
    assert change.status is not None
    assert change.status.outcome is Outcome.DEACTIVATED
    assert change.status.error == change.config.deactivated_reason


def test_a_repeated_failure_counts_once() -> None:
    first = applied(config(), failure("d1")).config
    assert first is not None
    assert apply_command(first, failure("d1"), NOW + 1, first.revision) is None
    assert apply_command(first, failure("d1", at=NOW + 5), NOW + 1, first.revision) is None


def test_one_failure_policy_deactivates_at_once() -> None:
    cfg = config(deactivation_policy=DeactivationPolicy(number_of_failures=1, days_in_past=1))
    change = applied(cfg, failure("d1"))
    assert change.config is not None and change.config.active is False


def test_old_failures_are_pruned() -> None:
    old = [
        FailureMark(delivery_id="old1", at=NOW - 3 * DAY_MS),
        FailureMark(delivery_id="old2", at=NOW - 2 * DAY_MS - 1),
        FailureMark(delivery_id="edge", at=NOW - 2 * DAY_MS),
    ]
    change = applied(config(recent_failures=old), failure("new"))
    assert change.config is not None
    assert [m.delivery_id for m in change.config.recent_failures] == ["edge", "new"]
    assert change.config.active is True


def test_failure_mark_records_when_it_was_issued() -> None:
    change = applied(config(), failure("d1", at=NOW - 60_000))
    assert change.config is not None
    assert change.config.recent_failures == [FailureMark(delivery_id="d1", at=NOW - 60_000)]
    assert change.config.revision == 5


def test_a_failure_older_than_the_window_does_not_count() -> None:
    cfg = config(
        deactivation_policy=DeactivationPolicy(number_of_failures=2, days_in_past=1),
        recent_failures=[FailureMark(delivery_id="recent", at=NOW - HOUR_MS)],
    )
    change = apply_command(cfg, failure("late", at=NOW - 3 * DAY_MS), NOW, 4)
    assert change is None or (change.config is not None and change.config.active)


def test_failures_on_an_inactive_webhook_are_ignored() -> None:
    inactive = config(active=False, deactivated_reason="r", deactivated_at=1)
    assert apply_command(inactive, failure("d9"), NOW, 4) is None


def test_activation_resets_the_count() -> None:
    current = config()
    for index in range(3):
        next_config = applied(current, failure(f"d{index}")).config
        assert next_config is not None
        current = next_config
    assert current.active is False
    current = applied(current, command(CommandKind.ACTIVATE)).config  # type: ignore[assignment]
    assert current is not None and current.recent_failures == []
    for index in range(3, 5):
        next_config = applied(current, failure(f"d{index}")).config
        assert next_config is not None and next_config.active is True
        current = next_config


# --- delete, unknown, revisions ---------------------------------------------------------------


def test_delete() -> None:
    change = applied(config(), command(CommandKind.DELETE))
    assert change.deleted is True
    assert change.config is None


@pytest.mark.parametrize(
    "cmd",
    [
        command(CommandKind.DELETE),
        command(CommandKind.ACTIVATE),
        command(CommandKind.DEACTIVATE),
        failure("d1"),
    ],
    ids=lambda c: c.kind.value,
)
def test_commands_for_unknown_webhooks_are_noops(cmd: WebhookCommand) -> None:
    assert apply_command(None, cmd, NOW, -1) is None
    assert apply_command(None, cmd, NOW, 7) is None


def test_recreate_after_delete_never_reuses_a_revision() -> None:
    current = config(revision=6)
    assert applied(current, command(CommandKind.DELETE), last=6).deleted
    # The tombstone was written at revision 7; a re-create must go above it.
    recreated = applied(None, upsert(config(revision=0)), last=7).config
    assert recreated is not None
    assert recreated.revision == 8


def test_revisions_strictly_increase_over_a_history() -> None:
    current: WebhookConfig | None = None
    last = -1
    seen: list[int] = []
    history = [
        upsert(config(revision=0)),
        failure("d1"),
        upsert(config(name="Edit", revision=0)),
        command(CommandKind.DEACTIVATE),
        command(CommandKind.ACTIVATE),
        command(CommandKind.DELETE),
        upsert(config(revision=0)),
        failure("d2"),
    ]
    for cmd in history:
        change = applied(current, cmd, last=last)
        revision = max(last, current.revision if current else -1) + 1
        if change.config is not None:
            revision = change.config.revision
        seen.append(revision)
        last = revision
        current = change.config
    assert seen == sorted(seen)
    assert len(set(seen)) == len(seen)


# --- numeric ids ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("partition", "partitions", "taken", "expected"),
    [
        (0, 1, [], 1),
        (0, 1, [1, 2, 5], 6),
        (0, 3, [], 3),
        (2, 3, [], 2),
        (2, 3, [2, 5, 3, 4, 6, 100], 8),  # 100 % 3 == 1: another registry's
        (1, 3, [None, 1, None], 4),
    ],
)
def test_next_numeric_id(
    partition: int, partitions: int, taken: list[int | None], expected: int
) -> None:
    assert NumericIds(partition, partitions).next_id(taken) == expected


@pytest.mark.parametrize(("partition", "partitions"), [(-1, 3), (3, 3), (0, 0)])
def test_numeric_ids_refuse_a_partition_outside_the_topic(partition: int, partitions: int) -> None:
    with pytest.raises(ValueError, match="webhook-commands topic"):
        NumericIds(partition, partitions)


def test_registries_of_different_partitions_never_collide() -> None:
    """Worst case: each registry sees only its own writes, never the others' (a slow feed)."""
    partitions = 4
    seen: dict[int, list[int]] = {p: [] for p in range(partitions)}
    for round_ in range(25):
        for p in range(partitions):
            if (round_ + p) % 3:  # uneven rates
                seen[p].append(NumericIds(p, partitions).next_id(seen[p]))
    every = [number for numbers in seen.values() for number in numbers]
    assert len(every) == len(set(every)) and min(every) >= 1


def _allocator(numbers: list[int]) -> Any:
    def allocate() -> int:
        numbers.append(len(numbers) + 100)
        return numbers[-1]

    return allocate


def test_a_new_webhook_gets_a_number_whatever_the_command_carries() -> None:
    handed: list[int] = []
    change = apply_command(None, upsert(config(numeric_id=7)), NOW, -1, allocate=_allocator(handed))
    assert change is not None and change.config is not None
    assert change.config.numeric_id == 100 and handed == [100]


def test_an_edit_keeps_the_number_and_does_not_allocate() -> None:
    handed: list[int] = []
    current = config(numeric_id=42)
    for incoming in (config(name="Renamed"), config(name="Renamed", numeric_id=9)):
        change = apply_command(current, upsert(incoming), NOW, 4, allocate=_allocator(handed))
        assert change is not None and change.config is not None
        assert change.config.numeric_id == 42
    assert handed == []
    # without an allocator too: an edit never drops or replaces the number
    assert applied(current, upsert(config(numeric_id=None))).config.numeric_id == 42  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "cmd",
    [
        upsert(config(name="Edited")),
        command(CommandKind.DEACTIVATE),
        failure("d-1"),
    ],
    ids=["edit", "deactivate", "record_failure"],
)
def test_a_webhook_written_before_numbers_gets_one_on_its_next_write(cmd: WebhookCommand) -> None:
    handed: list[int] = []
    legacy = config(numeric_id=None)
    change = apply_command(legacy, cmd, NOW, 4, allocate=_allocator(handed))
    assert change is not None and change.config is not None
    assert change.config.numeric_id == 100 and handed == [100]
    # ... and keeps it from then on
    again = apply_command(
        change.config, command(CommandKind.ACTIVATE), NOW, 5, allocate=_allocator(handed)
    )
    assert again is not None and again.config is not None and again.config.numeric_id == 100
    assert handed == [100]


def test_commands_that_change_nothing_hand_out_no_number() -> None:
    handed: list[int] = []
    inactive = config(numeric_id=None, active=False)
    assert (
        apply_command(
            inactive, command(CommandKind.DEACTIVATE), NOW, 4, allocate=_allocator(handed)
        )
        is None
    )
    deleted = apply_command(
        config(numeric_id=None), command(CommandKind.DELETE), NOW, 4, allocate=_allocator(handed)
    )
    assert deleted is not None and deleted.deleted
    assert handed == []


def test_the_number_survives_the_config_topic() -> None:
    """Stored in the config: a restarted registry reads it back from the compacted topic."""
    numbered = config(numeric_id=29723)
    assert decode(encode(numbered), WebhookConfig).numeric_id == 29723


@pytest.mark.parametrize(
    ("webhook_id", "expected"),
    [("29723", 29723), ("7", 7), (str(2**53 - 1), 2**53 - 1)],
)
def test_a_decimal_webhook_id_is_its_own_derived_number(webhook_id: str, expected: int) -> None:
    assert derived_numeric_id(webhook_id) == expected


@pytest.mark.parametrize("webhook_id", ["dev-xml-3b4b0706", "0", "00", str(2**53), "wh-1", "٣"])
def test_other_webhook_ids_derive_a_stable_number_below_2_48(webhook_id: str) -> None:
    number = derived_numeric_id(webhook_id)
    assert 1 <= number < 2**48
    assert derived_numeric_id(webhook_id) == number


def test_numeric_id_of_prefers_the_assigned_number() -> None:
    assert numeric_id_of(config(webhook_id="29723", numeric_id=5)) == 5
    assert numeric_id_of(config(webhook_id="29723")) == 29723
