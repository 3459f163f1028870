"""The records and log lines of one attempt, built the cheap way, say the same as before."""

from __future__ import annotations

import logging

import httpx
import pytest

from hookstream.net.delivery import AttemptResult, Verdict, VerdictKind
from hookstream.records.codec import decode, encode
from hookstream.records.models import (
    CommandKind,
    DeliveryJob,
    DeliveryPolicy,
    DeliveryStatus,
    DomainEvent,
    Outcome,
    WebhookCommand,
    WebhookConfig,
)
from hookstream.sender.attempts import Deliverer, outputs_for
from hookstream.settings import Settings
from hookstream.views.directory import WebhookDirectory

NOW = 1_700_000_000_000
WEBHOOK = WebhookConfig(
    webhook_id="wh-1", name="Items", payload_url="http://127.0.0.1:9/hook", triggers=["/items"]
)


class _Policy:
    current = DeliveryPolicy(max_attempts=3, retry_interval_s=1.0)


def _deliverer() -> Deliverer:
    directory = WebhookDirectory()
    directory.put(WEBHOOK)
    settings = Settings(
        delivery={"allow_plain_http": True}, security={"allow_networks": ["127.0.0.1/32"]}
    )
    return Deliverer(settings, httpx.AsyncClient(), directory, _Policy())  # type: ignore[arg-type]


def _job() -> DeliveryJob:
    event = DomainEvent(
        event_id="e-1", source="items", operation="update", resource_id="7", occurred_at=NOW
    )
    return DeliveryJob(
        delivery_id="d-1",
        webhook_id="wh-1",
        trigger="/items",
        events=[event],
        due_at=NOW,
        triggered_at=NOW,
    )


def test_a_delivered_record_is_the_record_validation_would_have_built() -> None:
    deliverer = _deliverer()
    job = _job()
    # Not UTF-8 at the end: the record carries it with replacement characters.
    body = '{"events":[{"id":"7","note":"caf\u00e9 \U0001f600"}]}'.encode() + b"\xff"
    answer = AttemptResult(200, "ok \ufffd", None, 12.3456)
    outputs = deliverer._record(
        job, "Items", deliverer._base(job, NOW), body, answer, Verdict(VerdictKind.DELIVERED)
    )
    status_bytes = outputs[0][2]
    expected = DeliveryStatus(
        delivery_id="d-1",
        webhook_id="wh-1",
        event_ids=["e-1"],
        trigger="/items",
        attempt=1,
        max_attempts=3,
        attempted_at=NOW,
        webhook_name="Items",
        duration_ms=12.346,
        outcome=Outcome.DELIVERED,
        final=True,
        http_status=200,
        response_excerpt="ok \ufffd",
        payload=body.decode("utf-8", "replace"),
    )
    assert status_bytes == encode(expected)
    assert decode(status_bytes, DeliveryStatus) == expected


def test_a_failure_reason_that_is_not_utf8_is_still_refused() -> None:
    """Only delivered records skip validation: a failure's reason comes from an exception."""
    deliverer = _deliverer()
    job = _job()
    answer = AttemptResult(None, None, "bad \ud800", 1.0)
    verdict = Verdict(VerdictKind.FAILED, reason="bad \ud800")
    with pytest.raises(ValueError, match="UTF-8"):
        deliverer._record(job, "Items", deliverer._base(job, NOW), None, answer, verdict)


def test_delivered_attempts_log_at_debug_and_failures_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    deliverer = _deliverer()
    job = _job()
    base = deliverer._base(job, NOW)
    ok = AttemptResult(200, "", None, 1.0)
    failed = AttemptResult(500, "", None, 1.0)
    retry = Verdict(VerdictKind.RETRY, reason="HTTP 500", retry_at=NOW + 1000)
    with caplog.at_level(logging.INFO, logger="hookstream.sender.attempts"):
        deliverer._record(job, "Items", base, None, ok, Verdict(VerdictKind.DELIVERED))
        deliverer._record(job, "Items", base, None, failed, retry)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "delivery d-1 to webhook wh-1 attempt 1: retry (HTTP 500)")
    ]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="hookstream.sender.attempts"):
        deliverer._record(job, "Items", base, None, ok, Verdict(VerdictKind.DELIVERED))
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "delivery d-1 to webhook wh-1 attempt 1: delivered")
    ]


# --- what an attempt writes -------------------------------------------------------------------


def test_a_delivered_attempt_writes_only_its_status() -> None:
    topics = Settings().topics
    outputs = outputs_for(_job(), b"status", Verdict(VerdictKind.DELIVERED), topics)
    assert outputs == [(topics.status, b"wh-1", b"status")]


def test_a_retry_is_the_next_attempt_due_then_keyed_by_delivery() -> None:
    topics = Settings().topics
    job = _job()
    verdict = Verdict(VerdictKind.RETRY, reason="HTTP 500", retry_at=NOW + 1000)
    status, (topic, key, value) = outputs_for(job, b"status", verdict, topics)
    assert status == (topics.status, b"wh-1", b"status")
    assert (topic, key) == (topics.retries, job.delivery_id.encode())
    retry = decode(value, DeliveryJob)
    assert (retry.attempt, retry.due_at) == (job.attempt + 1, NOW + 1000)
    assert retry.delivery_id == job.delivery_id


@pytest.mark.parametrize(
    ("gone", "kind"), [(False, CommandKind.RECORD_FAILURE), (True, CommandKind.DEACTIVATE)]
)
def test_a_final_failure_tells_the_registry(gone: bool, kind: CommandKind) -> None:
    topics = Settings().topics
    job = _job()
    verdict = Verdict(VerdictKind.FAILED, reason="HTTP 410", gone=gone)
    _, (topic, key, value) = outputs_for(job, b"status", verdict, topics)
    assert (topic, key) == (topics.webhook_commands, b"wh-1")
    command = decode(value, WebhookCommand)
    assert (command.kind, command.delivery_id, command.reason) == (
        kind,
        job.delivery_id,
        "HTTP 410",
    )
