"""Every webhook config, live: an in-memory view of the compacted config topic with a trigger index.

Each service that needs configs (matcher, registry, sender) keeps its own ``WebhookDirectory``,
fed by ``DirectoryFeed``: a ``CompactedFeed`` that reads every partition of the config topic from
the beginning and then follows it. Writes are applied only when their revision is not older
than what the directory holds, so a late copy of an old record never rolls a webhook back.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

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
from hookstream.records.codec import decode
from hookstream.records.models import WebhookConfig
from hookstream.records.secretbox import secret_box
from hookstream.settings import KafkaSecuritySettings

log = logging.getLogger(__name__)

#: Header carrying the revision of a config record (and of a tombstone, which has no value).
REVISION_HEADER = "hookstream-revision"


@dataclass(frozen=True, slots=True)
class Match:
    """A webhook that an event matched, with the trigger that matched it."""

    webhook: WebhookConfig
    trigger: Trigger


class WebhookDirectory:
    """Configs by id and an index from trigger key to the active webhooks subscribed under it.

    Catalog triggers are read with ``vocabulary`` (the catalog, lenient about what it does not
    know yet): ``/orders/created`` is the type ``created`` once the catalog declares it, an
    order's id before. ``refresh(source)`` re-reads the triggers on a source whose types changed.
    """

    def __init__(self, vocabulary: Vocabulary = OPEN_VOCABULARY) -> None:
        self._vocabulary = vocabulary
        self._configs: dict[str, WebhookConfig] = {}
        self._triggers: dict[str, list[Trigger]] = {}
        self._deleted_revision: dict[str, int] = {}
        self._index: dict[TriggerKey, dict[str, Trigger]] = {}
        self._on_source: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._configs)

    def get(self, webhook_id: str) -> WebhookConfig | None:
        return self._configs.get(webhook_id)

    def all(self) -> list[WebhookConfig]:
        return list(self._configs.values())

    def revision(self, webhook_id: str) -> int:
        """The revision of the newest write seen for this id, deleted or not (-1 if none)."""
        config = self._configs.get(webhook_id)
        if config is not None:
            return config.revision
        return self._deleted_revision.get(webhook_id, -1)

    def put(self, config: WebhookConfig) -> bool:
        """Hold a config unless an equal-or-newer revision is held; True if applied."""
        if config.revision < self.revision(config.webhook_id):
            return False
        self._unindex(config.webhook_id)
        self._deleted_revision.pop(config.webhook_id, None)
        self._configs[config.webhook_id] = config
        if config.active:
            self._index_config(config)
        return True

    def _index_config(self, config: WebhookConfig) -> None:
        triggers = parse_triggers(config.triggers, config.smart_group_id, self._vocabulary)
        self._triggers[config.webhook_id] = triggers
        for trigger in triggers:
            self._index.setdefault(trigger.key, {})[config.webhook_id] = trigger
            if trigger.family is TriggerFamily.CATALOG:
                self._on_source.setdefault(trigger.key.source, set()).add(config.webhook_id)

    def refresh(self, source: str) -> int:
        """Re-read the triggers of the webhooks on a catalog source; the number re-read."""
        webhook_ids = list(self._on_source.get(source, ()))
        for webhook_id in webhook_ids:
            config = self._configs.get(webhook_id)
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
        self._configs.pop(webhook_id, None)
        self._deleted_revision[webhook_id] = previous if revision is None else revision
        return True

    def _unindex(self, webhook_id: str) -> None:
        for trigger in self._triggers.pop(webhook_id, []):
            on_source = self._on_source.get(trigger.key.source)
            if on_source is not None:
                on_source.discard(webhook_id)
                if not on_source:
                    del self._on_source[trigger.key.source]
            bucket = self._index.get(trigger.key)
            if bucket is not None:
                bucket.pop(webhook_id, None)
                if not bucket:
                    del self._index[trigger.key]

    def match(self, source: str, resource_id: str | None, operation: str) -> list[Match]:
        """The active webhooks subscribed to this event, each once, by its most specific trigger."""
        found: dict[str, Trigger] = {}
        for key in event_lookup_keys(source, resource_id, operation):
            for webhook_id, trigger in self._index.get(key, {}).items():
                found[webhook_id] = trigger  # keys go from general to specific
        return [Match(self._configs[webhook_id], trigger) for webhook_id, trigger in found.items()]


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
        self.directory.put(config)

    def caught_up(self) -> None:
        # Webhooks whose secret no key decrypts were skipped as damaged; if that is every one
        # with a secret, the keys are wrong and the view would silently lack them all: stop.
        secret_box().check_keys()
        log.info("webhook directory caught up: %d webhooks", len(self.directory))
