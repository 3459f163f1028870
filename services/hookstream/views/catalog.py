"""The event-type catalog, live: a view of the compacted event-types topic.

Administrators declare event types (``hookstream.core.eventtypes.EventType``) through the admin API;
each is a record keyed by its name, a tombstone removes it. Every service that needs the catalog
(the matcher for triggers and JSON Schemas, the admin for validation and listing) follows the
topic with a ``CatalogFeed``. The catalog is also the ``Vocabulary`` of catalog triggers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

import jsonschema

from hookstream.core.errors import DecodeError
from hookstream.core.eventtypes import EventType, type_name
from hookstream.core.triggers import (
    DEVICE_EVENTS,
    PORTAL_OPERATIONS,
    Vocabulary,
    normalize_operation,
    normalize_source,
)
from hookstream.kafka.follower import CompactedFeed
from hookstream.records.codec import decode
from hookstream.settings import KafkaSecuritySettings

log = logging.getLogger(__name__)


class EventCatalog:
    """Declared event types by name, with their compiled JSON Schemas and the sources' types."""

    open = False

    def __init__(self) -> None:
        self._types: dict[str, EventType] = {}
        self._operations: dict[str, frozenset[str]] = {}
        self._validators: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self._types)

    def get(self, source: str, operation: str) -> EventType | None:
        return self._types.get(type_name(source, operation))

    def all(self) -> list[EventType]:
        return sorted(self._types.values(), key=lambda t: t.name)

    def put(self, event_type: EventType) -> None:
        name = event_type.name
        self._types[name] = event_type
        if event_type.json_schema is not None:
            validator_class = jsonschema.validators.validator_for(event_type.json_schema)
            self._validators[name] = validator_class(event_type.json_schema)
        else:
            self._validators.pop(name, None)
        self._reindex(normalize_source(event_type.source))

    def delete(self, name: str) -> EventType | None:
        removed = self._types.pop(name, None)
        self._validators.pop(name, None)
        if removed is not None:
            self._reindex(normalize_source(removed.source))
        return removed

    def _reindex(self, source: str) -> None:
        operations = frozenset(
            normalize_operation(t.operation)
            for t in self._types.values()
            if normalize_source(t.source) == source
        )
        if operations:
            self._operations[source] = operations
        else:
            self._operations.pop(source, None)

    # -- Vocabulary --------------------------------------------------------------------------

    def operations(self, source: str) -> frozenset[str] | None:
        return self._operations.get(source)

    def sources(self) -> Collection[str]:
        return self._operations.keys()

    def lenient(self) -> Vocabulary:
        """This catalog, but accepting undeclared sources and types (for reading records)."""
        return _Lenient(self)

    # -- JSON Schemas ------------------------------------------------------------------------

    def check(self, source: str, operation: str, properties: dict[str, Any]) -> str | None:
        """How an event breaks its type's JSON Schema (path and message), or None."""
        validator = self._validators.get(type_name(source, operation))
        if validator is None:
            return None
        error = jsonschema.exceptions.best_match(validator.iter_errors(properties))
        if error is None:
            return None
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        return f"properties at {where}: {error.message}"


class _Lenient:
    open = True

    def __init__(self, catalog: EventCatalog) -> None:
        self._catalog = catalog

    def operations(self, source: str) -> frozenset[str] | None:
        return self._catalog.operations(source)

    def sources(self) -> Collection[str]:
        return self._catalog.sources()


def builtin_types() -> list[dict[str, str]]:
    """The built-in vocabularies as catalog-like entries, for listing beside declared types."""
    entries = [
        {
            "name": f"{collection}.{operation}",
            "source": collection,
            "operation": operation,
            "family": "portal",
            "trigger": f"/{collection}/{operation}",
        }
        for collection, operations in PORTAL_OPERATIONS.items()
        for operation in operations
    ]
    entries += [
        {
            "name": name,
            "source": source,
            "operation": operation,
            "family": "device",
            "trigger": name,
        }
        for name, (source, operation) in DEVICE_EVENTS.items()
    ]
    return entries


class CatalogFeed(CompactedFeed):
    """Keeps an ``EventCatalog`` in step with the event-types topic; ``on_change`` gets the
    source whose types changed (the directory re-reads the triggers on it)."""

    def __init__(
        self,
        catalog: EventCatalog,
        bootstrap: str,
        topic: str,
        client_id: str,
        security: KafkaSecuritySettings | None = None,
        on_change: Callable[[str], object] | None = None,
    ) -> None:
        super().__init__(bootstrap, topic, client_id, security=security)
        self.catalog = catalog
        self.undecodable = 0
        self._on_change = on_change

    def apply(self, record: Any) -> None:
        if record.value is None:
            if record.key is not None:
                removed = self.catalog.delete(record.key.decode("utf-8", "replace"))
                if removed is not None:
                    self._changed(normalize_source(removed.source))
            return
        try:
            event_type = decode(record.value, EventType)
        except DecodeError as exc:
            self.undecodable += 1
            log.error(
                "skipping undecodable event type at %s[%d]@%d: %s",
                record.topic,
                record.partition,
                record.offset,
                exc,
            )
            return
        self.catalog.put(event_type)
        self._changed(normalize_source(event_type.source))

    def _changed(self, source: str) -> None:
        if self._on_change is not None:
            self._on_change(source)

    def caught_up(self) -> None:
        log.info("event-type catalog caught up: %d types", len(self.catalog))
