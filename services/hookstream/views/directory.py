"""Every webhook config, live: an in-memory view of the compacted config topic with a trigger index.

Each service that needs configs (matcher, registry, sender) keeps its own ``WebhookDirectory``,
fed by ``DirectoryFeed``: a ``CompactedFeed`` that reads every partition of the config topic from
the beginning and then follows it. Writes are applied only when their revision is not older
than what the directory holds, so a late copy of an old record never rolls a webhook back.

A config is held as the record the topic holds, decoded on access through a small cache of the
recently used ones: 100,000 webhooks fit in a process's memory budget (docs/operations.md,
"Sizing").
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from hookstream.core.errors import DecodeError
from hookstream.core.triggers import (
    OPEN_VOCABULARY,
    Trigger,
    TriggerFamily,
    TriggerKey,
    Vocabulary,
    event_lookup_keys,
    parse_triggers,
    webhook_family,
)
from hookstream.kafka.follower import CompactedFeed
from hookstream.records.codec import decode, encode
from hookstream.records.models import WebhookConfig
from hookstream.records.secretbox import secret_box
from hookstream.settings import KafkaSecuritySettings

log = logging.getLogger(__name__)

#: Header carrying the revision of a config record (and of a tombstone, which has no value).
REVISION_HEADER = "hookstream-revision"


#: Decoded configs a directory keeps by default (``HOOKSTREAM_DIRECTORY_CACHE_SIZE``).
DEFAULT_CACHE_SIZE = 4096


class _Held(NamedTuple):
    """What a directory keeps of each config: the record as the topic holds it (about 400 bytes
    where the decoded model takes about 5 KiB), and the fields it answers without decoding."""

    revision: int
    numeric_id: int | None
    record: bytes | None  # None: the config is pinned decoded (a directory without a bound)


class Match:
    """A webhook that an event matched, with the trigger that matched it.

    The config is decoded only when ``webhook`` is read: routing an event needs only the id and
    the trigger, and a cold webhook's decode costs more than the rest of its job."""

    __slots__ = ("_directory", "trigger", "webhook_id")

    def __init__(self, directory: WebhookDirectory, webhook_id: str, trigger: Trigger) -> None:
        self._directory = directory
        self.webhook_id = webhook_id
        self.trigger = trigger

    @property
    def webhook(self) -> WebhookConfig:
        config = self._directory.get(self.webhook_id)
        if config is None:
            raise LookupError(f"webhook {self.webhook_id!r} was deleted after the event matched it")
        return config

    def __repr__(self) -> str:
        return f"Match({self.webhook_id!r}, {self.trigger.text!r})"


class WebhookDirectory:
    """Configs by id and an index from trigger key to the active webhooks subscribed under it.

    Each config is held as its encoded record; the ``cache_size`` most recently read are also
    kept decoded (least recently used dropped first), so a hot webhook costs no decode and the
    directory's size is about its records, not its models. ``cache_size=None`` keeps every
    config decoded and no records (the admin API lists and filters them all).

    Catalog triggers are read with ``vocabulary`` (the catalog, lenient about what it does not
    know yet): ``/orders/created`` is the type ``created`` once the catalog declares it, an
    order's id before. ``refresh(source)`` re-reads the triggers on a source whose types changed.
    """

    def __init__(
        self, vocabulary: Vocabulary = OPEN_VOCABULARY, cache_size: int | None = DEFAULT_CACHE_SIZE
    ) -> None:
        if cache_size is not None and cache_size < 1:
            raise ValueError(
                f"cache_size must be at least 1 (or None for no bound), not {cache_size}"
            )
        self._vocabulary = vocabulary
        self._cache_size = cache_size
        self._held: dict[str, _Held] = {}
        self._decoded: OrderedDict[str, WebhookConfig] = OrderedDict()
        self._triggers: dict[str, tuple[Trigger, ...]] = {}
        self._deleted_revision: dict[str, int] = {}
        self._index: dict[TriggerKey, dict[str, Trigger] | _One] = {}
        self._on_source: dict[str, set[str]] = {}
        self.decodes = 0

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, webhook_id: object) -> bool:
        return webhook_id in self._held

    def get(self, webhook_id: str) -> WebhookConfig | None:
        """The config of a webhook, decoded from its record unless it is among the recent ones."""
        config = self._decoded.get(webhook_id)
        if config is not None:
            if self._cache_size is not None:
                self._decoded.move_to_end(webhook_id)
            return config
        held = self._held.get(webhook_id)
        if held is None or held.record is None:
            return None
        config = self._decode(held.record)
        self._remember(webhook_id, config)
        return config

    def _decode(self, record: bytes) -> WebhookConfig:
        self.decodes += 1
        return decode(record, WebhookConfig)

    def _remember(self, webhook_id: str, config: WebhookConfig) -> None:
        self._decoded[webhook_id] = config
        if self._cache_size is not None and len(self._decoded) > self._cache_size:
            self._decoded.popitem(last=False)

    def all(self) -> Iterator[WebhookConfig]:
        """Every config, one at a time: a bounded directory decodes each one it has not cached
        (a list of a large directory costs a decode per webhook) without pushing the hot ones
        out of its cache."""
        for webhook_id, held in list(self._held.items()):
            config = self._decoded.get(webhook_id)
            if config is None and held.record is not None:
                config = self._decode(held.record)
            if config is not None:
                yield config

    def numeric_ids(self) -> list[int]:
        """The numeric ids handed out to the webhooks held, without decoding them."""
        return [held.numeric_id for held in self._held.values() if held.numeric_id is not None]

    def revision(self, webhook_id: str) -> int:
        """The revision of the newest write seen for this id, deleted or not (-1 if none)."""
        held = self._held.get(webhook_id)
        if held is not None:
            return held.revision
        return self._deleted_revision.get(webhook_id, -1)

    def put(self, config: WebhookConfig, record: bytes | None = None) -> bool:
        """Hold a config unless an equal-or-newer revision is held; True if applied.

        ``record`` is the config's encoding if the caller has it (read from the topic, or about
        to be written to it); without it a bounded directory encodes the config itself."""
        webhook_id = config.webhook_id
        if config.revision < self.revision(webhook_id):
            return False
        if self._cache_size is None:
            record = None
        elif record is None:
            record = encode(config)
        self._unindex(webhook_id)
        self._deleted_revision.pop(webhook_id, None)
        self._held[webhook_id] = _Held(config.revision, config.numeric_id, record)
        if record is None or webhook_id in self._decoded:
            # A stale decoded copy is replaced; a cold webhook stays cold (a catch-up of the
            # whole topic would otherwise churn the cache through every config).
            self._decoded[webhook_id] = config
        if config.active:
            self._index_config(config)
        return True

    def _index_config(self, config: WebhookConfig) -> None:
        triggers = parse_triggers(config.triggers, config.smart_group_id, self._vocabulary)
        for position, trigger in enumerate(triggers):
            webhook_id = config.webhook_id
            bucket = self._index.get(trigger.key)
            if bucket is None:
                triggers[position] = trigger = _compact(trigger)
                self._index[trigger.key] = _One(webhook_id, trigger)
            else:
                triggers[position] = trigger = _shared(trigger, bucket)
                if isinstance(bucket, dict):
                    bucket[webhook_id] = trigger
                elif bucket.webhook_id == webhook_id:
                    bucket.trigger = trigger
                else:
                    self._index[trigger.key] = {
                        bucket.webhook_id: bucket.trigger,
                        webhook_id: trigger,
                    }
            if trigger.family is TriggerFamily.CATALOG:
                self._on_source.setdefault(trigger.key.source, set()).add(webhook_id)
        self._triggers[config.webhook_id] = tuple(triggers)

    def refresh(self, source: str) -> int:
        """Re-read the triggers of the webhooks on a catalog source; the number re-read."""
        webhook_ids = list(self._on_source.get(source, ()))
        for webhook_id in webhook_ids:
            config = self.get(webhook_id)
            self._unindex(webhook_id)
            if config is not None and config.active:
                self._index_config(config)
        return len(webhook_ids)

    def delete(self, webhook_id: str, revision: int | None) -> bool:
        """Forget a webhook; a tombstone without a revision always applies. True if applied."""
        previous = self.revision(webhook_id)
        if revision is not None and revision < previous:
            return False
        self._unindex(webhook_id)
        self._held.pop(webhook_id, None)
        self._decoded.pop(webhook_id, None)
        self._deleted_revision[webhook_id] = previous if revision is None else revision
        return True

    def _unindex(self, webhook_id: str) -> None:
        for trigger in self._triggers.pop(webhook_id, ()):
            on_source = self._on_source.get(trigger.key.source)
            if on_source is not None:
                on_source.discard(webhook_id)
                if not on_source:
                    del self._on_source[trigger.key.source]
            bucket = self._index.get(trigger.key)
            if isinstance(bucket, _One):
                if bucket.webhook_id == webhook_id:
                    del self._index[trigger.key]
            elif bucket is not None:
                bucket.pop(webhook_id, None)
                if len(bucket) == 1:
                    ((other, kept),) = bucket.items()
                    self._index[trigger.key] = _One(other, kept)

    def match(self, source: str, resource_id: str | None, operation: str) -> list[Match]:
        """The active webhooks subscribed to this event, each once, by its most specific trigger;
        their configs are decoded only if read (``Match.webhook``)."""
        found: dict[str, Trigger] = {}
        for key in event_lookup_keys(source, resource_id, operation):
            for webhook_id, trigger in self._index.get(key, {}).items():
                found[webhook_id] = trigger  # keys go from general to specific
        return [Match(self, webhook_id, trigger) for webhook_id, trigger in found.items()]


class _One:
    """An index bucket of one webhook, as most are (a webhook on one item, one user): a dict of
    one entry costs four times as much. Reads like the dict it becomes when a second joins."""

    __slots__ = ("trigger", "webhook_id")

    def __init__(self, webhook_id: str, trigger: Trigger) -> None:
        self.webhook_id = webhook_id
        self.trigger = trigger

    def __len__(self) -> int:
        return 1

    def items(self) -> tuple[tuple[str, Trigger]]:
        return ((self.webhook_id, self.trigger),)

    def values(self) -> tuple[Trigger]:
        return (self.trigger,)


def _compact(trigger: Trigger) -> Trigger:
    """A trigger whose source and operation are the interpreter's one copy of those words: a
    parse makes new strings, and 100,000 webhooks on ``items`` and ``update`` need not hold
    100,000 copies of each."""
    key = trigger.key
    return Trigger(
        trigger.text,
        trigger.family,
        TriggerKey(sys.intern(key.source), key.resource_id, sys.intern(key.operation)),
    )


def _shared(trigger: Trigger, bucket: dict[str, Trigger] | _One) -> Trigger:
    """The trigger another webhook in the same bucket already holds, if equal (``/users/signin``
    of many webhooks is one object), else this one on the bucket's key."""
    held = next(iter(bucket.values()), None)
    if held is None:
        return _compact(trigger)
    if held == trigger:
        return held
    return Trigger(trigger.text, trigger.family, held.key)


def family_of(config: WebhookConfig) -> TriggerFamily:
    """The payload family of a webhook (all its triggers are of one family)."""
    return _family(tuple(config.triggers), config.smart_group_id)


@functools.lru_cache(maxsize=4096)
def _family(triggers: tuple[str, ...], smart_group_id: str | None) -> TriggerFamily:
    """Parsing triggers costs more than a delivery's other bookkeeping; configs repeat."""
    return webhook_family(parse_triggers(list(triggers), smart_group_id, OPEN_VOCABULARY))


def revision_from_headers(headers: Iterable[tuple[str, bytes]] | None) -> int | None:
    """The revision header of a record, if it has a readable one."""
    for name, value in headers or ():
        if name == REVISION_HEADER:
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                return int(value.decode())
    return None


class DirectoryFeed(CompactedFeed):
    """Keeps a ``WebhookDirectory`` in step with the config topic; ``ready`` once caught up."""

    def __init__(
        self,
        directory: WebhookDirectory,
        bootstrap: str,
        topic: str,
        client_id: str,
        security: KafkaSecuritySettings | None = None,
    ) -> None:
        super().__init__(bootstrap, topic, client_id, security=security)
        self.directory = directory
        self.undecodable = 0

    def apply(self, record: Any) -> None:
        if record.value is None:
            if record.key is not None:
                webhook_id = record.key.decode("utf-8", "replace")
                self.directory.delete(webhook_id, revision_from_headers(record.headers))
            return
        try:
            config = decode(record.value, WebhookConfig)
        except DecodeError as exc:
            self.undecodable += 1
            log.error(
                "skipping undecodable webhook config at %s[%d]@%d: %s",
                record.topic,
                record.partition,
                record.offset,
                exc,
            )
            return
        self.directory.put(config, record.value)

    def caught_up(self) -> None:
        # Webhooks whose secret no key decrypts were skipped as damaged; if that is every one
        # with a secret, the keys are wrong and the view would silently lack them all: stop.
        secret_box().check_keys()
        log.info("webhook directory caught up: %d webhooks", len(self.directory))
