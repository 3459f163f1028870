"""The global delivery policy, live: environment defaults, changes from the settings topic."""

from __future__ import annotations

import logging
from typing import Any

from hookstream.core.errors import DecodeError
from hookstream.kafka.follower import CompactedFeed
from hookstream.records.codec import decode
from hookstream.records.models import DeliveryPolicy
from hookstream.settings import DeliverySettings, KafkaSecuritySettings

log = logging.getLogger(__name__)

#: Key of the delivery policy record in the settings topic.
POLICY_KEY = b"delivery"


def default_policy(delivery: DeliverySettings) -> DeliveryPolicy:
    """The policy the environment sets, in force until one is written to the settings topic."""
    return DeliveryPolicy(
        max_attempts=delivery.max_attempts,
        retry_interval_s=delivery.retry_interval_s,
        request_timeout_s=delivery.request_timeout_s,
        modified_at=0,
    )


class PolicyFeed(CompactedFeed):
    """Follows the settings topic; ``current`` is the policy in force now."""

    def __init__(
        self,
        delivery: DeliverySettings,
        bootstrap: str,
        topic: str,
        client_id: str,
        security: KafkaSecuritySettings | None = None,
    ) -> None:
        super().__init__(bootstrap, topic, client_id, security=security)
        self.current = default_policy(delivery)
        self._default = self.current

    def apply(self, record: Any) -> None:
        if record.key != POLICY_KEY:
            return
        if record.value is None:
            self.current = self._default
            return
        try:
            self.current = decode(record.value, DeliveryPolicy)
        except DecodeError as exc:
            log.error(
                "ignoring an undecodable delivery policy at offset %d: %s", record.offset, exc
            )
            return
        log.info("delivery policy now %s", self.current.model_dump())
