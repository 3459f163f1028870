"""Trigger vocabulary of both products and of the event-type catalog, parsed into index keys.

A portal trigger URI (``/items``, ``/items/add``, ``/items/<id>``, ``/items/<id>/update``, ``/``)
and a device-manager event name (``ComputerAdded``) both become a ``TriggerKey``
``(source, resource_id, operation)`` where ``*`` is a wildcard. An event is looked up under the
at most five keys that could match it, so matching costs the same with 10 or 100,000 webhooks.

Sources and types declared in the event-type catalog (``hookstream.views.catalog``) take the same
URI grammar (``/orders``, ``/orders/created``, ``/orders/<id>``, ``/orders/<id>/created``) when a
``Vocabulary`` is passed; without one only the built-in vocabularies are known, as before.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

WILDCARD = "*"

_ITEM_OPERATIONS = (
    "add",
    "delete",
    "update",
    "move",
    "publish",
    "share",
    "unshare",
    "reassign",
    "addComment",
    "deleteComment",
    "updateComment",
    "protect",
    "unprotect",
)
_GROUP_OPERATIONS = (
    "add",
    "update",
    "delete",
    "protect",
    "unprotect",
    "invite",
    "addUsers",
    "removeUsers",
    "updateUsers",
    "reassign",
)
_USER_OPERATIONS = (
    "add",
    "signIn",
    "signOut",
    "delete",
    "update",
    "disable",
    "enable",
    "updateUserRole",
    "updateUserLicenseType",
)
_ROLE_OPERATIONS = ("add", "update", "delete")

#: Portal collections and the operations each accepts (matched case-insensitively).
PORTAL_OPERATIONS: dict[str, tuple[str, ...]] = {
    "items": _ITEM_OPERATIONS,
    "groups": _GROUP_OPERATIONS,
    "users": _USER_OPERATIONS,
    "roles": _ROLE_OPERATIONS,
}

#: Spellings of the seeds that mean a canonical operation (``/roles/updated``).
OPERATION_ALIASES: dict[str, str] = {"updated": "update"}

#: Singular source names (portal payloads say ``item``) and their collection.
SOURCE_ALIASES: dict[str, str] = {
    "item": "items",
    "group": "groups",
    "user": "users",
    "role": "roles",
}

#: Device-manager event names and the (source, operation) envelope they map onto.
DEVICE_EVENTS: dict[str, tuple[str, str]] = {
    "ComputerAdded": ("computers", "add"),
    "ComputerCheckIn": ("computers", "checkIn"),
    "ComputerInventoryCompleted": ("computers", "inventoryCompleted"),
    "ComputerPatchPolicyCompleted": ("computers", "patchPolicyCompleted"),
    "ComputerPolicyFinished": ("computers", "policyFinished"),
    "ComputerPushCapabilityChanged": ("computers", "pushCapabilityChanged"),
    "DeviceAddedToDEP": ("devices", "addedToDEP"),
    "DeviceRateLimited": ("devices", "rateLimited"),
    "JSSShutdown": ("server", "shutdown"),
    "JSSStartup": ("server", "startup"),
    "MobileDeviceCheckIn": ("mobileDevices", "checkIn"),
    "MobileDeviceCommandCompleted": ("mobileDevices", "commandCompleted"),
    "MobileDeviceEnrolled": ("mobileDevices", "enrolled"),
    "MobileDeviceInventoryCompleted": ("mobileDevices", "inventoryCompleted"),
    "MobileDevicePushSent": ("mobileDevices", "pushSent"),
    "MobileDeviceUnEnrolled": ("mobileDevices", "unEnrolled"),
    "PatchSoftwareTitleUpdated": ("patchSoftwareTitles", "update"),
    "PushSent": ("push", "sent"),
    "RestAPIOperation": ("restApi", "operation"),
    "SCEPChallenge": ("scep", "challenge"),
    "SmartGroupComputerMembershipChange": ("smartGroups", "computerMembershipChange"),
    "SmartGroupMobileDeviceMembershipChange": ("smartGroups", "mobileDeviceMembershipChange"),
    "SmartGroupUserMembershipChange": ("smartGroups", "userMembershipChange"),
}

#: Device events narrowed to one smart group (the event's resource id is the group's id).
SMART_GROUP_EVENTS = frozenset(
    name for name, (source, _) in DEVICE_EVENTS.items() if source == "smartGroups"
)

_DEVICE_EVENT_BY_KEY = {
    (source.lower(), operation.lower()): name for name, (source, operation) in DEVICE_EVENTS.items()
}
_PORTAL_OPERATIONS_LOWER = {
    collection: {op.lower(): op for op in ops} for collection, ops in PORTAL_OPERATIONS.items()
}


#: Lower-case source names the built-in vocabularies use (collections, their singular
#: spellings, device-manager sources): a catalog source may not take one of them.
BUILTIN_SOURCES = frozenset(
    {*PORTAL_OPERATIONS, *SOURCE_ALIASES, *(source.lower() for source, _ in DEVICE_EVENTS.values())}
)
_CATALOG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class TriggerFamily(StrEnum):
    """Which vocabulary a trigger comes from; it decides the payload shape."""

    PORTAL = "portal"
    DEVICE = "device"
    CATALOG = "catalog"


class Vocabulary(Protocol):
    """Event sources and types beyond the built-in ones (the event-type catalog).

    ``operations`` gives the lower-case operations of a declared source, None for a source not
    declared. An ``open`` vocabulary accepts undeclared sources and operations too (a record that
    was checked when it was written must be readable before the catalog is)."""

    open: bool

    def operations(self, source: str) -> frozenset[str] | None: ...

    def sources(self) -> Collection[str]: ...


class OpenVocabulary:
    """Every well-formed source and operation: the syntax of catalog triggers, nothing more."""

    open = True

    def operations(self, source: str) -> frozenset[str] | None:
        return None

    def sources(self) -> Collection[str]:
        return ()


OPEN_VOCABULARY = OpenVocabulary()


class TriggerError(ValueError):
    """A trigger is neither a known portal URI nor a known device event name."""


@dataclass(frozen=True, slots=True)
class TriggerKey:
    """Index key: lower-case source and operation, the resource id as given, ``*`` for any."""

    source: str
    resource_id: str
    operation: str


@dataclass(frozen=True, slots=True)
class Trigger:
    """One parsed trigger of a webhook."""

    text: str
    family: TriggerFamily
    key: TriggerKey


def normalize_source(source: str) -> str:
    """The lower-case collection name of an event source (``item`` and ``items`` are one)."""
    lowered = source.lower()
    return SOURCE_ALIASES.get(lowered, lowered)


def normalize_operation(operation: str) -> str:
    """The lower-case canonical operation (``updated`` is ``update``; ``signIn`` is ``signin``)."""
    lowered = operation.lower()
    return OPERATION_ALIASES.get(lowered, lowered)


def _known_portal_text() -> str:
    return ", ".join(f"/{c}[/<id>][/{'|'.join(ops)}]" for c, ops in PORTAL_OPERATIONS.items())


def parse_trigger(
    text: str, smart_group_id: str | None = None, catalog: Vocabulary | None = None
) -> Trigger:
    """Parse one portal trigger URI, catalog trigger URI or device event name; the error lists
    what is accepted."""
    if text.startswith("/"):
        return _parse_portal(text, catalog)
    if text in DEVICE_EVENTS:
        source, operation = DEVICE_EVENTS[text]
        resource = smart_group_id if (smart_group_id and text in SMART_GROUP_EVENTS) else WILDCARD
        key = TriggerKey(normalize_source(source), resource, normalize_operation(operation))
        return Trigger(text, TriggerFamily.DEVICE, key)
    raise TriggerError(
        f"unknown trigger {text!r}: use a portal trigger URI ({_known_portal_text()}, or '/' for "
        f"every event) or a device event name ({', '.join(sorted(DEVICE_EVENTS))})"
    )


def _parse_portal(text: str, catalog: Vocabulary | None) -> Trigger:
    parts = [part for part in text.split("/") if part]
    if not parts:
        return Trigger(text, TriggerFamily.PORTAL, TriggerKey(WILDCARD, WILDCARD, WILDCARD))
    collection = parts[0].lower()
    if (
        catalog is not None
        and collection not in BUILTIN_SOURCES
        and len(parts) <= 3
        and not text.endswith("//")
    ):
        return _parse_catalog(text, parts, catalog)
    if collection not in PORTAL_OPERATIONS or len(parts) > 3 or text.endswith("//"):
        raise TriggerError(
            f"unknown trigger URI {text!r}: expected {_known_portal_text()}, or '/' for every event"
        )
    operations = _PORTAL_OPERATIONS_LOWER[collection]
    if len(parts) == 1:
        return Trigger(text, TriggerFamily.PORTAL, TriggerKey(collection, WILDCARD, WILDCARD))
    second = normalize_operation(parts[1])
    if len(parts) == 2 and second in operations:
        return Trigger(text, TriggerFamily.PORTAL, TriggerKey(collection, WILDCARD, second))
    resource_id = parts[1]
    if len(parts) == 2:
        return Trigger(text, TriggerFamily.PORTAL, TriggerKey(collection, resource_id, WILDCARD))
    operation = normalize_operation(parts[2])
    if operation not in operations or operation == "add":
        allowed = ", ".join(op for op in PORTAL_OPERATIONS[collection] if op != "add")
        raise TriggerError(
            f"unknown operation {parts[2]!r} in trigger URI {text!r}: on one of the {collection} "
            f"the operations are {allowed}"
        )
    return Trigger(text, TriggerFamily.PORTAL, TriggerKey(collection, resource_id, operation))


def _close(word: str, candidates: Collection[str]) -> str:
    matches = difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.6)
    return f"did you mean {' or '.join(repr(m) for m in matches)}? " if matches else ""


def _parse_catalog(text: str, parts: list[str], catalog: Vocabulary) -> Trigger:
    """A trigger URI on a catalog source: the portal grammar over the declared types."""
    source = parts[0].lower()
    if not _CATALOG_NAME.match(parts[0]):
        raise TriggerError(
            f"unknown trigger URI {text!r}: a source is a letter followed by letters, digits, "
            f"_ or -"
        )
    operations = catalog.operations(source)
    if operations is None and not catalog.open:
        known = sorted({*PORTAL_OPERATIONS, *catalog.sources()})
        raise TriggerError(
            f"unknown event source {parts[0]!r} in trigger {text!r}: "
            f"{_close(source, known)}known sources: {', '.join('/' + k for k in known)} "
            f"(declare new ones in the event-type catalog: hookstream-admin event-types create)"
        )
    if len(parts) == 1:
        return Trigger(text, TriggerFamily.CATALOG, TriggerKey(source, WILDCARD, WILDCARD))
    if len(parts) == 2:
        second = normalize_operation(parts[1])
        if operations is None or second in operations:
            return Trigger(text, TriggerFamily.CATALOG, TriggerKey(source, WILDCARD, second))
        if not catalog.open and difflib.get_close_matches(second, operations, n=1, cutoff=0.75):
            raise TriggerError(
                f"unknown event type {source}.{parts[1]} in trigger {text!r}: "
                f"{_close(second, operations)}the types of {source} are "
                f"{', '.join(sorted(operations))} (to subscribe to the one {source} with that "
                f"id, write /{source}/<id>/<type> or declare no close type)"
            )
        return Trigger(text, TriggerFamily.CATALOG, TriggerKey(source, parts[1], WILDCARD))
    operation = normalize_operation(parts[2])
    if operations is not None and operation not in operations:
        raise TriggerError(
            f"unknown event type {source}.{parts[2]} in trigger {text!r}: "
            f"{_close(operation, operations)}the types of {source} are "
            f"{', '.join(sorted(operations))}"
        )
    if not _CATALOG_NAME.match(parts[2]):
        raise TriggerError(f"unknown event type {parts[2]!r} in trigger {text!r}")
    return Trigger(text, TriggerFamily.CATALOG, TriggerKey(source, parts[1], operation))


def parse_triggers(
    texts: list[str], smart_group_id: str | None = None, catalog: Vocabulary | None = None
) -> list[Trigger]:
    """Parse a webhook's triggers; all must be of one family, since it decides the payload shape
    (portal and catalog triggers may be mixed: such a webhook gets the portal shape)."""
    if not texts:
        raise TriggerError("a webhook needs at least one trigger")
    triggers = [parse_trigger(text, smart_group_id, catalog) for text in texts]
    families = {trigger.family for trigger in triggers}
    if TriggerFamily.DEVICE in families and len(families) > 1:
        raise TriggerError(
            "a webhook's triggers must all be portal trigger URIs or all device event names, "
            "because they decide the payload shape; split them into two webhooks"
        )
    return triggers


def webhook_family(triggers: list[Trigger]) -> TriggerFamily:
    """The payload family of a webhook's parsed triggers: catalog only if all of them are."""
    families = {trigger.family for trigger in triggers}
    if len(families) == 1:
        return next(iter(families))
    return TriggerFamily.PORTAL


def event_lookup_keys(source: str, resource_id: str | None, operation: str) -> list[TriggerKey]:
    """Every index key under which a webhook could have subscribed to this event."""
    src = normalize_source(source)
    op = normalize_operation(operation)
    keys = [
        TriggerKey(WILDCARD, WILDCARD, WILDCARD),
        TriggerKey(src, WILDCARD, WILDCARD),
        TriggerKey(src, WILDCARD, op),
    ]
    if resource_id:
        keys.append(TriggerKey(src, resource_id, WILDCARD))
        keys.append(TriggerKey(src, resource_id, op))
    return keys


def device_event_name(source: str, operation: str) -> str | None:
    """The device-manager event name of an envelope, if it has one."""
    return _DEVICE_EVENT_BY_KEY.get((source.lower(), normalize_operation(operation)))
