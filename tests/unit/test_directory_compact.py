"""WebhookDirectory holds records, not models: decoded on access, through a bounded cache."""

from __future__ import annotations

from typing import Any

import pytest

from hookstream.core.eventtypes import EventType
from hookstream.core.triggers import TriggerFamily, parse_trigger
from hookstream.records.codec import encode
from hookstream.records.models import WebhookConfig
from hookstream.settings import Settings
from hookstream.views.catalog import EventCatalog
from hookstream.views.directory import DEFAULT_CACHE_SIZE, WebhookDirectory, _One
from hookstream.views.directory_feed import DirectoryFeed

SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"  # base64 of 24 bytes


def hook(webhook_id: str, triggers: list[str] | None = None, **overrides: Any) -> WebhookConfig:
    fields: dict[str, Any] = {
        "webhook_id": webhook_id,
        "name": webhook_id,
        "payload_url": "https://example.com/hook",
        "triggers": triggers or [f"/items/{webhook_id}/update"],
        "secret": SECRET,
        "created_at": 1,
        "modified_at": 1,
    }
    fields.update(overrides)
    return WebhookConfig(**fields)


def test_a_cold_webhook_is_decoded_from_its_record_with_its_secret() -> None:
    directory = WebhookDirectory(cache_size=2)
    config = hook("w", revision=3, numeric_id=7)
    assert directory.put(config, encode(config))
    assert directory._decoded == {}  # held as its record only
    assert directory.decodes == 0
    found = directory.get("w")
    assert found == config
    assert found is not None and found.secret is not None
    assert found.secret.get_secret_value() == SECRET
    assert directory.decodes == 1
    assert directory.get("w") is found  # now cached: no second decode
    assert directory.decodes == 1


def test_the_least_recently_used_is_dropped_from_the_cache() -> None:
    directory = WebhookDirectory(cache_size=2)
    for name in ("a", "b", "c"):
        directory.put(hook(name))
    assert directory.get("a") is not None
    assert directory.get("b") is not None
    assert directory.get("a") is not None  # a is now the most recently used
    assert directory.get("c") is not None  # pushes out b, not a
    assert list(directory._decoded) == ["a", "c"]
    decodes = directory.decodes
    assert directory.get("a") is not None
    assert directory.decodes == decodes
    assert directory.get("b") == hook("b")  # dropped from the cache, still held
    assert directory.decodes == decodes + 1
    assert len(directory._decoded) == 2
    assert len(directory) == 3


def test_put_replaces_a_cached_copy_and_leaves_a_cold_one_cold() -> None:
    directory = WebhookDirectory(cache_size=4)
    directory.put(hook("hot", revision=1))
    directory.put(hook("cold", revision=1))
    assert directory.get("hot") is not None
    newer = hook("hot", ["/groups"], revision=2)
    assert directory.put(newer)
    assert directory.get("hot") is newer  # not the stale decoded copy
    assert directory.put(hook("cold", ["/groups"], revision=2))
    assert "cold" not in directory._decoded
    cold = directory.get("cold")
    assert cold is not None and cold.triggers == ["/groups"] and cold.revision == 2


def test_revisions_and_tombstones_without_decoding() -> None:
    directory = WebhookDirectory(cache_size=1)
    directory.put(hook("w", revision=5))
    assert not directory.put(hook("w", ["/groups"], revision=4))
    assert directory.revision("w") == 5
    assert not directory.delete("w", 4)
    assert directory.delete("w", 6)
    assert "w" not in directory
    assert directory.get("w") is None
    assert directory.revision("w") == 6
    assert not directory.put(hook("w", revision=5))  # a late copy never rolls back
    assert directory.match("items", "w", "update") == []
    assert directory.decodes == 0


def test_a_deleted_webhook_leaves_the_cache() -> None:
    directory = WebhookDirectory(cache_size=4)
    directory.put(hook("w", revision=1))
    assert directory.get("w") is not None
    assert directory.delete("w", None)
    assert "w" not in directory._decoded
    assert directory.get("w") is None
    assert directory.revision("w") == 1


def test_match_decodes_only_the_configs_read() -> None:
    directory = WebhookDirectory(cache_size=8)
    for index in range(20):
        directory.put(hook(f"w{index}"))
    (found,) = directory.match("items", "w3", "update")
    assert (found.webhook_id, found.trigger.text) == ("w3", "/items/w3/update")
    assert directory.decodes == 0
    assert found.webhook.name == "w3"
    assert directory.decodes == 1
    directory.delete("w3", None)
    with pytest.raises(LookupError, match="'w3' was deleted after the event matched it"):
        _ = found.webhook


def test_all_decodes_every_config_without_flushing_the_cache() -> None:
    directory = WebhookDirectory(cache_size=2)
    for index in range(10):
        directory.put(hook(f"w{index}", revision=index))
    assert directory.get("w9") is not None
    listed = directory.all()
    assert not isinstance(listed, list)  # one at a time: a large directory is never copied
    assert sorted(config.webhook_id for config in listed) == [f"w{i}" for i in range(10)]
    assert list(directory._decoded) == ["w9"]


def test_refresh_reads_the_triggers_of_cold_webhooks() -> None:
    held = EventCatalog()
    directory = WebhookDirectory(held.lenient(), cache_size=1)
    directory.put(hook("w", ["/orders/paid"]))
    directory.put(hook("other"))
    assert [m.webhook_id for m in directory.match("orders", "o-1", "paid")] == ["w"]
    assert directory.get("other") is not None  # w is not cached
    held.put(EventType(source="orders", operation="created"))
    assert directory.refresh("orders") == 1
    # orders without a type paid: /orders/paid is the order with id paid.
    assert directory.match("orders", "o-1", "paid") == []
    assert [m.webhook_id for m in directory.match("orders", "paid", "created")] == ["w"]


def test_numeric_ids_without_decoding() -> None:
    directory = WebhookDirectory(cache_size=1)
    directory.put(hook("a", numeric_id=3))
    directory.put(hook("b"))
    directory.put(hook("c", numeric_id=5))
    directory.delete("c", None)
    assert directory.numeric_ids() == [3]
    assert directory.decodes == 0


def test_an_unbounded_directory_keeps_every_config_decoded_and_no_record() -> None:
    directory = WebhookDirectory(cache_size=None)
    config = hook("w")
    directory.put(config, encode(config))
    assert directory.get("w") is config
    assert directory._held["w"].record is None
    assert [c.webhook_id for c in directory.all()] == ["w"]
    assert directory.decodes == 0


def test_a_cache_needs_room_for_one() -> None:
    with pytest.raises(ValueError, match="cache_size must be at least 1"):
        WebhookDirectory(cache_size=0)


def test_the_default_cache_is_the_setting_default() -> None:
    assert Settings().directory_cache_size == DEFAULT_CACHE_SIZE


class _Record:
    """The fields of a consumer record the feed reads."""

    def __init__(self, key: bytes, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        self.key, self.value, self.headers = key, value, headers
        self.topic, self.partition, self.offset = "webhooks", 0, 0


def test_the_feed_keeps_the_record_it_read() -> None:
    directory = WebhookDirectory(cache_size=4)
    feed = DirectoryFeed(directory, "127.0.0.1:9", "webhooks", "test")
    value = encode(hook("w", revision=2))
    feed.apply(_Record(b"w", value, []))
    assert directory._held["w"].record is value
    assert directory._decoded == {}
    feed.apply(_Record(b"w", None, [("hookstream-revision", b"3")]))
    assert directory.get("w") is None
    assert directory.revision("w") == 3


def test_webhooks_on_the_same_trigger_share_one_parsed_trigger() -> None:
    directory = WebhookDirectory()
    directory.put(hook("a", ["/users/signin"]))
    directory.put(hook("b", ["/users/signIn"]))
    directory.put(hook("c", ["/users/signin"]))
    (a,), (b,), (c,) = (directory.triggers(name) for name in "abc")
    assert a is c
    assert b.text == "/users/signIn" and b.key is a.key
    assert {m.webhook_id: m.trigger.text for m in directory.match("users", "u", "signin")} == {
        "a": "/users/signin",
        "b": "/users/signIn",
        "c": "/users/signin",
    }
    directory.delete("a", None)
    directory.put(hook("d", ["/users/signin"]))
    assert directory.triggers("d") == [a]


def test_a_bucket_of_one_grows_and_shrinks_with_its_webhooks() -> None:
    directory = WebhookDirectory()
    directory.put(hook("a", ["/items/x/update"]))
    directory.put(hook("b", ["/items/x/update"]))
    assert [m.webhook_id for m in directory.match("items", "x", "update")] == ["a", "b"]
    directory.put(hook("a", ["/items/x/update", "/items/x/Update"], revision=1))  # same key twice
    assert sorted(m.webhook_id for m in directory.match("items", "x", "update")) == ["a", "b"]
    assert directory.delete("b", None)
    assert [m.trigger.text for m in directory.match("items", "x", "update")] == ["/items/x/Update"]
    assert directory.delete("a", None)
    assert directory.match("items", "x", "update") == []
    assert directory._index == {}


def test_a_bucket_of_one_holds_no_text_spelled_as_its_key() -> None:
    directory = WebhookDirectory()
    directory.put(hook("a", ["/items/x/update", "/users/y", "/groups/g/Updated"]))
    directory.put(hook("b", ["ComputerAdded"]))
    directory.put(hook("c", ["/"]))
    buckets = {key.resource_id + key.operation: bucket for key, bucket in directory._index.items()}
    # A trigger spelled as its key is built again from it: the bucket is the webhook's id.
    assert buckets["xupdate"] == buckets["y*"] == "a"
    assert buckets["**"] == "c"  # "/" is the spelling of the wildcard key
    kept = buckets["gupdate"]  # not the key's spelling: its trigger is held
    assert isinstance(kept, _One) and kept.trigger.text == "/groups/g/Updated"
    device = buckets["*add"]
    assert isinstance(device, _One) and device.trigger.family is TriggerFamily.DEVICE
    assert {m.webhook_id: m.trigger.text for m in directory.match("items", "x", "update")} == {
        "a": "/items/x/update",
        "c": "/",
    }
    assert [m.trigger for m in directory.match("groups", "g", "update")][1] == parse_trigger(
        "/groups/g/Updated"
    )
    assert [t.text for t in directory.triggers("b")] == ["ComputerAdded"]


def test_a_webhook_keeps_the_keys_of_its_triggers_beside_its_record() -> None:
    directory = WebhookDirectory()
    config = hook("w", ["/items/x/update", "/users/signin"], revision=2, numeric_id=9)
    record = encode(config)
    directory.put(config, record)
    held = directory._held["w"]
    assert (held.revision, held.numeric_id, held.record) == (2, 9, record)
    assert [key.resource_id for key in held.keys] == ["x", "*"]
    directory.put(hook("w", ["/users/signin"], revision=3, active=False))
    assert directory._held["w"].keys == ()
    assert directory._index == {}


def test_holds_says_whether_a_record_is_the_one_held_for_its_key() -> None:
    directory = WebhookDirectory()
    config = hook("w")
    record = encode(config)
    directory.put(config, record)
    assert directory.holds(b"w", bytes(bytearray(record)))  # equal bytes, another object
    assert not directory.holds(b"w", encode(hook("w", revision=1)))
    assert not directory.holds(b"other", record)
    assert not directory.holds(None, record)
    assert not WebhookDirectory(cache_size=None).holds(b"w", record)  # holds no records
