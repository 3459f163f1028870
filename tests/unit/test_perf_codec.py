"""The matcher's fast paths write exactly what the general ones do: ``encode_jobs`` against
``encode(DeliveryJob(...))``, ``delivery_id_for`` against ``uuid.uuid5``."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookstream.records import jobcodec
from hookstream.records.codec import decode, encode
from hookstream.records.ids import DELIVERY_NAMESPACE, delivery_id_for
from hookstream.records.jobcodec import encode_jobs
from hookstream.records.models import DeliveryJob, DomainEvent

_CHARS = st.characters(exclude_categories=["Cs"])  # no lone surrogates: UTF-8 cannot hold them
_TEXT = st.text(_CHARS, max_size=40)
_JSON: Any = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
_EVENTS = st.builds(
    DomainEvent,
    event_id=st.text(_CHARS, min_size=1, max_size=60),
    source=st.sampled_from(["items", "users", "orders"]),
    operation=st.sampled_from(["update", "add", "signin"]),
    resource_id=st.none() | st.from_regex(r"\A[a-zé✓0-9-]{1,20}\Z"),
    actor_username=st.none() | _TEXT,
    occurred_at=st.integers(0, 2**62),
    properties=st.dictionaries(_TEXT, _JSON, max_size=4),
)
_HEADS = st.lists(
    st.tuples(st.uuids().map(str), _TEXT.filter(bool), _TEXT.filter(bool)), min_size=1, max_size=4
)


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(_EVENTS, min_size=1, max_size=3),
    heads=_HEADS,
    due_at=st.integers(-(2**63), 2**63 - 1),
    triggered_at=st.integers(0, 2**63 - 1),
    attempt=st.integers(1, 2**31 - 1),
    redelivery=st.booleans(),
)
def test_encode_jobs_writes_what_encode_writes(
    events: list[DomainEvent],
    heads: list[tuple[str, str, str]],
    due_at: int,
    triggered_at: int,
    attempt: int,
    redelivery: bool,
) -> None:
    fast = encode_jobs(
        events,
        heads,
        due_at=due_at,
        triggered_at=triggered_at,
        attempt=attempt,
        redelivery=redelivery,
    )
    jobs = [
        DeliveryJob(
            delivery_id=delivery_id,
            webhook_id=webhook_id,
            trigger=trigger,
            events=events,
            attempt=attempt,
            due_at=due_at,
            triggered_at=triggered_at,
            redelivery=redelivery,
        )
        for delivery_id, webhook_id, trigger in heads
    ]
    assert fast == [encode(job) for job in jobs]
    assert [decode(value, DeliveryJob) for value in fast] == jobs


def test_encode_jobs_needs_an_event() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        encode_jobs([], [("d", "w", "/items/update")], due_at=1, triggered_at=1)


@settings(max_examples=300, deadline=None)
@given(event_id=st.text(_CHARS), webhook_id=_TEXT)
def test_delivery_id_is_uuid5(event_id: str, webhook_id: str) -> None:
    expected = uuid.uuid5(DELIVERY_NAMESPACE, f"{event_id}\x00{webhook_id}")
    assert delivery_id_for(event_id, webhook_id) == str(expected)


def test_the_job_schema_is_the_one_encode_jobs_writes() -> None:
    """Else encode_jobs falls back to the general path: right, but slow again."""
    assert jobcodec._job_layout_holds()
