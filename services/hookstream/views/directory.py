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

import functools
import logging
import sys
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any, cast

from hookstream.core.triggers import (
    OPEN_VOCABULARY,
    PORTAL_OPERATIONS,
    WILDCARD,
    Trigger,
    TriggerFamily,
    TriggerKey,
    Vocabulary,
    event_lookup_keys,
    parse_triggers,
    webhook_family,
)
from hookstream.records.codec import decode, encode
from hookstream.records.models import WebhookConfig

log = logging.getLogger(__name__)

#: Header carrying the revision of a config record (and of a tombstone, which has no value).
REVISION_HEADER = "hookstream-revision"


#: Decoded configs a directory keeps by default (``HOOKSTREAM_DIRECTORY_CACHE_SIZE``).
DEFAULT_CACHE_SIZE = 4096


class _Held(tuple[Any, ...]):
    """What a directory keeps of each config, as one flat tuple ``(revision, numeric_id, record,
    *keys)``: the record as the topic holds it (about 400 bytes where the decoded model takes
    about 5 KiB), the fields it answers without decoding, and the index keys of its triggers (to
    take them out again). A named tuple and a tuple of keys beside it cost 100 bytes more."""

    __slots__ = ()

    def __new__(
        cls,
        revision: int,
        numeric_id: int | None,
        record: bytes | None,  # None: pinned decoded (a directory without a bound)
        keys: Iterable[TriggerKey] = (),
    ) -> _Held:
        return super().__new__(cls, (revision, numeric_id, record, *keys))

    @property
    def revision(self) -> int:
        return cast(int, self[0])

    @property
    def numeric_id(self) -> int | None:
        return cast("int | None", self[1])

    @property
    def record(self) -> bytes | None:
        return cast("bytes | None", self[2])

    @property
    def keys(self) -> tuple[TriggerKey, ...]:
        return cast("tuple[TriggerKey, ...]", self[3:])


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
        self._deleted_revision: dict[str, int] = {}
        self._index: dict[TriggerKey, _Bucket] = {}
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

    def holds(self, key: bytes | None, record: bytes) -> bool:
        """Whether this record (key and value as the topic holds them) is the one held for its
        webhook: it decoded when the directory read it, and need not be decoded again to know."""
        if key is None:
            return False
        held = self._held.get(key.decode("utf-8", "replace"))
        return held is not None and held.record == record

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
        keys = self._index_config(config) if config.active else ()
        self._held[webhook_id] = _Held(config.revision, config.numeric_id, record, keys)
        if record is None or webhook_id in self._decoded:
            # A stale decoded copy is replaced; a cold webhook stays cold (a catch-up of the
            # whole topic would otherwise churn the cache through every config).
            self._decoded[webhook_id] = config
        return True

    def _index_config(self, config: WebhookConfig) -> list[TriggerKey]:
        """Index an active config's triggers; the keys they went under."""
        webhook_id = config.webhook_id
        keys = []
        for parsed in parse_triggers(config.triggers, config.smart_group_id, self._vocabulary):
            bucket = self._index.get(parsed.key)
            if bucket is None:
                trigger = _compact(parsed)
                self._index[trigger.key] = _single(webhook_id, trigger)
            elif isinstance(bucket, dict):
                trigger = _shared(parsed, next(iter(bucket.values())))
                bucket[webhook_id] = trigger
            else:
                other, held = _lone(bucket, parsed.key)
                trigger = _shared(parsed, held)
                if other == webhook_id:
                    self._index[trigger.key] = _single(webhook_id, trigger)
                else:
                    self._index[trigger.key] = {other: held, webhook_id: trigger}
            if trigger.family is TriggerFamily.CATALOG:
                self._on_source.setdefault(trigger.key.source, set()).add(webhook_id)
            keys.append(trigger.key)
        return keys

    def triggers(self, webhook_id: str) -> list[Trigger]:
        """The indexed triggers of a webhook (none if it is inactive or unknown)."""
        held = self._held.get(webhook_id)
        found = []
        for key in held.keys if held is not None else ():
            bucket = self._index[key]
            if isinstance(bucket, dict):
                found.append(bucket[webhook_id])
            else:
                found.append(_lone(bucket, key)[1])
        return found

    def refresh(self, source: str) -> int:
        """Re-read the triggers of the webhooks on a catalog source; the number re-read."""
        webhook_ids = list(self._on_source.get(source, ()))
        for webhook_id in webhook_ids:
            config = self.get(webhook_id)
            self._unindex(webhook_id)
            held = self._held.get(webhook_id)
            if config is not None and held is not None:
                keys = self._index_config(config) if config.active else ()
                self._held[webhook_id] = _Held(held.revision, held.numeric_id, held.record, keys)
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
        """Take a webhook's triggers out of the index (its held keys stay until replaced)."""
        held = self._held.get(webhook_id)
        for key in held.keys if held is not None else ():
            on_source = self._on_source.get(key.source)
            if on_source is not None:
                on_source.discard(webhook_id)
                if not on_source:
                    del self._on_source[key.source]
            bucket = self._index.get(key)
            if isinstance(bucket, dict):
                bucket.pop(webhook_id, None)
                if len(bucket) == 1:
                    ((other, kept),) = bucket.items()
                    self._index[key] = _single(other, kept)
            elif bucket is not None and _lone(bucket, key)[0] == webhook_id:
                del self._index[key]

    def match(self, source: str, resource_id: str | None, operation: str) -> list[Match]:
        """The active webhooks subscribed to this event, each once, by its most specific trigger;
        their configs are decoded only if read (``Match.webhook``)."""
        found: dict[str, Trigger] = {}
        index = self._index
        for key in event_lookup_keys(source, resource_id, operation):
            # Keys go from general to specific: a later trigger of a webhook replaces one before.
            bucket = index.get(key)
            if bucket is None:
                continue
            if isinstance(bucket, dict):
                found.update(bucket)
            else:
                webhook_id, trigger = _lone(bucket, key)
                found[webhook_id] = trigger
        return [Match(self, webhook_id, trigger) for webhook_id, trigger in found.items()]


class _One:
    """An index bucket of one webhook whose trigger is not spelled as its key says
    (``/users/signIn``, ``ComputerAdded``): a dict of one entry costs four times as much."""

    __slots__ = ("trigger", "webhook_id")

    def __init__(self, webhook_id: str, trigger: Trigger) -> None:
        self.webhook_id = webhook_id
        self.trigger = trigger


#: An index bucket: the id of its one webhook when its trigger is the key's own spelling (most
#: are: a webhook on one item, one user), else a ``_One``, or a dict once a second webhook joins.
_Bucket = str | _One | dict[str, Trigger]


def _single(webhook_id: str, trigger: Trigger) -> str | _One:
    """The bucket of one webhook: its bare id when its trigger can be built again from the key
    (``/items/item7/update``: no text, no ``Trigger`` held for each of 100,000 such webhooks)."""
    key = trigger.key
    if trigger.text == _spelling(key) and trigger.family is _uri_family(key):
        return webhook_id
    return _One(webhook_id, trigger)


def _lone(bucket: str | _One, key: TriggerKey) -> tuple[str, Trigger]:
    """The webhook of a bucket of one and its trigger (built again from the key if not held)."""
    if isinstance(bucket, str):
        family = TriggerFamily.CATALOG
        if key.source in PORTAL_OPERATIONS or key.source == WILDCARD:
            family = TriggerFamily.PORTAL
        return bucket, Trigger(_spelling(key), family, key)
    return bucket.webhook_id, bucket.trigger


def _uri_family(key: TriggerKey) -> TriggerFamily:
    """The family of a trigger URI parsed into this key: portal on a portal collection (or on
    everything), catalog on any other source."""
    if key.source == WILDCARD or key.source in PORTAL_OPERATIONS:
        return TriggerFamily.PORTAL
    return TriggerFamily.CATALOG


def _spelling(key: TriggerKey) -> str:
    """The trigger URI that a key is the parse of, in its canonical spelling."""
    source, resource_id, operation = key.source, key.resource_id, key.operation
    if resource_id != WILDCARD:
        if operation == WILDCARD:
            return f"/{source}/{resource_id}"
        return f"/{source}/{resource_id}/{operation}"
    if source == WILDCARD:
        return "/"  # the operation is a wildcard too: a trigger URI cannot say otherwise
    if operation == WILDCARD:
        return f"/{source}"
    return f"/{source}/{operation}"


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


def _shared(trigger: Trigger, held: Trigger) -> Trigger:
    """The trigger another webhook in the same bucket holds (``held``), if equal
    (``/users/signin`` of many webhooks is one object), else this one on the bucket's key."""
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
