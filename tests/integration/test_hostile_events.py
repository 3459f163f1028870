"""Poison events among valid ones (issue 19): real broker, matcher and sender, a real receiver.

Every valid event is delivered, every poison event is dead-lettered once with its reason, and
the matcher's agent never crashes (before, one such event stopped every delivery).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from kafka import KafkaProducer

from hookstream.client import HookstreamClient
from hookstream.records.codec import encode
from hookstream.records.ids import delivery_id_for
from hookstream.records.models import DeadLetter, WebhookConfig
from hookstream.settings import Settings
from hostile_events import POISON_PROPERTIES, raw_event
from support import (
    DeadLetterReader,
    Pipeline,
    Receiver,
    StatusReaderFactory,
    make_event,
    register_and_wait,
    wait_until,
)

pytestmark = pytest.mark.integration

ROUNDS = 3


def test_poison_events_are_dead_lettered_while_valid_ones_are_delivered(
    make_settings: Callable[..., Settings],
    pipeline_factory: Callable[[Settings], Pipeline],
    status_reader_factory: StatusReaderFactory,
    receiver: Receiver,
    kafka_bootstrap: str,
) -> None:
    settings = make_settings()
    pipeline = pipeline_factory(settings)
    matcher = pipeline.start_matcher()
    pipeline.start_sender()
    resource = f"i{uuid.uuid4().hex[:6]}"
    webhook = WebhookConfig(
        webhook_id=f"hostile-{uuid.uuid4().hex[:8]}",
        name="Hostile",
        payload_url=receiver.url("/hostile"),
        triggers=[f"/items/{resource}"],
    )
    with HookstreamClient(kafka_bootstrap, settings.topics) as client:
        register_and_wait(client, webhook)
    dead: DeadLetterReader = status_reader_factory(settings, dead_letters=True)

    # One key, so one partition: every valid event queues behind poison ones.
    valid_ids: list[str] = []
    expected_reasons: dict[bytes, str] = {}
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        for round_ in range(ROUNDS):
            for name, (text, reason) in POISON_PROPERTIES.items():
                poison = raw_event(text, resource_id=resource)
                expected_reasons[poison] = reason
                producer.send(settings.topics.events[0], key=resource.encode(), value=poison)
                valid = make_event("items", "update", resource, round=round_, after=name)
                valid_ids.append(valid.event_id)
                producer.send(settings.topics.events[0], key=resource.encode(), value=encode(valid))
        producer.flush(timeout=30)
    finally:
        producer.close()

    wanted = {delivery_id_for(event_id, webhook.webhook_id) for event_id in valid_ids}

    def delivered() -> set[str]:
        return {request.headers["webhook-id"] for request in receiver.on("/hostile")}

    wait_until(lambda: delivered() >= wanted, 90, f"{len(wanted)} valid events delivered")

    def letters() -> list[DeadLetter] | None:
        ours = [letter for letter in dead.snapshot() if letter.key == resource.encode()]
        return ours if len(ours) >= len(expected_reasons) else None

    found = wait_until(letters, 60, f"{len(expected_reasons)} dead letters")
    assert sorted(letter.value or b"" for letter in found) == sorted(expected_reasons)
    for letter in found:
        assert letter.value is not None
        assert expected_reasons[letter.value] in letter.reason, letter.reason
        assert letter.service == "matcher"
        assert letter.source_topic == settings.topics.events[0]
    assert delivered() == wanted, "only the valid events were delivered"
    assert matcher.process.poll() is None
    log = matcher.log_text()
    assert "Crashed reason" not in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
