"""The verdict on one attempt and the headers of a delivery (SPEC §4, §7)."""

from __future__ import annotations

import asyncio
import base64
import email.utils

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from hookstream import __version__
from hookstream.core.payloads import JSON_CONTENT_TYPE, XML_CONTENT_TYPE, Payload
from hookstream.net import egress
from hookstream.net.delivery import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    MAX_RETRY_AFTER_S,
    USER_AGENT,
    AttemptResult,
    Verdict,
    VerdictKind,
    judge,
    parse_retry_after,
    request_headers,
)
from hookstream.records.codec import decode
from hookstream.records.models import (
    AuthKind,
    CommandKind,
    DeliveryJob,
    DeliveryPolicy,
    DeliveryStatus,
    DomainEvent,
    Outcome,
    WebhookAuth,
    WebhookCommand,
    WebhookConfig,
)
from hookstream.sender.attempts import Attempt, Deliverer
from hookstream.settings import Settings
from hookstream.views.directory import WebhookDirectory

NOW = 1_700_000_000_000


def result(status: int | None, retry_after_s: float | None = None) -> AttemptResult:
    error = None if status is not None else "connect timeout: timed out"
    return AttemptResult(status, None, error, 12.0, retry_after_s)


# --- judge ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 226, 299])
@pytest.mark.parametrize("attempt", [1, 3])
def test_any_2xx_is_delivered(status: int, attempt: int) -> None:
    assert judge(result(status), attempt, 3, 30, NOW) == Verdict(VerdictKind.DELIVERED)


@pytest.mark.parametrize(
    "status", [None, 100, 199, 301, 302, 304, 307, 400, 401, 404, 429, 500, 502, 503, 504]
)
def test_failures_are_retried_while_attempts_remain(status: int | None) -> None:
    verdict = judge(result(status), 1, 3, 30, NOW)
    assert verdict.kind is VerdictKind.RETRY
    assert verdict.retry_at == NOW + 30_000
    assert verdict.reason
    assert not verdict.gone
    assert judge(result(status), 2, 3, 7.5, NOW).retry_at == NOW + 7_500


def test_reasons_name_the_problem() -> None:
    assert judge(result(None), 1, 3, 30, NOW).reason == "connect timeout: timed out"
    assert judge(AttemptResult(None, None, None, 1.0), 1, 3, 30, NOW).reason == "no response"
    assert "redirects are not followed" in (judge(result(302), 1, 3, 30, NOW).reason or "")
    assert judge(result(500), 1, 3, 30, NOW).reason == "HTTP 500"


@pytest.mark.parametrize("status", [None, 302, 404, 500, 503])
@pytest.mark.parametrize(("attempt", "max_attempts"), [(3, 3), (1, 1), (5, 5), (6, 5)])
def test_last_attempt_fails(status: int | None, attempt: int, max_attempts: int) -> None:
    verdict = judge(result(status), attempt, max_attempts, 30, NOW)
    assert verdict.kind is VerdictKind.FAILED
    assert verdict.retry_at is None
    assert f"attempt {attempt} of {max_attempts}" in (verdict.reason or "")
    assert not verdict.gone


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_410_fails_at_once_and_marks_gone(attempt: int) -> None:
    verdict = judge(result(410), attempt, 3, 30, NOW)
    assert verdict.kind is VerdictKind.FAILED
    assert verdict.gone is True
    assert verdict.retry_at is None
    assert "410" in (verdict.reason or "")


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_lengthens_the_delay(status: int) -> None:
    assert judge(result(status, 45), 1, 3, 30, NOW).retry_at == NOW + 45_000


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_clamped_to_100_s(status: int) -> None:
    assert MAX_RETRY_AFTER_S == 100
    assert judge(result(status, 3600), 1, 3, 30, NOW).retry_at == NOW + 100_000
    assert judge(result(status, float("inf")), 1, 3, 30, NOW).retry_at == NOW + 100_000


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_never_shortens_the_delay(status: int) -> None:
    assert judge(result(status, 1), 1, 3, 30, NOW).retry_at == NOW + 30_000
    assert judge(result(status, 0), 1, 3, 30, NOW).retry_at == NOW + 30_000


@pytest.mark.parametrize("status", [400, 500, 502, 504, None])
def test_retry_after_is_ignored_on_other_statuses(status: int | None) -> None:
    assert judge(result(status, 90), 1, 3, 30, NOW).retry_at == NOW + 30_000


def test_retry_after_does_not_lift_the_last_attempt() -> None:
    assert judge(result(429, 10), 3, 3, 30, NOW).kind is VerdictKind.FAILED


@settings(deadline=None)
@given(
    st.one_of(st.none(), st.integers(100, 599)),
    st.integers(1, 5),
    st.integers(1, 5),
    st.floats(1, 100),
    st.one_of(st.none(), st.floats(0, 1e9)),
)
def test_judge_properties(
    status: int | None, attempt: int, max_attempts: int, interval: float, retry_after: float | None
) -> None:
    verdict = judge(result(status, retry_after), attempt, max_attempts, interval, NOW)
    if status is not None and 200 <= status < 300:
        assert verdict.kind is VerdictKind.DELIVERED
    elif status == 410 or attempt >= max_attempts:
        assert verdict.kind is VerdictKind.FAILED
    else:
        assert verdict.kind is VerdictKind.RETRY
        assert verdict.retry_at is not None
        delay_ms = verdict.retry_at - NOW
        assert int(interval * 1000) <= delay_ms <= int(MAX_RETRY_AFTER_S * 1000)


@settings(deadline=None)
@given(st.floats(1, 100), st.floats(0, 1), st.one_of(st.none(), st.floats(0, 1e9)))
def test_jitter_never_shortens_the_interval_nor_lifts_the_retry_after_cap(
    interval: float, jitter: float, retry_after: float | None
) -> None:
    verdict = judge(result(503, retry_after), 1, 3, interval, NOW, jitter=jitter)
    assert verdict.retry_at is not None
    delay_ms = verdict.retry_at - NOW
    assert int(interval * 1000) <= delay_ms
    assert delay_ms <= max(int(interval * (1 + jitter) * 1000), int(MAX_RETRY_AFTER_S * 1000))


def test_jitter_spreads_a_burst_of_failures() -> None:
    spread = {judge(result(500), 1, 3, 30, NOW, jitter=0.1).retry_at for _ in range(50)}
    assert len(spread) > 40
    assert all(NOW + 30_000 <= at <= NOW + 33_000 for at in spread if at is not None)


@pytest.mark.parametrize(
    ("attempt_result", "reached"),
    [
        (None, True),
        (AttemptResult(500, "", None, 1.0), True),
        (AttemptResult(None, None, "connect timeout", 1.0), False),
        (AttemptResult(None, None, "address refused", 0.0, permanent=True), None),
    ],
)
def test_an_attempt_says_whether_the_receiver_was_reached(
    attempt_result: AttemptResult | None, reached: bool | None
) -> None:
    assert Attempt(attempt_result, []).reached is reached


# --- Retry-After ------------------------------------------------------------------------------


def test_parse_retry_after_seconds() -> None:
    assert parse_retry_after("120", 0) == 120.0
    assert parse_retry_after(" 5 ", 0) == 5.0
    assert parse_retry_after("0", 0) == 0.0


def test_parse_retry_after_http_date() -> None:
    now_s = 1_700_000_000.0
    header = email.utils.formatdate(now_s + 42, usegmt=True)
    assert parse_retry_after(header, now_s) == pytest.approx(42)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now_s) == 0.0  # in the past


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "Wed, 99 Foo 2015", "  "])
def test_parse_retry_after_unreadable(value: str | None) -> None:
    assert parse_retry_after(value, 0) is None


@pytest.mark.parametrize("value", ["²", "1²", "①"])
def test_parse_retry_after_unicode_digits(value: str) -> None:
    assert parse_retry_after(value, 0) is None


@settings(deadline=None)
@given(st.text(st.characters(max_codepoint=127), max_size=40))
def test_parse_retry_after_never_raises_on_ascii(value: str) -> None:
    seconds = parse_retry_after(value, 1_700_000_000.0)
    assert seconds is None or seconds >= 0


# --- headers ----------------------------------------------------------------------------------


def config(auth: WebhookAuth | None = None) -> WebhookConfig:
    return WebhookConfig(
        webhook_id="wh-1",
        name="n",
        payload_url="https://example.com/hook",
        triggers=["/items"],
        auth=auth or WebhookAuth(),
    )


JSON_PAYLOAD = Payload(b"{}", JSON_CONTENT_TYPE)


def test_base_headers() -> None:
    headers = request_headers(config(), JSON_PAYLOAD, "d-123", 2)
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith(f"hookstream/{__version__}")
    assert headers["webhook-id"] == "d-123"
    assert headers[DELIVERY_HEADER] == "d-123" == headers["X-Hookstream-Delivery"]
    assert headers[ATTEMPT_HEADER] == "2"
    assert "Authorization" not in headers


def test_xml_content_type() -> None:
    headers = request_headers(config(), Payload(b"<x/>", XML_CONTENT_TYPE), "d", 1)
    assert headers["Content-Type"].startswith("text/xml")


def test_basic_auth_header() -> None:
    auth = WebhookAuth(kind=AuthKind.BASIC, username="Aladdin", password=SecretStr("open sesame"))
    headers = request_headers(config(auth), JSON_PAYLOAD, "d", 1)
    # The example of RFC 7617.
    assert headers["Authorization"] == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="


def test_basic_auth_header_utf8() -> None:
    auth = WebhookAuth(kind=AuthKind.BASIC, username="jürgen", password=SecretStr("pä:ss"))
    headers = request_headers(config(auth), JSON_PAYLOAD, "d", 1)
    scheme, token = headers["Authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(token).decode("utf-8") == "jürgen:pä:ss"


def test_header_auth_headers_are_added() -> None:
    auth = WebhookAuth(
        kind=AuthKind.HEADER,
        headers={"Authorization": SecretStr("Bearer t"), "X-Api-Key": SecretStr("k")},
    )
    headers = request_headers(config(auth), JSON_PAYLOAD, "d-9", 1)
    assert headers["Authorization"] == "Bearer t"
    assert headers["X-Api-Key"] == "k"
    assert headers["webhook-id"] == "d-9"
    assert headers["Content-Type"] == "application/json"
    assert all(isinstance(v, str) for v in headers.values())


# --- an attempt never raises --------------------------------------------------------------------


class _Policy:
    """The live delivery policy, fixed (the feed reads it from Kafka)."""

    current = DeliveryPolicy(max_attempts=3, retry_interval_s=1.0)


def _deliverer(webhook: WebhookConfig) -> Deliverer:
    directory = WebhookDirectory()
    directory.put(webhook)
    settings = Settings(
        delivery={"allow_plain_http": True}, security={"allow_networks": ["127.0.0.1/32"]}
    )
    return Deliverer(settings, httpx.AsyncClient(), directory, _Policy())  # type: ignore[arg-type]


def _job(webhook: WebhookConfig, trigger: str, resource_id: str) -> DeliveryJob:
    event = DomainEvent(
        event_id="e-1",
        source="computers",
        operation="add",
        resource_id=resource_id,
        occurred_at=NOW,
    )
    return DeliveryJob(
        delivery_id="d-1",
        webhook_id=webhook.webhook_id,
        trigger=trigger,
        events=[event],
        due_at=NOW,
        triggered_at=NOW,
    )


def _outputs(deliverer: Deliverer, job: DeliveryJob) -> tuple[DeliveryStatus, WebhookCommand]:
    settings = deliverer.settings
    attempt = asyncio.run(deliverer.deliver(job))
    assert attempt.reached is None, "a failure before any request says nothing of the receiver"
    outputs = attempt.outputs
    assert [topic for topic, _, _ in outputs] == [
        settings.topics.status,
        settings.topics.webhook_commands,
    ]
    return decode(outputs[0][2], DeliveryStatus), decode(outputs[1][2], WebhookCommand)


def test_a_payload_that_cannot_be_built_is_a_final_counted_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    webhook = WebhookConfig(
        webhook_id="wh-dev",
        name="Devices",
        payload_url="http://127.0.0.1:9/hook",
        triggers=["ComputerAdded"],
    )
    # "²".isdigit() is true but int("²") raises: the device payload builder trips on it.
    status, command = _outputs(_deliverer(webhook), _job(webhook, "ComputerAdded", "\u00b2"))
    assert status.outcome is Outcome.FAILED and status.final
    assert "the payload could not be built" in (status.error or "")
    assert command.kind is CommandKind.RECORD_FAILURE
    assert "could not be built" in caplog.text


def test_an_unexpected_error_in_an_attempt_is_a_final_counted_failure(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    webhook = WebhookConfig(
        webhook_id="wh-x", name="X", payload_url="http://127.0.0.1:9/hook", triggers=["/items"]
    )

    async def broken(*args: object, **kwargs: object) -> AttemptResult:
        raise RuntimeError("a bug")

    monkeypatch.setattr(egress, "post", broken)
    status, command = _outputs(_deliverer(webhook), _job(webhook, "/items", "1"))
    assert status.outcome is Outcome.FAILED and status.final
    assert "RuntimeError: a bug" in (status.error or "")
    assert command.kind is CommandKind.RECORD_FAILURE
    assert "failed unexpectedly" in caplog.text


def test_a_retry_is_keyed_by_delivery_id_and_its_status_by_webhook_id() -> None:
    """Retries spread over partitions (so over senders); status stays keyed per webhook."""
    webhook = WebhookConfig(
        webhook_id="wh-r", name="R", payload_url="http://127.0.0.1:9/hook", triggers=["/items"]
    )
    deliverer = _deliverer(webhook)
    verdict = Verdict(VerdictKind.RETRY, reason="HTTP 500", retry_at=NOW + 1000)
    job = _job(webhook, "/items", "1")
    outputs = deliverer._record(job, "R", deliverer._base(job, NOW), None, result(500), verdict)
    topics = deliverer.settings.topics
    assert [(topic, key) for topic, key, _ in outputs] == [
        (topics.status, b"wh-r"),
        (topics.retries, b"d-1"),
    ]
    retry = decode(outputs[1][2], DeliveryJob)
    assert (retry.delivery_id, retry.attempt, retry.due_at) == ("d-1", 2, NOW + 1000)


def test_a_webhook_missing_from_the_view_is_looked_up_again_once_the_view_caught_up() -> None:
    """The matcher routed the job with a config the sender's view did not hold yet: the
    attempt waits for the view (``fresh_since``) instead of skipping it as deleted."""
    webhook = WebhookConfig(
        webhook_id="wh-new",
        name="New",
        payload_url="https://192.0.2.1/hook",  # refused by the address policy: no request
        triggers=["/items"],
    )
    directory = WebhookDirectory()
    asked: list[float] = []

    async def fresh_since(moment: float) -> None:
        asked.append(moment)
        directory.put(webhook)

    settings = Settings(security={"allow_networks": ["127.0.0.1/32"]})
    deliverer = Deliverer(
        settings,
        httpx.AsyncClient(),
        directory,
        _Policy(),  # type: ignore[arg-type]
        fresh_since,
    )
    attempt = asyncio.run(deliverer.deliver(_job(webhook, "/items", "i-1")))
    [status] = [
        decode(value, DeliveryStatus)
        for topic, _, value in attempt.outputs
        if topic == settings.topics.status
    ]
    assert len(asked) == 1
    assert status.outcome is not Outcome.SKIPPED and status.webhook_name == "New"
    assert status.error is not None and "the webhook was deleted" not in status.error
