"""Hostile events (issue 19): every event either becomes encodable jobs or is a DecodeError.

What encoding needs is checked when an event is accepted (decoded, or built by a client), so no
event can make the matcher fail later, while it encodes the jobs.
"""

from __future__ import annotations

import asyncio
import json
import math
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hookstream.core.errors import DecodeError
from hookstream.logs import Throttle
from hookstream.matcher.agents import guarded
from hookstream.matcher.routing import failure_reason, match_record
from hookstream.records.checks import MAX_INTEGER_DIGITS, MAX_PROPERTIES_DEPTH
from hookstream.records.codec import decode, encode, json_too_deep
from hookstream.records.models import DeliveryJob, DomainEvent, WebhookConfig
from hookstream.views.directory import WebhookDirectory
from hostile_events import POISON_PROPERTIES, nested, raw_event


def event(properties: Any) -> DomainEvent:
    return DomainEvent(
        event_id="e-1", source="items", operation="update", occurred_at=1, properties=properties
    )


def deep(levels: int) -> dict[str, Any]:
    """Properties nesting exactly ``levels`` levels (the properties object is level 1)."""
    inner: Any = []
    for _ in range(levels - 2):
        inner = [inner]
    return {"x": inner} if levels > 1 else {}


def directory_matching_everything() -> WebhookDirectory:
    directory = WebhookDirectory()
    directory.put(
        WebhookConfig(
            webhook_id="wh-all", name="All", payload_url="https://a.example/", triggers=["/"]
        )
    )
    return directory


# --- the model: what a client or the CLI builds -----------------------------------------------


@pytest.mark.parametrize(
    "properties",
    [
        {"x": "\ud800"},
        {"\udfff": 1},
        {"a": [{"b": "ok \udc80 ok"}]},
        {"a": {"\ud83d": None}},
    ],
)
def test_lone_surrogates_in_keys_and_values_are_refused(properties: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="lone surrogate"):
        event(properties)


def test_surrogate_pairs_written_as_one_character_are_fine() -> None:
    made = event({"emoji \U0001f600": "\U0001f600"})
    assert decode(encode(made), DomainEvent) == made


@pytest.mark.parametrize("field", ["event_id", "resource_id", "actor_username", "actor_user_id"])
def test_string_fields_must_be_utf8(field: str) -> None:
    fields: dict[str, Any] = {
        "event_id": "e",
        "source": "items",
        "operation": "add",
        "occurred_at": 1,
        field: "x\ud800",
    }
    with pytest.raises(ValidationError):
        DomainEvent(**fields)


def test_depth_at_the_bound_is_accepted_and_beyond_it_refused() -> None:
    at_bound = event(deep(MAX_PROPERTIES_DEPTH))
    assert decode(encode(at_bound), DomainEvent) == at_bound
    with pytest.raises(ValidationError, match=f"deeper than {MAX_PROPERTIES_DEPTH} levels"):
        event(deep(MAX_PROPERTIES_DEPTH + 1))


def test_a_very_deep_structure_is_refused_without_recursion() -> None:
    with pytest.raises(ValidationError, match="deeper than"):
        event(deep(100_000))


def test_a_structure_that_contains_itself_is_refused() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(ValidationError, match="deeper than"):
        event(loop)


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf, float("1e999")])
def test_non_finite_numbers_are_refused(number: float) -> None:
    with pytest.raises(ValidationError, match="NaN or an infinite number"):
        event({"a": {"b": [1, number]}})


def test_integers_are_bounded_to_what_json_can_print() -> None:
    biggest = 10**MAX_INTEGER_DIGITS - 1
    assert decode(encode(event({"n": -biggest})), DomainEvent).properties == {"n": -biggest}
    with pytest.raises(ValidationError, match=f"more than {MAX_INTEGER_DIGITS} digits"):
        event({"n": [10**MAX_INTEGER_DIGITS]})


@pytest.mark.parametrize("value", [b"bytes", {1, 2}, object(), 1j])
def test_values_that_are_not_json_are_refused(value: object) -> None:
    with pytest.raises(ValidationError, match="only JSON values"):
        event({"x": [value]})


def test_non_string_keys_are_refused_at_any_depth() -> None:
    with pytest.raises(ValidationError, match="string keys"):
        event({"x": {1: "one"}})


def test_the_device_event_builder_applies_the_same_rules() -> None:
    with pytest.raises(ValidationError, match="lone surrogate"):
        DomainEvent.for_device_event("ComputerAdded", {"deviceName": "\ud800"})


# --- the codec: what arrives as bytes --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(POISON_PROPERTIES))
def test_poison_records_are_decode_errors_with_their_reason(name: str) -> None:
    text, reason = POISON_PROPERTIES[name]
    with pytest.raises(DecodeError, match=reason):
        decode(raw_event(text), DomainEvent)


@pytest.mark.parametrize("depth", [MAX_PROPERTIES_DEPTH + 1, 980, 990, 5_000, 200_000])
def test_deep_documents_are_decode_errors_never_recursion_errors(depth: int) -> None:
    with pytest.raises(DecodeError, match=f"deeper than {MAX_PROPERTIES_DEPTH} levels"):
        decode(raw_event(nested(depth)), DomainEvent)


def test_depth_at_the_bound_decodes() -> None:
    decoded = decode(raw_event(nested(MAX_PROPERTIES_DEPTH)), DomainEvent)
    assert decoded.properties == deep(MAX_PROPERTIES_DEPTH)


@pytest.mark.parametrize(
    ("text", "too_deep"),
    [
        ("{}", False),
        ('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', False),
        ('{"a": "\\"' + "[" * 100 + '"}', False),
        (nested(MAX_PROPERTIES_DEPTH), False),
        (nested(MAX_PROPERTIES_DEPTH + 1), True),
        ('{"a": [' + "{}," * 500 + "{}]}", False),
    ],
)
def test_depth_is_counted_outside_strings_only(text: str, too_deep: bool) -> None:
    assert json_too_deep(text) is too_deep


def test_encode_refuses_nan_instead_of_writing_a_non_json_token() -> None:
    # model_construct skips validation, as a bug elsewhere might: encode still refuses.
    bad = DomainEvent.model_construct(
        event_id="e", source="items", operation="add", occurred_at=1, properties={"x": math.nan}
    )
    with pytest.raises(ValueError, match="JSON"):
        encode(bad)


# --- the matcher's pure step -----------------------------------------------------------------


def test_a_poison_event_for_a_matching_webhook_is_a_decode_error_not_a_crash() -> None:
    directory = directory_matching_everything()
    for text, _ in POISON_PROPERTIES.values():
        with pytest.raises(DecodeError):
            match_record(raw_event(text), directory, 1)
    [(key, job)] = match_record(raw_event('{"ok": true}'), directory, 1)
    decoded = decode(job, DeliveryJob)
    assert decoded.webhook_id == "wh-all"
    assert key == decoded.delivery_id.encode(), "jobs are keyed by delivery, to spread a webhook"
    assert decoded.events[0].properties == {"ok": True}


def test_failure_reasons_are_encodable_and_bounded() -> None:
    reason = failure_reason(UnicodeEncodeError("utf-8", "\ud800" * 5000, 0, 1, "surrogates"))
    assert reason.startswith("UnicodeEncodeError: ")
    reason.encode("utf-8")
    assert len(reason) < 2100
    assert failure_reason(DecodeError("bad \udc80 bytes")) == "bad \\udc80 bytes"


class _Letters:
    """Collects what the matcher would dead-letter (the real path is tested against Kafka)."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    async def __call__(self, event: Any, reason: str) -> None:
        self.reasons.append(reason)


_EVENT = SimpleNamespace(message=SimpleNamespace(topic="events", partition=2, offset=41))


def _raise(exc: BaseException) -> Any:
    raise exc


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (DecodeError("not an Avro single-object record"), "not an Avro single-object record"),
        (
            UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
            "handling failed: UnicodeEncodeError: 'utf-8' codec can't encode",
        ),
        (RecursionError("maximum recursion depth exceeded"), "handling failed: RecursionError"),
        (KeyError("webhook"), "handling failed: KeyError: 'webhook'"),
    ],
)
def test_a_record_whose_handling_raises_is_dead_lettered_with_the_reason(
    exc: Exception, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    letters = _Letters()
    result = asyncio.run(guarded(_EVENT, lambda: _raise(exc), letters, Throttle(burst=20)))  # type: ignore[arg-type]
    assert result is None
    [written] = letters.reasons
    assert written.startswith(reason)
    if not isinstance(exc, DecodeError):
        assert "handling events[2]@41 failed" in caplog.text


def test_a_record_handled_without_error_is_not_dead_lettered() -> None:
    letters = _Letters()
    assert asyncio.run(guarded(_EVENT, lambda: [1], letters, Throttle(burst=20))) == [1]  # type: ignore[arg-type]
    assert letters.reasons == []


def test_cancellation_is_never_dead_lettered() -> None:
    letters = _Letters()
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(
            guarded(_EVENT, lambda: _raise(asyncio.CancelledError()), letters, Throttle(burst=20))  # type: ignore[arg-type]
        )
    assert letters.reasons == []


def test_a_throttle_with_a_burst_holds_back_a_flood_and_counts_it() -> None:
    now = [0.0]
    limiter = Throttle(every_s=10, clock=lambda: now[0], burst=3)
    assert [limiter.allow() for _ in range(5)] == [0, 0, 0, None, None]
    now[0] = 10.0
    assert limiter.allow() == 2
    assert limiter.allow() == 0


# --- anything JSON can say ---------------------------------------------------------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**4000 - 10, max_value=10**4290)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
_JSON_VALUES = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=30,
)


@st.composite
def _properties_texts(draw: st.DrawFn) -> str:
    """A properties text as anyone could write it: json.dumps of anything (NaN and Infinity as
    their non-JSON tokens, surrogates escaped), sometimes wrapped in many more levels."""
    value = draw(st.dictionaries(st.text(), _JSON_VALUES, max_size=5))
    text = json.dumps(value, allow_nan=True, ensure_ascii=draw(st.booleans()))
    wrap = draw(st.sampled_from([0, 0, 0, MAX_PROPERTIES_DEPTH - 2, MAX_PROPERTIES_DEPTH, 990]))
    return '{"w": ' + "[" * wrap + text + "]" * wrap + "}" if wrap else text


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_properties_texts())
def test_any_properties_become_encodable_jobs_or_a_decode_error(text: str) -> None:
    try:
        data = raw_event(text)
    except UnicodeEncodeError:
        return  # not even an Avro string: no producer can write it
    try:
        jobs = match_record(data, directory_matching_everything(), 1)
    except DecodeError:
        return
    [(_, job)] = jobs
    back = decode(job, DeliveryJob)
    json.dumps(back.events[0].properties, allow_nan=False).encode("utf-8")
