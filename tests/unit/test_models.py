"""Validation rules of the records (SPEC §1): configs, authentication, events, commands."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from hookstream.records.checks import (
    FORBIDDEN_AUTH_HEADERS,
    MAX_AUTH_HEADERS_SIZE,
    MAX_HEADER_VALUE_LENGTH,
    RESERVED_HEADER_PREFIXES,
    check_header,
)
from hookstream.records.ids import delivery_id_for
from hookstream.records.models import (
    AuthKind,
    CommandKind,
    DomainEvent,
    WebhookAuth,
    WebhookCommand,
    WebhookConfig,
)

URL = "https://hooks.example.com/in"


def config(**overrides: Any) -> WebhookConfig:
    fields: dict[str, Any] = {
        "webhook_id": "wh-1",
        "name": "Group monitoring",
        "payload_url": URL,
        "triggers": ["/groups"],
    }
    fields.update(overrides)
    return WebhookConfig(**fields)


# --- WebhookConfig ----------------------------------------------------------------------------


def test_minimal_config_defaults() -> None:
    made = config()
    assert made.active is True
    assert made.auth.kind is AuthKind.NONE
    assert made.deactivation_policy.number_of_failures == 5
    assert made.deactivation_policy.days_in_past == 5
    assert made.revision == 0
    assert made.created_at > 0


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com",
        "https://example.com:8443/hooks?x=1",
        "https://10.0.0.1/path",
        "https://[::1]:8443/",
    ],
)
def test_good_payload_urls(url: str) -> None:
    assert config(payload_url=url).payload_url == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/x", "https://"),
        ("javascript:alert(1)", "https://"),
        ("example.com/hooks", "https://"),
        ("/relative/path", "https://"),
        ("https:///no-host", "https://"),
        ("", "https://"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://user@example.com/", "credentials"),
        ("https://example.com/a b", "white space"),
        ("https://example.com/a\r\nX-Injected: 1", "white space"),
        ("https://example.com/\x00", "white space"),
        ("https://example.com/a\u2028b", "white space"),
        ("https://example.com/a\u0085b", "white space"),
        ("https://xn--:8443/", "not a valid host name"),
        ("https://xn--/", "not a valid host name"),
        ("https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/", "not a valid host"),
        ("https://\u2603.net/", "not a valid host name"),
        ("http://0177.0.0.1:8080/", "not a valid host name"),
        ("https://example.com:0x50/", "invalid port"),
    ],
)
def test_bad_payload_urls(url: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why) as caught:
        config(payload_url=url)
    # Validation errors never echo the submitted value.
    [error] = caught.value.errors(include_input=False)
    assert not url or url not in error["msg"]


@pytest.mark.parametrize(
    "url",
    ["https://b\u00fccher.example/x", "https://xn--bcher-kva.example/", "https://EXAMPLE.com/"],
)
def test_internationalised_host_names_that_encode_cleanly_are_accepted(url: str) -> None:
    assert config(payload_url=url).payload_url == url


@pytest.mark.parametrize("url", ["https://exa\tmple.com/", "\thttps://example.com/"])
def test_payload_url_with_tab_is_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        config(payload_url=url)


@pytest.mark.parametrize("url", ["https://example.com:99999/", "https://example.com:abc/"])
def test_payload_url_with_bad_port_is_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        config(payload_url=url)


def test_payload_url_length_is_bounded() -> None:
    with pytest.raises(ValidationError):
        config(payload_url="https://example.com/" + "a" * 2100)


@pytest.mark.parametrize("length", [1, 64, 128])
def test_name_length_within_bounds(length: int) -> None:
    assert len(config(name="n" * length).name) == length


@pytest.mark.parametrize("length", [0, 129])
def test_name_length_out_of_bounds(length: int) -> None:
    with pytest.raises(ValidationError, match="name"):
        config(name="n" * length)


@pytest.mark.parametrize("webhook_id", ["", "-leading-dash", "a/b", "a b", "x" * 129, "a\n"])
def test_bad_webhook_ids(webhook_id: str) -> None:
    with pytest.raises(ValidationError, match="webhook_id"):
        config(webhook_id=webhook_id)


def test_triggers_are_validated() -> None:
    with pytest.raises(ValidationError, match="unknown operation"):
        config(triggers=["/items/i1/frobnicate"])
    with pytest.raises(ValidationError, match="unknown trigger"):
        config(triggers=["/9bogus"])
    # A catalog source: the record keeps its syntax; the catalog is checked where it is written.
    assert config(triggers=["/orders/created"]).triggers == ["/orders/created"]
    with pytest.raises(ValidationError):
        config(triggers=[])
    with pytest.raises(ValidationError, match="split them"):
        config(triggers=["/items", "ComputerAdded"])
    assert config(triggers=["SmartGroupComputerMembershipChange"], smart_group_id="7").triggers


@pytest.mark.parametrize("field", ["connect_timeout_s", "read_timeout_s"])
def test_timeouts_are_bounded(field: str) -> None:
    assert getattr(config(**{field: 15}), field) == 15
    for bad in (0, -1, 61):
        with pytest.raises(ValidationError, match=field):
            config(**{field: bad})


def test_unknown_fields_are_refused_and_records_are_frozen() -> None:
    with pytest.raises(ValidationError):
        config(surprise=True)
    made = config()
    with pytest.raises(ValidationError):
        made.name = "other"  # type: ignore[misc]


# --- WebhookAuth ------------------------------------------------------------------------------


def test_basic_auth_needs_user_and_password() -> None:
    auth = WebhookAuth(kind=AuthKind.BASIC, username="alice", password=SecretStr("pw"))
    assert auth.password is not None and auth.password.get_secret_value() == "pw"
    with pytest.raises(ValidationError, match="username and password"):
        WebhookAuth(kind=AuthKind.BASIC, username="alice")
    with pytest.raises(ValidationError, match="username and password"):
        WebhookAuth(kind=AuthKind.BASIC, password=SecretStr("pw"))
    with pytest.raises(ValidationError, match="username and password"):
        WebhookAuth(kind=AuthKind.BASIC, username="", password=SecretStr("pw"))
    with pytest.raises(ValidationError, match="':'"):
        WebhookAuth(kind=AuthKind.BASIC, username="a:b", password=SecretStr("pw"))


def test_credentials_only_with_their_kind() -> None:
    with pytest.raises(ValidationError, match="only for basic"):
        WebhookAuth(kind=AuthKind.NONE, username="alice", password=SecretStr("pw"))
    with pytest.raises(ValidationError, match="only for basic"):
        WebhookAuth(kind=AuthKind.HEADER, headers={"X-Key": "v"}, username="alice")
    with pytest.raises(ValidationError, match="only for header"):
        WebhookAuth(kind=AuthKind.BASIC, username="a", password="p", headers={"X-Key": "v"})
    with pytest.raises(ValidationError, match="at least one header"):
        WebhookAuth(kind=AuthKind.HEADER)


def test_header_auth_accepts_ordinary_headers() -> None:
    auth = WebhookAuth(
        kind=AuthKind.HEADER, headers={"Authorization": "Bearer t", "X-Api-Key": "k"}
    )
    assert {k: v.get_secret_value() for k, v in auth.headers.items()} == {
        "Authorization": "Bearer t",
        "X-Api-Key": "k",
    }


def _case_variants(name: str) -> list[str]:
    return [name, name.upper(), name.lower(), name.title(), name.swapcase()]


@pytest.mark.parametrize(
    "name",
    [
        variant
        for base in ("Content-Type", "User-Agent", "Accept-Encoding", "Content-Length", "Host")
        for variant in _case_variants(base)
    ],
)
def test_forbidden_headers_in_any_case(name: str) -> None:
    with pytest.raises(ValidationError, match="cannot be set by header authentication"):
        WebhookAuth(kind=AuthKind.HEADER, headers={name: "x"})


def test_forbidden_set_is_the_specs() -> None:
    assert {
        "content-type",
        "user-agent",
        "accept-encoding",
        "content-length",
        "host",
    } <= FORBIDDEN_AUTH_HEADERS


@pytest.mark.parametrize(
    "name",
    [
        "webhook-id",
        "Webhook-Signature",
        "WEBHOOK-TIMESTAMP",
        "X-Hookstream-Delivery",
        "x-hookstream-x",
    ],
)
def test_reserved_prefixes_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="cannot be set"):
        WebhookAuth(kind=AuthKind.HEADER, headers={name: "x"})


@pytest.mark.parametrize(
    "name", ["", "X Key", "X:Key", "X-Key\r", "X\nKey", "\x00", "Ключ", "X(Key)", "X-Key "]
)
def test_names_that_are_not_tokens_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="not a valid HTTP header name"):
        WebhookAuth(kind=AuthKind.HEADER, headers={name: "x"})


def test_header_name_with_trailing_newline_is_refused() -> None:
    with pytest.raises(ValidationError):
        WebhookAuth(kind=AuthKind.HEADER, headers={"X-Key\n": "x"})


@pytest.mark.parametrize(
    "value",
    [
        "a\rb",
        "a\nb",
        "a\x00b",
        "\r\nX-Evil: 1",
        "x\n",
        "\x01",
        "a\x1fb",
        "\x7f",
        "caf\u00e9",
        "a\u0085b",
        "a\u2028b",
        "a\u2029b",
        "\u00a0",
        "\u2603",
    ],
)
def test_header_values_that_are_not_printable_ascii_are_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="header values must be printable ASCII") as caught:
        WebhookAuth(kind=AuthKind.HEADER, headers={"X-Key": value})
    assert value not in caught.value.errors(include_input=False)[0]["msg"]


@pytest.mark.parametrize("value", ["", " ", "a b", "tab\there", "~!@#$%^&*()_+{}|:<>?", "x" * 4096])
def test_printable_ascii_header_values_are_accepted(value: str) -> None:
    auth = WebhookAuth(kind=AuthKind.HEADER, headers={"X-Key": value})
    assert auth.headers["X-Key"].get_secret_value() == value


def test_header_value_length_is_bounded_and_the_message_says_the_bound() -> None:
    with pytest.raises(ValidationError, match=f"longer than {MAX_HEADER_VALUE_LENGTH} characters"):
        WebhookAuth(kind=AuthKind.HEADER, headers={"X-Key": "x" * (MAX_HEADER_VALUE_LENGTH + 1)})
    with pytest.raises(ValidationError, match="longer than 4096"):
        WebhookAuth(kind=AuthKind.HEADER, headers={"X-Key": "x" * 2_000_000})


def test_all_headers_together_are_bounded() -> None:
    value = "v" * 4000
    fits = {f"X-H{i}": value for i in range(4)}
    assert len(WebhookAuth(kind=AuthKind.HEADER, headers=fits).headers) == 4
    with pytest.raises(ValidationError, match=f"more than {MAX_AUTH_HEADERS_SIZE} characters"):
        WebhookAuth(kind=AuthKind.HEADER, headers={f"X-H{i}": value for i in range(5)})


@pytest.mark.parametrize(
    "name",
    [
        variant
        for base in (
            "Transfer-Encoding",
            "Connection",
            "Keep-Alive",
            "TE",
            "Trailer",
            "Upgrade",
            "Proxy-Authorization",
            "Proxy-Connection",
            "Proxy-Anything",
        )
        for variant in _case_variants(base)
    ],
)
def test_hop_by_hop_and_framing_headers_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="cannot be set by header authentication"):
        WebhookAuth(kind=AuthKind.HEADER, headers={name: "chunked"})


def test_basic_auth_password_is_bounded() -> None:
    with pytest.raises(ValidationError, match="1024"):
        WebhookAuth(kind=AuthKind.BASIC, username="u", password="p" * 1025)


@pytest.mark.parametrize("field", ["username", "password"])
def test_basic_auth_credentials_must_be_utf8(field: str) -> None:
    fields = {"username": "u", "password": "p", field: "a\udc80b"}
    with pytest.raises(ValidationError, match="lone surrogate|unicode string"):
        WebhookAuth(kind=AuthKind.BASIC, **fields)


@pytest.mark.parametrize("field", ["name", "webhook_id"])
def test_config_strings_must_be_utf8(field: str) -> None:
    with pytest.raises(ValidationError):
        config(**{field: "wh\ud800"})
    with pytest.raises(ValidationError):
        config(triggers=["/items/\ud800"])


def test_header_auth_values_must_be_utf8() -> None:
    with pytest.raises(ValidationError, match="lone surrogate") as caught:
        WebhookAuth(kind=AuthKind.HEADER, headers={"X-Key": "\ud800"})
    assert "\ud800" not in str(caught.value.errors(include_input=False))


def test_at_most_twenty_headers() -> None:
    ok = {f"X-H{i}": "v" for i in range(20)}
    assert len(WebhookAuth(kind=AuthKind.HEADER, headers=ok).headers) == 20
    with pytest.raises(ValidationError):
        WebhookAuth(kind=AuthKind.HEADER, headers={**ok, "X-H20": "v"})


_TCHAR = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_FORBIDDEN_OR_RESERVED = RESERVED_HEADER_PREFIXES
_PRINTABLE = "\t" + "".join(chr(code) for code in range(0x20, 0x7F))


def _allowed_name(name: str) -> bool:
    lowered = name.lower()
    return lowered not in FORBIDDEN_AUTH_HEADERS and not lowered.startswith(_FORBIDDEN_OR_RESERVED)


@settings(deadline=None)
@given(st.text(_TCHAR, min_size=1, max_size=30).filter(_allowed_name), st.text(max_size=40))
def test_token_names_accepted_iff_value_is_printable_ascii(name: str, value: str) -> None:
    clean = all(c in _PRINTABLE for c in value)
    try:
        WebhookAuth(kind=AuthKind.HEADER, headers={name: value})
    except ValidationError as exc:
        assert not clean, exc
        assert "header values must be printable ASCII" in str(exc)
    else:
        assert clean


@settings(deadline=None)
@given(st.text(max_size=30), st.text(max_size=30))
def test_accepted_headers_are_safe_to_send(name: str, value: str) -> None:
    try:
        check_header(name, value)
    except ValueError:
        return
    # Whatever is accepted is an RFC 9110 token and a value the HTTP client sends as it is.
    assert name and all(c in _TCHAR for c in name)
    assert _allowed_name(name)
    assert all(c in _PRINTABLE for c in value)
    assert httpx.Headers({name: value})[name] == value


@settings(deadline=None)
@given(st.sampled_from(sorted(FORBIDDEN_AUTH_HEADERS)), st.data())
def test_forbidden_names_refused_in_every_case(name: str, data: st.DataObject) -> None:
    flips = data.draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    spelled = "".join(c.upper() if f else c for c, f in zip(name, flips, strict=True))
    with pytest.raises(ValueError, match="cannot be set"):
        check_header(spelled, "x")


# --- secrets ----------------------------------------------------------------------------------


def test_secrets_never_appear_in_renderings() -> None:
    basic = config(
        auth=WebhookAuth(kind=AuthKind.BASIC, username="alice", password=SecretStr("pw-s3cret"))
    )
    header = config(
        auth=WebhookAuth(kind=AuthKind.HEADER, headers={"X-Api-Key": SecretStr("hdr-s3cret")})
    )
    command = WebhookCommand(webhook_id="wh-1", kind=CommandKind.UPSERT, config=header)
    for made, secret in ((basic, "pw-s3cret"), (header, "hdr-s3cret"), (command, "hdr-s3cret")):
        for rendering in (repr(made), str(made), made.model_dump_json(), str(made.model_dump())):
            assert secret not in rendering
    assert "alice" in repr(basic)  # the user name is not a secret
    assert "X-Api-Key" in header.model_dump_json()


# --- DomainEvent ------------------------------------------------------------------------------


def test_for_device_event_maps_the_name() -> None:
    event = DomainEvent.for_device_event(
        "ComputerAdded", {"jssID": 17, "deviceName": "mac-1"}, event_id="e1", occurred_at=123
    )
    assert (event.source, event.operation) == ("computers", "add")
    assert event.resource_id == "17"
    assert event.event_id == "e1"
    assert event.occurred_at == 123
    assert event.properties == {"jssID": 17, "deviceName": "mac-1"}


def test_for_device_event_smart_group_uses_lowercase_jssid() -> None:
    event = DomainEvent.for_device_event(
        "SmartGroupComputerMembershipChange", {"name": "g", "smartGroup": True, "jssid": 5}
    )
    assert (event.source, event.operation) == ("smartGroups", "computerMembershipChange")
    assert event.resource_id == "5"
    uuid.UUID(event.event_id)
    assert event.occurred_at > 0


def test_for_device_event_explicit_resource_and_no_id() -> None:
    assert DomainEvent.for_device_event("JSSStartup", {}).resource_id is None
    explicit = DomainEvent.for_device_event("ComputerAdded", {"jssID": 1}, resource_id="x")
    assert explicit.resource_id == "x"
    assert DomainEvent.for_device_event("JSSStartup", {}, occurred_at=0).occurred_at == 0


def test_for_device_event_refuses_unknown_names() -> None:
    with pytest.raises(ValueError, match="ComputerAdded"):
        DomainEvent.for_device_event("ComputerExploded", {})


@pytest.mark.parametrize(
    "fields",
    [
        {"event_id": ""},
        {"source": "1items"},
        {"source": "items/x"},
        {"operation": "sign in"},
        {"resource_id": "a/b"},
        {"resource_id": ""},
        {"occurred_at": -1},
    ],
)
def test_domain_event_rules(fields: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "event_id": "e",
        "source": "items",
        "operation": "add",
        "occurred_at": 1,
    }
    assert DomainEvent(**base).properties == {}
    with pytest.raises(ValidationError):
        DomainEvent(**{**base, **fields})


# --- delivery ids -----------------------------------------------------------------------------


def test_delivery_id_is_stable_and_distinct() -> None:
    first = delivery_id_for("event-1", "wh-1")
    assert first == delivery_id_for("event-1", "wh-1")
    assert uuid.UUID(first).version == 5
    others = {
        delivery_id_for("event-2", "wh-1"),
        delivery_id_for("event-1", "wh-2"),
        delivery_id_for("wh-1", "event-1"),
        delivery_id_for("event-1w", "h-1"),
    }
    assert first not in others
    assert len(others) == 4


@settings(deadline=None)
@given(st.text(max_size=20), st.text(max_size=20), st.text(max_size=20), st.text(max_size=20))
def test_delivery_ids_differ_per_pair(e1: str, w1: str, e2: str, w2: str) -> None:
    same = delivery_id_for(e1, w1) == delivery_id_for(e2, w2)
    assert same == ((e1, w1) == (e2, w2)) or "\x00" in e1 + e2 + w1 + w2


# --- WebhookCommand ---------------------------------------------------------------------------


def test_upsert_needs_the_config_of_the_same_id() -> None:
    made = WebhookCommand(webhook_id="wh-1", kind=CommandKind.UPSERT, config=config())
    assert made.config is not None and made.config.webhook_id == "wh-1"
    uuid.UUID(made.command_id)
    with pytest.raises(ValidationError, match="same webhook_id"):
        WebhookCommand(webhook_id="wh-1", kind=CommandKind.UPSERT)
    with pytest.raises(ValidationError, match="same webhook_id"):
        WebhookCommand(webhook_id="wh-2", kind=CommandKind.UPSERT, config=config())


def test_record_failure_needs_a_delivery_id() -> None:
    with pytest.raises(ValidationError, match="delivery_id"):
        WebhookCommand(webhook_id="wh-1", kind=CommandKind.RECORD_FAILURE)
    made = WebhookCommand(webhook_id="wh-1", kind=CommandKind.RECORD_FAILURE, delivery_id="d")
    assert made.delivery_id == "d"


@pytest.mark.parametrize("kind", [CommandKind.DELETE, CommandKind.ACTIVATE, CommandKind.DEACTIVATE])
def test_other_commands_need_only_the_id(kind: CommandKind) -> None:
    assert WebhookCommand(webhook_id="wh-1", kind=kind).kind is kind
    with pytest.raises(ValidationError):
        WebhookCommand(webhook_id="bad id", kind=kind)
    with pytest.raises(ValidationError):
        WebhookCommand(webhook_id="wh-1", kind="explode")
