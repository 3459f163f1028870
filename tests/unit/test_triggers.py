"""Trigger vocabulary (SPEC §2): portal URIs and device event names become index keys."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookstream.core.triggers import (
    DEVICE_EVENTS,
    OPERATION_ALIASES,
    PORTAL_OPERATIONS,
    SMART_GROUP_EVENTS,
    WILDCARD,
    TriggerError,
    TriggerFamily,
    TriggerKey,
    device_event_name,
    event_lookup_keys,
    normalize_operation,
    normalize_source,
    parse_trigger,
    parse_triggers,
)

W = WILDCARD

# The URIs as SPEC.md §2 lists them, spelled as the seeds spell them.
SPEC_COLLECTION_OPERATIONS = {
    "items": [
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
    ],
    "groups": [
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
    ],
    "users": [
        "add",
        "signin",
        "signout",
        "delete",
        "update",
        "disable",
        "enable",
        "updateUserRole",
        "updateUserLicenseType",
    ],
    "roles": ["add", "updated", "update", "delete"],
}
SPEC_PER_ID_OPERATIONS = {
    "items": ["delete", "update", "move", "publish", "share", "unshare", "reassign"],
    "groups": [
        "update",
        "delete",
        "protect",
        "unprotect",
        "invite",
        "addUsers",
        "removeUsers",
        "updateUsers",
        "reassign",
    ],
    "users": [
        "signIn",
        "signOut",
        "delete",
        "update",
        "disable",
        "enable",
        "updateUserRole",
        "updateUserLicenseType",
    ],
}
SPEC_DEVICE_EVENTS = [
    "ComputerAdded",
    "ComputerCheckIn",
    "ComputerInventoryCompleted",
    "ComputerPatchPolicyCompleted",
    "ComputerPolicyFinished",
    "ComputerPushCapabilityChanged",
    "DeviceAddedToDEP",
    "DeviceRateLimited",
    "JSSShutdown",
    "JSSStartup",
    "MobileDeviceCheckIn",
    "MobileDeviceCommandCompleted",
    "MobileDeviceEnrolled",
    "MobileDeviceInventoryCompleted",
    "MobileDevicePushSent",
    "MobileDeviceUnEnrolled",
    "PatchSoftwareTitleUpdated",
    "PushSent",
    "RestAPIOperation",
    "SCEPChallenge",
    "SmartGroupComputerMembershipChange",
    "SmartGroupMobileDeviceMembershipChange",
    "SmartGroupUserMembershipChange",
]
SPEC_IDS = {"items": "9f3c1d2e", "groups": "173dd04b", "users": "administrator"}


def _canonical(operation: str) -> str:
    lowered = operation.lower()
    return OPERATION_ALIASES.get(lowered, lowered)


# --- portal URIs ------------------------------------------------------------------------------


def test_slash_means_every_event() -> None:
    trigger = parse_trigger("/")
    assert trigger.family is TriggerFamily.PORTAL
    assert trigger.key == TriggerKey(W, W, W)
    assert trigger.text == "/"


@pytest.mark.parametrize("collection", sorted(SPEC_COLLECTION_OPERATIONS))
def test_bare_collection_matches_all_of_it(collection: str) -> None:
    trigger = parse_trigger(f"/{collection}")
    assert trigger.family is TriggerFamily.PORTAL
    assert trigger.key == TriggerKey(collection, W, W)


@pytest.mark.parametrize(
    ("collection", "operation"),
    [(c, op) for c, ops in SPEC_COLLECTION_OPERATIONS.items() for op in ops],
)
def test_collection_operation(collection: str, operation: str) -> None:
    trigger = parse_trigger(f"/{collection}/{operation}")
    assert trigger.key == TriggerKey(collection, W, _canonical(operation))


@pytest.mark.parametrize("collection", sorted(SPEC_PER_ID_OPERATIONS))
def test_per_id(collection: str) -> None:
    resource_id = SPEC_IDS[collection]
    assert parse_trigger(f"/{collection}/{resource_id}").key == TriggerKey(
        collection, resource_id, W
    )


@pytest.mark.parametrize(
    ("collection", "operation"),
    [(c, op) for c, ops in SPEC_PER_ID_OPERATIONS.items() for op in ops],
)
def test_per_id_operation(collection: str, operation: str) -> None:
    resource_id = SPEC_IDS[collection]
    trigger = parse_trigger(f"/{collection}/{resource_id}/{operation}")
    assert trigger.key == TriggerKey(collection, resource_id, operation.lower())


def test_operations_are_case_insensitive() -> None:
    variants = ["/users/x/signIn", "/users/x/signin", "/users/x/SIGNIN", "/users/x/SignIn"]
    keys = {parse_trigger(text).key for text in variants}
    assert keys == {TriggerKey("users", "x", "signin")}
    assert parse_trigger("/users/signIn").key == parse_trigger("/users/signin").key


def test_collection_name_is_case_insensitive_but_resource_id_keeps_its_case() -> None:
    assert parse_trigger("/Items/AbC").key == TriggerKey("items", "AbC", W)


def test_roles_updated_is_an_alias_of_update() -> None:
    assert parse_trigger("/roles/updated").key == parse_trigger("/roles/update").key
    assert parse_trigger("/roles/updated").key == TriggerKey("roles", W, "update")
    assert parse_trigger("/roles/r1/updated").key == TriggerKey("roles", "r1", "update")


def test_trailing_slash_is_tolerated() -> None:
    assert parse_trigger("/items/").key == TriggerKey("items", W, W)
    assert parse_trigger("/items/add/").key == TriggerKey("items", W, "add")


@pytest.mark.parametrize(
    "text",
    [
        "/nothing",
        "/item",  # singular is an event source, not a trigger collection
        "/items/a/update/extra",
        "/items/abc/frobnicate",
        "/items/abc/add",  # add has no per-resource form
        "/groups/g1/add",
        "/users/u1/add",
        "/items//",
        "/roles/r1/signin",
    ],
)
def test_unknown_portal_uris_are_refused(text: str) -> None:
    with pytest.raises(TriggerError):
        parse_trigger(text)


def test_unknown_uri_message_lists_what_is_accepted() -> None:
    with pytest.raises(TriggerError) as caught:
        parse_trigger("/widgets")
    message = str(caught.value)
    assert "'/widgets'" in message
    for collection in PORTAL_OPERATIONS:
        assert f"/{collection}" in message
    assert "'/'" in message
    assert "updateUserLicenseType" in message


def test_unknown_per_id_operation_message_lists_the_operations() -> None:
    with pytest.raises(TriggerError) as caught:
        parse_trigger("/groups/g1/explode")
    message = str(caught.value)
    assert "explode" in message
    assert "addUsers" in message and "invite" in message
    assert "add," not in message.split("operations are", 1)[1]


@pytest.mark.parametrize("text", ["", "items", "computerAdded", "ComputerAdded ", "Foo"])
def test_unknown_names_are_refused_with_the_list_of_known_ones(text: str) -> None:
    with pytest.raises(TriggerError) as caught:
        parse_trigger(text)
    message = str(caught.value)
    assert "ComputerAdded" in message and "SmartGroupUserMembershipChange" in message
    assert "/items" in message


# --- device events ----------------------------------------------------------------------------


def test_spec_device_events_are_the_vocabulary() -> None:
    assert set(SPEC_DEVICE_EVENTS) == set(DEVICE_EVENTS)
    assert SMART_GROUP_EVENTS == {n for n in SPEC_DEVICE_EVENTS if n.startswith("SmartGroup")}


@pytest.mark.parametrize("name", SPEC_DEVICE_EVENTS)
def test_device_event_maps_to_source_and_operation(name: str) -> None:
    source, operation = DEVICE_EVENTS[name]
    trigger = parse_trigger(name)
    assert trigger.family is TriggerFamily.DEVICE
    assert trigger.text == name
    assert trigger.key == TriggerKey(normalize_source(source), W, normalize_operation(operation))
    assert device_event_name(source, operation) == name
    assert device_event_name(source.upper(), operation.upper()) == name


def test_device_event_sources_do_not_collide_with_portal_collections() -> None:
    sources = {normalize_source(source) for source, _ in DEVICE_EVENTS.values()}
    assert not sources & set(PORTAL_OPERATIONS)
    assert device_event_name("items", "add") is None


@pytest.mark.parametrize("name", sorted(SMART_GROUP_EVENTS))
def test_smart_group_events_narrow_to_the_group(name: str) -> None:
    source, operation = DEVICE_EVENTS[name]
    narrowed = parse_trigger(name, smart_group_id="42")
    assert narrowed.key == TriggerKey("smartgroups", "42", operation.lower())
    assert parse_trigger(name).key.resource_id == W


def test_smart_group_id_does_not_narrow_other_events() -> None:
    assert parse_trigger("ComputerAdded", smart_group_id="42").key.resource_id == W
    assert parse_trigger("/items", smart_group_id="42").key == TriggerKey("items", W, W)


# --- lists of triggers ------------------------------------------------------------------------


def test_parse_triggers_keeps_order() -> None:
    triggers = parse_triggers(["/items/add", "/users/bob", "/"])
    assert [t.key for t in triggers] == [
        TriggerKey("items", W, "add"),
        TriggerKey("users", "bob", W),
        TriggerKey(W, W, W),
    ]


def test_mixing_portal_and_device_triggers_is_refused() -> None:
    with pytest.raises(TriggerError, match="split them into two webhooks"):
        parse_triggers(["/items", "ComputerAdded"])
    assert len(parse_triggers(["ComputerAdded", "JSSStartup"])) == 2


def test_empty_trigger_list_is_refused() -> None:
    with pytest.raises(TriggerError, match="at least one trigger"):
        parse_triggers([])


def test_one_bad_trigger_fails_the_list() -> None:
    with pytest.raises(TriggerError, match="/bogus"):
        parse_triggers(["/items", "/bogus"])


# --- lookup keys ------------------------------------------------------------------------------


def test_event_lookup_keys_without_resource() -> None:
    assert event_lookup_keys("item", None, "Update") == [
        TriggerKey(W, W, W),
        TriggerKey("items", W, W),
        TriggerKey("items", W, "update"),
    ]


def test_event_lookup_keys_with_resource_general_to_specific() -> None:
    assert event_lookup_keys("Users", "Bob", "signIn") == [
        TriggerKey(W, W, W),
        TriggerKey("users", W, W),
        TriggerKey("users", W, "signin"),
        TriggerKey("users", "Bob", W),
        TriggerKey("users", "Bob", "signin"),
    ]


def test_event_lookup_keys_apply_the_operation_alias() -> None:
    assert TriggerKey("roles", W, "update") in event_lookup_keys("role", None, "updated")


def test_every_parsed_trigger_is_found_by_a_matching_event() -> None:
    cases = [
        ("/items/abc/update", ("item", "abc", "update")),
        ("/users/signIn", ("users", "x", "signin")),
        ("/groups", ("group", "g", "addUsers")),
        ("/roles/updated", ("role", None, "update")),
        ("ComputerAdded", ("computers", "17", "add")),
        ("SmartGroupUserMembershipChange", ("smartGroups", "5", "userMembershipChange")),
    ]
    for text, (source, resource_id, operation) in cases:
        key = parse_trigger(text, smart_group_id="5").key
        assert key in event_lookup_keys(source, resource_id, operation), text


def test_smart_group_trigger_is_not_found_by_another_group() -> None:
    key = parse_trigger("SmartGroupUserMembershipChange", smart_group_id="5").key
    assert key not in event_lookup_keys("smartGroups", "6", "userMembershipChange")


# --- properties -------------------------------------------------------------------------------


@settings(deadline=None)
@given(st.text(max_size=80), st.one_of(st.none(), st.text(max_size=10)))
def test_parse_trigger_raises_only_trigger_error(text: str, smart_group_id: str | None) -> None:
    try:
        trigger = parse_trigger(text, smart_group_id)
    except TriggerError:
        return
    assert trigger.text == text
    assert trigger.family in (TriggerFamily.PORTAL, TriggerFamily.DEVICE)


@settings(deadline=None)
@given(st.lists(st.text(max_size=20), max_size=4))
def test_parse_triggers_raises_only_trigger_error(texts: list[str]) -> None:
    try:
        triggers = parse_triggers(texts)
    except TriggerError:
        return
    assert len({t.family for t in triggers}) == 1


_OPERATION_WORDS = {op.lower() for ops in PORTAL_OPERATIONS.values() for op in ops} | set(
    OPERATION_ALIASES
)


def _random_case(draw: st.DrawFn, word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.upper() if flip else c.lower() for c, flip in zip(word, flips, strict=True))


@st.composite
def vocabulary_uri(draw: st.DrawFn) -> tuple[str, TriggerKey]:
    collection = draw(st.sampled_from(sorted(PORTAL_OPERATIONS)))
    operations = list(PORTAL_OPERATIONS[collection])
    shape = draw(st.sampled_from(["all", "bare", "op", "id", "id-op"]))
    resource_id = draw(
        st.text(st.characters(blacklist_characters="/"), min_size=1, max_size=20).filter(
            lambda s: s.lower() not in _OPERATION_WORDS
        )
    )
    coll_text = _random_case(draw, collection)
    if shape == "all":
        return "/", TriggerKey(W, W, W)
    if shape == "bare":
        return f"/{coll_text}", TriggerKey(collection, W, W)
    if shape == "op":
        op = draw(st.sampled_from(operations))
        return f"/{coll_text}/{_random_case(draw, op)}", TriggerKey(collection, W, op.lower())
    if shape == "id":
        return f"/{coll_text}/{resource_id}", TriggerKey(collection, resource_id, W)
    op = draw(st.sampled_from([o for o in operations if o != "add"]))
    text = f"/{coll_text}/{resource_id}/{_random_case(draw, op)}"
    return text, TriggerKey(collection, resource_id, op.lower())


@settings(deadline=None)
@given(vocabulary_uri())
def test_vocabulary_uris_parse_back_to_their_key(case: tuple[str, TriggerKey]) -> None:
    text, key = case
    trigger = parse_trigger(text)
    assert trigger.key == key
    assert trigger.family is TriggerFamily.PORTAL
    source = key.source if key.source != W else "items"
    resource_id = key.resource_id if key.resource_id != W else "r"
    operation = key.operation if key.operation != W else "add"
    assert key in event_lookup_keys(source, resource_id, operation)


@settings(deadline=None)
@given(st.sampled_from(SPEC_DEVICE_EVENTS), st.text(min_size=1, max_size=20))
def test_device_names_parse_back_to_their_key(name: str, group: str) -> None:
    source, operation = DEVICE_EVENTS[name]
    expected_resource = group if name in SMART_GROUP_EVENTS else W
    key = parse_trigger(name, smart_group_id=group).key
    assert key == TriggerKey(source.lower(), expected_resource, operation.lower())
