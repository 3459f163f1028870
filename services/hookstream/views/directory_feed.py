"""Keeps a ``WebhookDirectory`` in step with the compacted config topic.

Each service that routes or sends keeps its own directory, fed by a ``DirectoryFeed``: a
``CompactedFeed`` that reads every partition of the config topic from the beginning, then
follows it, and hands the directory each record as the topic holds it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from hookstream.core.errors import DecodeError
from hookstream.kafka.follower import CompactedFeed
from hookstream.records.codec import decode
from hookstream.records.models import WebhookConfig
from hookstream.records.secretbox import secret_box
from hookstream.settings import KafkaSecuritySettings
from hookstream.views.directory import REVISION_HEADER, WebhookDirectory

log = logging.getLogger(__name__)


def revision_from_headers(headers: Iterable[tuple[str, bytes]] | None) -> int | None:
    """The revision header of a record, if it has a readable one."""
    for name, value in headers or ():
        if name == REVISION_HEADER:
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                return int(value.decode())
    return None


class DirectoryFeed(CompactedFeed):
    """Keeps a ``WebhookDirectory`` in step with the config topic; ``ready`` once caught up."""

    def __init__(
        self,
        directory: WebhookDirectory,
        bootstrap: str,
        topic: str,
        client_id: str,
        security: KafkaSecuritySettings | None = None,
    ) -> None:
        super().__init__(bootstrap, topic, client_id, security=security)
        self.directory = directory
        self.undecodable = 0

    def apply(self, record: Any) -> None:
        if record.value is None:
            if record.key is not None:
                webhook_id = record.key.decode("utf-8", "replace")
                self.directory.delete(webhook_id, revision_from_headers(record.headers))
            return
        try:
            config = decode(record.value, WebhookConfig)
        except DecodeError as exc:
            self.undecodable += 1
            log.error(
                "skipping undecodable webhook config at %s[%d]@%d: %s",
                record.topic,
                record.partition,
                record.offset,
                exc,
            )
            return
        self.directory.put(config, record.value)

    def caught_up(self) -> None:
        # Webhooks whose secret no key decrypts were skipped as damaged; if that is every one
        # with a secret, the keys are wrong and the view would silently lack them all: stop.
        secret_box().check_keys()
        log.info("webhook directory caught up: %d webhooks", len(self.directory))
