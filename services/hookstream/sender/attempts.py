"""One attempt of one delivery job: look the webhook up, POST, judge, and say what to record.

``Deliverer.deliver`` returns an ``Attempt``: what the POST produced (if one was made) and the
records it causes (a status record, and a retry job or a failure count for the registry); the
sender writes them and commits only once they are acked, and feeds the result to the webhook's
circuit breaker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from hookstream.core.payloads import build_payload
from hookstream.metrics import (
    ATTEMPT_SECONDS,
    DELIVERIES_FINAL,
    DELIVERY_ATTEMPTS,
    RETRIES_SCHEDULED,
)
from hookstream.net import egress
from hookstream.net.delivery import AttemptResult, Verdict, VerdictKind, judge, request_headers
from hookstream.net.oauth import OAuthTokens
from hookstream.net.ssrf import AddressPolicy
from hookstream.net.tls import shared_contexts
from hookstream.records.codec import encode
from hookstream.records.models import (
    CommandKind,
    DeliveryJob,
    DeliveryStatus,
    Outcome,
    WebhookCommand,
    WebhookConfig,
    now_ms,
)
from hookstream.sender.urls import UrlVerdicts
from hookstream.settings import Settings, TopicSettings
from hookstream.views.directory import WebhookDirectory, family_of
from hookstream.views.policy import PolicyFeed

log = logging.getLogger(__name__)

#: The counters of every attempt, their labels bound once (``labels()`` is a lookup per call).
ATTEMPTS_DELIVERED = DELIVERY_ATTEMPTS.labels("delivered")
ATTEMPTS_FAILED = DELIVERY_ATTEMPTS.labels("failed")
FINAL_DELIVERED = DELIVERIES_FINAL.labels("delivered")
FINAL_FAILED = DELIVERIES_FINAL.labels("failed")

#: A record to write: (topic, key, value).
Output = tuple[str, bytes | None, bytes]


@dataclass(frozen=True)
class Attempt:
    """One attempt: the POST's result (None when none was due: the webhook is gone or off) and
    the records to write for it."""

    result: AttemptResult | None
    outputs: list[Output]

    @property
    def reached(self) -> bool | None:
        """Whether the receiver was reachable, for its circuit breaker: True when it answered
        (any HTTP status) or nothing was sent, False after a connection failure or timeout, None
        when the attempt failed for good before trying (it says nothing about the receiver)."""
        if self.result is None or self.result.http_status is not None:
            return True
        return None if self.result.permanent else False


class Deliverer:
    """Makes attempts with the current webhook config and the current delivery policy."""

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        directory: WebhookDirectory,
        policy: PolicyFeed,
        fresh_since: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.http = http
        self.directory = directory
        self.policy = policy
        self.fresh_since = fresh_since
        self.guard = AddressPolicy(settings.security.allow_networks)
        self.urls = UrlVerdicts(self.guard, settings.delivery.allow_plain_http)
        self.tokens = OAuthTokens(self.guard, settings.delivery.allow_plain_http)

    async def deliver(self, job: DeliveryJob) -> Attempt:
        """Make one attempt of a job; return its result and the records it causes.

        Never raises (but on cancel): whatever goes wrong becomes a failed, final attempt with a
        status record and a failure count, so the job's offset is always done and committed.
        """
        try:
            return await self._deliver(job)
        except Exception as exc:
            log.exception(
                "delivery %s to webhook %s attempt %d failed unexpectedly",
                job.delivery_id,
                job.webhook_id,
                job.attempt,
                extra={"delivery_id": job.delivery_id, "webhook_id": job.webhook_id},
            )
            return self._unexpected(job, exc)

    def _base(self, job: DeliveryJob, started: int) -> dict[str, Any]:
        return {
            "delivery_id": job.delivery_id,
            "webhook_id": job.webhook_id,
            "event_ids": [event.event_id for event in job.events],
            "trigger": job.trigger,
            "attempt": job.attempt,
            "max_attempts": self.policy.current.max_attempts,
            "attempted_at": started,
        }

    def _unexpected(self, job: DeliveryJob, exc: Exception) -> Attempt:
        """The records of an attempt that broke on our side: failed for good, counted."""
        config = self.directory.get(job.webhook_id)
        reason = f"the attempt could not be made: {type(exc).__name__}: {exc}"
        result = AttemptResult(None, None, reason, 0.0, permanent=True)
        verdict = Verdict(VerdictKind.FAILED, reason=reason)
        name = config.name if config is not None else ""
        try:
            outputs = self._record(job, name, self._base(job, now_ms()), None, result, verdict)
        except Exception:
            log.exception("could not even record delivery %s as failed", job.delivery_id)
            outputs = []
        return Attempt(result, outputs)

    async def _deliver(self, job: DeliveryJob) -> Attempt:
        delivery = self.settings.delivery
        policy = self.policy.current
        config = await self._config_for(job)
        started = now_ms()
        base = self._base(job, started)
        if config is None or not config.active:
            return self._skipped(job, config, base)
        try:
            payload = build_payload(
                config, family_of(config), job.trigger, job.events, started, delivery.portal_url
            )
        except Exception as exc:
            return self._unbuildable(job, config, base, exc)
        refusal = self.urls.refusal(config.payload_url)
        if refusal is not None:
            result = AttemptResult(None, None, refusal, 0.0, permanent=True)
        else:
            result = await self._post(config, job, payload, policy.request_timeout_s)
        verdict = judge(
            result,
            job.attempt,
            policy.max_attempts,
            policy.retry_interval_s,
            now_ms(),
            jitter=delivery.retry_jitter,
        )
        return Attempt(result, self._record(job, config.name, base, payload.body, result, verdict))

    async def _config_for(self, job: DeliveryJob) -> WebhookConfig | None:
        """The job's webhook as the view holds it, looked up again once the view has caught up
        if it is missing or inactive: the matcher routed this job with a config this view may
        not hold yet (a webhook created or activated a moment ago)."""
        config = self.directory.get(job.webhook_id)
        if (config is None or not config.active) and self.fresh_since is not None:
            await self.fresh_since(time.monotonic())
            config = self.directory.get(job.webhook_id)
        return config

    def _skipped(
        self, job: DeliveryJob, config: WebhookConfig | None, base: dict[str, Any]
    ) -> Attempt:
        """A job whose webhook is deleted or deactivated: no request, a final skipped status."""
        reason = "the webhook was deleted" if config is None else "the webhook is deactivated"
        log.info(
            "skipping delivery %s to webhook %s: %s",
            job.delivery_id,
            job.webhook_id,
            reason,
            extra={"delivery_id": job.delivery_id, "webhook_id": job.webhook_id},
        )
        DELIVERY_ATTEMPTS.labels("skipped").inc()
        DELIVERIES_FINAL.labels("skipped").inc()
        status = DeliveryStatus(
            **base,
            webhook_name=config.name if config else "",
            outcome=Outcome.SKIPPED,
            final=True,
            error=reason,
        )
        key = job.webhook_id.encode()
        return Attempt(None, [(self.settings.topics.status, key, encode(status))])

    def _unbuildable(
        self, job: DeliveryJob, config: WebhookConfig, base: dict[str, Any], exc: Exception
    ) -> Attempt:
        """A job whose payload cannot be built (a bug or a config no rule foresaw): failed for
        good, with the reason, rather than retried into the same error."""
        log.exception(
            "the payload of delivery %s to webhook %s could not be built",
            job.delivery_id,
            job.webhook_id,
            extra={"delivery_id": job.delivery_id, "webhook_id": job.webhook_id},
        )
        reason = f"the payload could not be built: {type(exc).__name__}: {exc}"
        result = AttemptResult(None, None, reason, 0.0, permanent=True)
        verdict = Verdict(VerdictKind.FAILED, reason=reason)
        return Attempt(result, self._record(job, config.name, base, None, result, verdict))

    async def _post(
        self, config: WebhookConfig, job: DeliveryJob, payload: Any, request_timeout_s: float
    ) -> AttemptResult:
        delivery = self.settings.delivery
        connect = config.connect_timeout_s or delivery.default_connect_timeout_s
        read = config.read_timeout_s or request_timeout_s
        timeout = httpx.Timeout(read, connect=connect, read=read, write=read, pool=connect)
        headers = request_headers(config, payload, job.delivery_id, job.attempt)
        return await egress.send(
            self.http,
            config,
            config.payload_url,
            payload,
            headers,
            timeout,
            total_timeout_s=connect + read + 1.0,
            excerpt_bytes=delivery.response_excerpt_bytes,
            contexts=shared_contexts(self.settings.security.ca_bundle),
            tokens=self.tokens,
        )

    def _record(
        self,
        job: DeliveryJob,
        webhook_name: str,
        base: dict[str, Any],
        body: bytes | None,
        result: AttemptResult,
        verdict: Verdict,
    ) -> list[Output]:
        topics = self.settings.topics
        delivered = verdict.kind is VerdictKind.DELIVERED
        fields = {
            **base,
            "webhook_name": webhook_name,
            "duration_ms": round(result.duration_ms, 3),
            "outcome": Outcome.DELIVERED if delivered else Outcome.FAILED,
            "final": verdict.kind is not VerdictKind.RETRY,
            "next_attempt_at": verdict.retry_at,
            "http_status": result.http_status,
            "response_excerpt": result.response_excerpt,
            "error": verdict.reason,
            "payload": body.decode("utf-8", "replace") if body is not None else None,
        }
        # A delivered attempt's record is made of fields of records already validated (the job,
        # the config) and of text decoded with errors="replace": validating it again cost a
        # fifth of the record. A failure's reason comes from exceptions, so it is validated.
        status = DeliveryStatus.model_construct(**fields) if delivered else DeliveryStatus(**fields)
        _report(job, result, verdict)
        return outputs_for(job, encode(status), verdict, topics)


def _report(job: DeliveryJob, result: AttemptResult, verdict: Verdict) -> None:
    """Log an attempt and count it in the metrics."""
    delivered = verdict.kind is VerdictKind.DELIVERED
    # A delivered attempt is logged at DEBUG: its status record already tells it, and at
    # INFO the line cost more CPU than the attempt's own code. Failures stay at INFO: they
    # are what an operator reads the log for (and the circuit breaker bounds their rate).
    level = logging.DEBUG if delivered else logging.INFO
    if log.isEnabledFor(level):
        log.log(
            level,
            "delivery %s to webhook %s attempt %d: %s%s",
            job.delivery_id,
            job.webhook_id,
            job.attempt,
            verdict.kind,
            f" ({verdict.reason})" if verdict.reason else "",
            extra={
                "delivery_id": job.delivery_id,
                "webhook_id": job.webhook_id,
                "attempt": job.attempt,
            },
        )
    ATTEMPT_SECONDS.observe(result.duration_ms / 1000)
    if delivered:
        ATTEMPTS_DELIVERED.inc()
        FINAL_DELIVERED.inc()
    else:
        ATTEMPTS_FAILED.inc()
        if verdict.kind is VerdictKind.RETRY:
            RETRIES_SCHEDULED.inc()
        else:
            FINAL_FAILED.inc()


def outputs_for(
    job: DeliveryJob, status: bytes, verdict: Verdict, topics: TopicSettings
) -> list[Output]:
    """The records an attempt causes, in order: its status record, then a retry of the job due
    at ``verdict.retry_at``, or a failure command for the registry (deactivate if it is gone)."""
    key = job.webhook_id.encode()
    outputs: list[Output] = [(topics.status, key, status)]
    if verdict.kind is VerdictKind.RETRY and verdict.retry_at is not None:
        retry = job.model_copy(update={"attempt": job.attempt + 1, "due_at": verdict.retry_at})
        # Keyed by delivery id like the jobs themselves: one busy webhook's retries spread
        # over partitions, so over senders.
        outputs.append((topics.retries, job.delivery_id.encode(), encode(retry)))
    elif verdict.kind is VerdictKind.FAILED:
        command = WebhookCommand(
            webhook_id=job.webhook_id,
            kind=CommandKind.DEACTIVATE if verdict.gone else CommandKind.RECORD_FAILURE,
            delivery_id=job.delivery_id,
            reason=verdict.reason,
        )
        outputs.append((topics.webhook_commands, key, encode(command)))
    return outputs
