"""WebhookDirectory: the trigger index, revisions, and matching cost."""

from __future__ import annotations

from typing import Any

import pytest

from hookstream.core.triggers import TriggerFamily, TriggerKey
from hookstream.records.models import WebhookConfig
from hookstream.views.directory import REVISION_HEADER, WebhookDirectory, family_of
from hookstream.views.directory_feed import revision_from_headers


def hook(webhook_id: str, triggers: list[str], **overrides: Any) -> WebhookConfig:
    fields: dict[str, Any] = {
        "webhook_id": webhook_id,
        "name": webhook_id,
        "payload_url": "https://example.com/hook",
        "triggers": triggers,
        "created_at": 1,
        "modified_at": 1,
    }
    fields.update(overrides)
    return WebhookConfig(**fields)


def matched(directory: WebhookDirectory, source: str, rid: str | None, op: str) -> dict[str, str]:
    return {m.webhook.webhook_id: m.trigger.text for m in directory.match(source, rid, op)}


@pytest.fixture
def directory() -> WebhookDirectory:
    made = WebhookDirectory()
    for config in [
        hook("all", ["/"]),
        hook("items", ["/items"]),
        hook("items-update", ["/items/update"]),
        hook("item-abc", ["/items/abc"]),
        hook("item-abc-delete", ["/items/abc/delete"]),
        hook("users-signin", ["/users/signIn"]),
        hook("computers", ["ComputerAdded"]),
        hook("group-5", ["SmartGroupComputerMembershipChange"], smart_group_id="5"),
    ]:
        assert made.put(config)
    return made


def test_match_by_wildcard_collection_operation_id(directory: WebhookDirectory) -> None:
    assert matched(directory, "items", "abc", "update") == {
        "all": "/",
        "items": "/items",
        "items-update": "/items/update",
        "item-abc": "/items/abc",
    }
    assert matched(directory, "item", "abc", "delete") == {
        "all": "/",
        "items": "/items",
        "item-abc": "/items/abc",
        "item-abc-delete": "/items/abc/delete",
    }
    assert matched(directory, "items", "zzz", "share") == {"all": "/", "items": "/items"}
    assert matched(directory, "groups", "g", "add") == {"all": "/"}


def test_operation_match_is_case_insensitive(directory: WebhookDirectory) -> None:
    assert "users-signin" in matched(directory, "users", "bob", "signin")
    assert "users-signin" in matched(directory, "user", "bob", "SIGNIN")
    assert "users-signin" not in matched(directory, "users", "bob", "signOut")


def test_device_events(directory: WebhookDirectory) -> None:
    assert matched(directory, "computers", "17", "add") == {
        "all": "/",
        "computers": "ComputerAdded",
    }
    assert "group-5" in matched(directory, "smartGroups", "5", "computerMembershipChange")
    assert "group-5" not in matched(directory, "smartGroups", "6", "computerMembershipChange")


def test_each_webhook_once_by_its_most_specific_trigger() -> None:
    directory = WebhookDirectory()
    directory.put(
        hook("multi", ["/", "/items", "/items/update", "/items/abc", "/items/abc/update"])
    )
    found = directory.match("items", "abc", "update")
    assert len(found) == 1
    assert found[0].trigger.text == "/items/abc/update"
    assert found[0].trigger.key == TriggerKey("items", "abc", "update")
    found = directory.match("items", "abc", "delete")
    assert [m.trigger.text for m in found] == ["/items/abc"]
    found = directory.match("items", "other", "update")
    assert [m.trigger.text for m in found] == ["/items/update"]
    assert [m.trigger.text for m in directory.match("users", None, "add")] == ["/"]


def test_inactive_webhooks_are_not_matched() -> None:
    directory = WebhookDirectory()
    active = hook("w", ["/items"], revision=1)
    directory.put(active)
    assert matched(directory, "items", None, "add") == {"w": "/items"}
    inactive = active.model_copy(update={"active": False, "revision": 2})
    assert directory.put(inactive)
    assert matched(directory, "items", None, "add") == {}
    assert directory.get("w") == inactive  # still held, just not matched
    assert len(directory) == 1
    directory.put(active.model_copy(update={"revision": 3}))
    assert matched(directory, "items", None, "add") == {"w": "/items"}


def test_edit_replaces_the_triggers() -> None:
    directory = WebhookDirectory()
    directory.put(hook("w", ["/items"], revision=1))
    directory.put(hook("w", ["/groups"], revision=2))
    assert matched(directory, "items", None, "add") == {}
    assert matched(directory, "groups", None, "add") == {"w": "/groups"}
    assert directory._index.keys() == {TriggerKey("groups", "*", "*")}


def test_older_revision_never_overwrites_a_newer_one() -> None:
    directory = WebhookDirectory()
    newer = hook("w", ["/groups"], revision=5)
    assert directory.put(newer)
    assert not directory.put(hook("w", ["/items"], revision=4))
    assert directory.get("w") == newer
    assert matched(directory, "items", None, "add") == {}
    assert directory.put(hook("w", ["/users"], revision=5))  # equal revision applies
    assert directory.revision("w") == 5


def test_delete_with_revision() -> None:
    directory = WebhookDirectory()
    directory.put(hook("w", ["/items"], revision=5))
    assert not directory.delete("w", 4)
    assert directory.get("w") is not None
    assert directory.delete("w", 6)
    assert directory.get("w") is None
    assert len(directory) == 0
    assert matched(directory, "items", None, "add") == {}
    assert directory.revision("w") == 6
    assert not directory.put(hook("w", ["/items"], revision=5))  # late copy of an old record
    assert directory.get("w") is None
    assert directory._index == {}


def test_delete_without_revision_always_applies() -> None:
    directory = WebhookDirectory()
    directory.put(hook("w", ["/items"], revision=5))
    assert directory.delete("w", None)
    assert directory.get("w") is None
    assert matched(directory, "items", None, "add") == {}
    assert directory.delete("never-seen", None)


def test_delete_without_revision_keeps_the_last_revision() -> None:
    directory = WebhookDirectory()
    directory.put(hook("w", ["/items"], revision=5))
    directory.delete("w", None)
    assert directory.revision("w") == 5
    assert not directory.put(hook("w", ["/items"], revision=3))


def test_reput_after_delete() -> None:
    directory = WebhookDirectory()
    directory.put(hook("w", ["/items"], revision=5))
    directory.delete("w", 6)
    assert directory.put(hook("w", ["/groups"], revision=7))
    assert matched(directory, "groups", None, "add") == {"w": "/groups"}
    assert directory.revision("w") == 7
    assert [c.webhook_id for c in directory.all()] == ["w"]


def test_revision_of_unknown_is_minus_one() -> None:
    assert WebhookDirectory().revision("nope") == -1


def test_family_of() -> None:
    assert family_of(hook("a", ["/items"])) is TriggerFamily.PORTAL
    assert family_of(hook("b", ["ComputerAdded"])) is TriggerFamily.DEVICE


def test_revision_from_headers() -> None:
    assert revision_from_headers([(REVISION_HEADER, b"12")]) == 12
    assert revision_from_headers([("other", b"1"), (REVISION_HEADER, b"3")]) == 3
    assert revision_from_headers([(REVISION_HEADER, b"x")]) is None
    assert revision_from_headers([(REVISION_HEADER, b"\xff")]) is None
    assert revision_from_headers(None) is None
    assert revision_from_headers([]) is None


class CountingIndex(dict):  # type: ignore[type-arg]
    """The directory's index, counting the buckets consulted and the entries they held."""

    def __init__(self, source: dict[Any, Any]) -> None:
        super().__init__(source)
        self.lookups = 0
        self.entries_seen = 0

    def get(self, key: Any, default: Any = None) -> Any:
        self.lookups += 1
        bucket = super().get(key, default)
        if bucket is not None:  # a dict of webhooks, or one webhook (its id, or a _One)
            self.entries_seen += len(bucket) if isinstance(bucket, dict) else 1
        return bucket


def test_match_cost_does_not_grow_with_non_matching_webhooks() -> None:
    directory = WebhookDirectory()
    for index in range(10_000):
        directory.put(hook(f"other-{index}", [f"/items/id-{index}/update"]))
    directory.put(hook("target", ["/groups/g1/update"]))
    directory.put(hook("target-op", ["/groups/update"]))
    counting = CountingIndex(directory._index)
    directory._index = counting
    found = matched(directory, "groups", "g1", "update")
    assert found == {"target": "/groups/g1/update", "target-op": "/groups/update"}
    assert counting.lookups <= 5
    assert counting.entries_seen == 2

    counting.lookups = counting.entries_seen = 0
    assert matched(directory, "items", "id-42", "update") == {"other-42": "/items/id-42/update"}
    assert counting.lookups <= 5
    assert counting.entries_seen == 1
