"""The delivery pipeline end to end: real broker, matcher and sender processes, real receivers."""

from __future__ import annotations

import base64
import json
import socket
import uuid
from collections.abc import Iterator
from xml.etree import ElementTree

import pytest
from kafka import KafkaProducer

from hookstream.client import HookstreamClient
from hookstream.kafka.topics import create_topics
from hookstream.records.codec import encode
from hookstream.records.ids import delivery_id_for
from hookstream.records.models import (
    CommandKind,
    DeactivationPolicy,
    DeadLetter,
    DeliveryStatus,
    DomainEvent,
    Outcome,
    PayloadFormat,
    WebhookAuth,
    WebhookCommand,
    WebhookConfig,
)
from hookstream.settings import Settings
from support import (
    Behaviour,
    Pipeline,
    Receiver,
    StatusReader,
    TopicReader,
    make_event,
    register_and_wait,
    unique_settings,
    wait_until,
)

pytestmark = pytest.mark.integration

RETRY_INTERVAL_S = 2.0
ATTEMPTS = 3


@pytest.fixture(scope="module")
def shared(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Pipeline, HookstreamClient, StatusReader]]:
    """One matcher and one sender for the scenarios that can share them (distinct webhooks)."""
    settings = unique_settings(
        kafka_bootstrap, retry_interval_s=RETRY_INTERVAL_S, max_attempts=ATTEMPTS
    )
    create_topics(kafka_bootstrap, settings.topics)
    pipeline = Pipeline(settings, tmp_path_factory.mktemp("logs"))
    client = HookstreamClient(kafka_bootstrap, settings.topics)
    statuses = StatusReader(kafka_bootstrap, settings)
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        yield pipeline, client, statuses
    finally:
        pipeline.stop()
        statuses.close()
        client.close()


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _final(
    statuses: StatusReader, webhook_id: str, count: int = 1, timeout_s: float = 30
) -> list[DeliveryStatus]:
    return wait_until(
        lambda: (
            done if len(done := [s for s in statuses.of(webhook_id) if s.final]) >= count else None
        ),
        timeout_s,
        f"{count} final status record(s) of {webhook_id}",
    )


def test_portal_json_basic_auth_specific_and_wildcard_triggers(
    shared: tuple[Pipeline, HookstreamClient, StatusReader], receiver: Receiver
) -> None:
    pipeline, client, statuses = shared
    item = f"item{uuid.uuid4().hex[:6]}"
    specific = WebhookConfig(
        webhook_id=_id("specific"),
        name="One item's updates",
        payload_url=receiver.url("/specific"),
        triggers=[f"/items/{item}/update"],
        auth=WebhookAuth(kind="basic", username="hook", password="pa55word"),
    )
    everything = WebhookConfig(
        webhook_id=_id("all"), name="All", payload_url=receiver.url("/all"), triggers=["/"]
    )
    groups = WebhookConfig(
        webhook_id=_id("groups"),
        name="Groups",
        payload_url=receiver.url("/groups"),
        triggers=["/groups"],
    )
    register_and_wait(client, specific, everything, groups)

    update = make_event("items", "update", item, title="New title")
    other_item = make_event("items", "update", "another-item")
    share = make_event("items", "share", item)
    for event in (update, other_item, share):
        client.publish_event(event)

    wait_until(
        lambda: len(receiver.on("/all")) >= 3, 30, "the wildcard webhook to get all three events"
    )
    wait_until(lambda: receiver.on("/specific"), 30, "the specific-id webhook")
    [request] = receiver.on("/specific")
    assert request.headers["content-type"] == "application/json"
    assert (
        request.headers["authorization"] == "Basic " + base64.b64encode(b"hook:pa55word").decode()
    )
    assert request.headers["user-agent"].startswith("hookstream/")
    assert request.headers["webhook-id"] == delivery_id_for(update.event_id, specific.webhook_id)
    body = json.loads(request.body)
    assert body["info"]["webhookId"] == specific.webhook_id
    assert body["info"]["webhookName"] == "One item's updates"
    assert isinstance(body["info"]["when"], int)
    assert body["events"] == [
        {
            "username": "alice",
            "userId": "u-1",
            "when": update.occurred_at,
            "operation": "update",
            "source": "item",
            "id": item,
            "properties": {"title": "New title"},
        }
    ]
    assert receiver.on("/groups") == []
    [status] = _final(statuses, specific.webhook_id)
    assert status.outcome is Outcome.DELIVERED
    assert status.http_status == 200
    assert status.delivery_id == request.headers["webhook-id"]
    assert status.event_ids == [update.event_id]
    assert "pa55word" not in status.model_dump_json()


def test_device_xml_header_auth_and_smart_group_filter(
    shared: tuple[Pipeline, HookstreamClient, StatusReader], receiver: Receiver
) -> None:
    pipeline, client, statuses = shared
    computers = WebhookConfig(
        webhook_id=_id("computers"),
        name="New computers",
        payload_url=receiver.url("/computers"),
        triggers=["ComputerAdded"],
        payload_format=PayloadFormat.XML,
        auth=WebhookAuth(kind="header", headers={"X-Api-Key": "k-123", "X-Tenant": "lab"}),
    )
    smart_group = WebhookConfig(
        webhook_id=_id("smart"),
        name="Group 12 membership",
        payload_url=receiver.url("/smart"),
        triggers=["SmartGroupComputerMembershipChange"],
        smart_group_id="12",
    )
    register_and_wait(client, computers, smart_group)
    added = DomainEvent.for_device_event(
        "ComputerAdded", {"deviceName": "mac-1", "serialNumber": "S1", "jssID": 42}
    )
    other_group = DomainEvent.for_device_event(
        "SmartGroupComputerMembershipChange",
        {"name": "Other", "smartGroup": True, "jssid": 13, "groupAddedDevicesIds": [1]},
    )
    group_12 = DomainEvent.for_device_event(
        "SmartGroupComputerMembershipChange",
        {
            "name": "Lab",
            "smartGroup": True,
            "jssid": 12,
            "groupAddedDevicesIds": [42],
            "groupRemovedDevicesIds": [],
        },
    )
    for event in (added, other_group, group_12):
        client.publish_event(event)

    wait_until(
        lambda: receiver.on("/computers") and receiver.on("/smart"), 30, "both device webhooks"
    )
    [request] = receiver.on("/computers")
    assert request.headers["content-type"].startswith("text/xml")
    assert request.headers["x-api-key"] == "k-123"
    assert request.headers["x-tenant"] == "lab"
    root = ElementTree.fromstring(request.body)
    assert root.tag == "JSSEvent"
    assert root.findtext("webhook/webhookEvent") == "ComputerAdded"
    # The webhook's stable number, handed out by the registry (Jamf types webhook.id as an int).
    webhook_number = root.findtext("webhook/id")
    assert webhook_number is not None and webhook_number.isdigit()
    assert int(webhook_number) == client.latest_webhooks()[computers.webhook_id].numeric_id
    assert root.findtext("event/deviceName") == "mac-1"
    assert root.findtext("event/jssID") == "42"
    # Only group 12's change reaches the webhook narrowed to group 12.
    _final(statuses, smart_group.webhook_id)
    [smart] = receiver.on("/smart")
    body = json.loads(smart.body)
    assert body["webhook"]["webhookEvent"] == "SmartGroupComputerMembershipChange"
    assert body["event"]["jssid"] == 12
    assert body["event"]["groupAddedDevicesIds"] == [42]


def test_failing_and_timing_out_webhooks_retry_without_delaying_a_healthy_one(
    shared: tuple[Pipeline, HookstreamClient, StatusReader], receiver: Receiver
) -> None:
    pipeline, client, statuses = shared
    resource = f"g{uuid.uuid4().hex[:6]}"
    broken = WebhookConfig(
        webhook_id=_id("broken"),
        name="Broken",
        payload_url=receiver.url("/broken", Behaviour(status=500)),
        triggers=[f"/groups/{resource}"],
        deactivation_policy=DeactivationPolicy(number_of_failures=100),
    )
    slow = WebhookConfig(
        webhook_id=_id("slow"),
        name="Slow",
        payload_url=receiver.url("/slow", Behaviour(delay_s=3.0)),
        triggers=[f"/groups/{resource}"],
        read_timeout_s=0.5,
        deactivation_policy=DeactivationPolicy(number_of_failures=100),
    )
    healthy = WebhookConfig(
        webhook_id=_id("healthy"),
        name="Healthy",
        payload_url=receiver.url("/healthy"),
        triggers=["/groups/update"],
    )
    register_and_wait(client, broken, slow, healthy)
    client.publish_event(make_event("groups", "invite", resource))
    wait_until(
        lambda: receiver.on("/broken") and receiver.on("/slow"), 30, "the first failing attempts"
    )
    healthy_events = [make_event("groups", "update", f"h{n}") for n in range(5)]
    for event in healthy_events:
        client.publish_event(event)

    broken_final = _final(statuses, broken.webhook_id, timeout_s=60)
    slow_final = _final(statuses, slow.webhook_id, timeout_s=60)
    wait_until(
        lambda: len(receiver.on("/healthy")) >= 5, 30, "the healthy webhook's five deliveries"
    )

    for path, webhook in (("/broken", broken), ("/slow", slow)):
        attempts = receiver.on(path)
        assert len(attempts) == ATTEMPTS
        assert len({request.headers["webhook-id"] for request in attempts}) == 1  # same delivery id
        gaps = [b.at - a.at for a, b in zip(attempts, attempts[1:], strict=False)]
        assert all(gap >= RETRY_INTERVAL_S - 0.15 for gap in gaps), gaps
        records = statuses.of(webhook.webhook_id)
        assert [s.attempt for s in records] == [1, 2, 3]
        assert [s.final for s in records] == [False, False, True]
        assert all(s.outcome is Outcome.FAILED for s in records)
    assert broken_final[0].http_status == 500
    assert slow_final[0].http_status is None
    assert "read timeout" in (slow_final[0].error or "")
    # The healthy webhook got all its deliveries before the failing ones gave up.
    last_failure = max(receiver.on("/broken")[-1].at, receiver.on("/slow")[-1].at)
    assert all(request.at < last_failure for request in receiver.on("/healthy"))


def test_deactivation_exactly_when_policy_is_met(
    shared: tuple[Pipeline, HookstreamClient, StatusReader], receiver: Receiver
) -> None:
    pipeline, client, statuses = shared
    user = f"user{uuid.uuid4().hex[:6]}"
    failing = WebhookConfig(
        webhook_id=_id("policy"),
        name="Policy",
        payload_url=receiver.url("/policy", Behaviour(status=503)),
        triggers=[f"/users/{user}"],
        deactivation_policy=DeactivationPolicy(number_of_failures=2, days_in_past=1),
    )
    register_and_wait(client, failing)
    client.publish_event(make_event("users", "signin", user))
    _final(statuses, failing.webhook_id, count=1, timeout_s=60)
    config = wait_until(
        lambda: c if (c := client.latest_webhooks()[failing.webhook_id]).recent_failures else None,
        30,
        "the first failure to be counted",
    )
    assert config.active
    assert len(config.recent_failures) == 1

    client.publish_event(make_event("users", "signout", user))
    records = wait_until(
        lambda: [s for s in statuses.of(failing.webhook_id) if s.outcome is Outcome.DEACTIVATED],
        60,
        "deactivation",
    )
    assert len(records) == 1
    assert "2 deliveries failed within 1 day" in (records[0].error or "")
    finals = [s for s in statuses.of(failing.webhook_id) if s.final and s.outcome is Outcome.FAILED]
    assert len(finals) == 2
    assert records[0].attempted_at >= finals[1].attempted_at
    deactivated = wait_until(
        lambda: c if not (c := client.latest_webhooks()[failing.webhook_id]).active else None,
        30,
        "the config to show the deactivation",
    )
    assert deactivated.deactivated_reason and deactivated.deactivated_at

    # Deactivated: nothing more is sent. A sentinel on the same event shows the event went through.
    sentinel = WebhookConfig(
        webhook_id=_id("sentinel"),
        name="S",
        payload_url=receiver.url("/sentinel"),
        triggers=[f"/users/{user}"],
    )
    register_and_wait(client, sentinel)
    requests_before = len(receiver.on("/policy"))
    client.publish_event(make_event("users", "update", user))
    wait_until(lambda: receiver.on("/sentinel"), 30, "the sentinel delivery")
    assert len(receiver.on("/policy")) == requests_before


def test_deleted_webhook_is_no_longer_delivered(
    shared: tuple[Pipeline, HookstreamClient, StatusReader], receiver: Receiver
) -> None:
    pipeline, client, statuses = shared
    role = f"role{uuid.uuid4().hex[:6]}"
    doomed = WebhookConfig(
        webhook_id=_id("doomed"),
        name="Doomed",
        payload_url=receiver.url("/doomed"),
        triggers=["/roles/add"],
    )
    sentinel = WebhookConfig(
        webhook_id=_id("sentinel"),
        name="S",
        payload_url=receiver.url("/sentinel"),
        triggers=["/roles"],
    )
    register_and_wait(client, doomed, sentinel)
    client.publish_event(make_event("roles", "add", role))
    wait_until(lambda: receiver.on("/doomed"), 30, "the delivery before deletion")
    client.delete_webhook(doomed.webhook_id)
    wait_until(lambda: doomed.webhook_id not in client.latest_webhooks(), 30, "the tombstone")
    client.publish_event(make_event("roles", "add", role + "b"))
    wait_until(lambda: len(receiver.on("/sentinel")) >= 2, 30, "the sentinel's second delivery")
    assert len(receiver.on("/doomed")) == 1


def test_undecodable_events_are_dead_lettered_and_the_pipeline_goes_on(
    shared: tuple[Pipeline, HookstreamClient, StatusReader],
    receiver: Receiver,
    kafka_bootstrap: str,
) -> None:
    pipeline, client, statuses = shared
    settings: Settings = pipeline.settings
    resource = f"i{uuid.uuid4().hex[:6]}"
    webhook = WebhookConfig(
        webhook_id=_id("after-garbage"),
        name="G",
        payload_url=receiver.url("/after-garbage"),
        triggers=[f"/items/{resource}"],
    )
    register_and_wait(client, webhook)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    topic = settings.topics.events[0]
    producer.send(topic, key=resource.encode(), value=b"not avro at all").get(timeout=30)
    producer.send(topic, key=resource.encode(), value=encode(webhook)).get(
        timeout=30
    )  # wrong schema
    producer.close()
    client.publish_event(make_event("items", "update", resource))
    dead = TopicReader(kafka_bootstrap, settings.topics.deadletter, DeadLetter)

    def two_letters() -> list[DeadLetter] | None:
        letters = [letter for letter in dead.snapshot() if letter.key == resource.encode()]
        return letters if len(letters) >= 2 else None

    try:
        letters = wait_until(two_letters, 30, "two dead letters")
    finally:
        dead.close()
    wait_until(lambda: receiver.on("/after-garbage"), 30, "the valid event's delivery")
    reasons = sorted(letter.reason for letter in letters)
    assert any("not an Avro single-object record" in reason for reason in reasons)
    assert any("WebhookConfig" in reason and "DomainEvent" in reason for reason in reasons)
    assert all(letter.source_topic == topic and letter.service == "matcher" for letter in letters)
    assert {letter.value for letter in letters} >= {b"not avro at all"}


def test_undecodable_state_and_command_records_are_dead_lettered_once(
    shared: tuple[Pipeline, HookstreamClient, StatusReader],
    receiver: Receiver,
    kafka_bootstrap: str,
) -> None:
    pipeline, client, statuses = shared
    topics = pipeline.settings.topics
    tag = uuid.uuid4().hex[:6]
    garbage = {
        topics.webhooks: f"bad-config-{tag}".encode(),
        topics.settings: f"bad-setting-{tag}".encode(),
        topics.webhook_commands: f"bad-command-{tag}".encode(),
    }
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    partitions = {
        topic: producer.send(topic, key=key, value=b"garbage " + key).get(timeout=30).partition
        for topic, key in garbage.items()
    }
    # The pipeline goes on: a webhook registered after the garbage receives its event.
    resource = f"i{uuid.uuid4().hex[:6]}"
    webhook = WebhookConfig(
        webhook_id=_id("after-state-garbage"),
        name="S",
        payload_url=receiver.url("/after-state-garbage"),
        triggers=[f"/items/{resource}"],
    )
    register_and_wait(client, webhook)
    client.publish_event(make_event("items", "update", resource))
    wait_until(lambda: receiver.on("/after-state-garbage"), 30, "the delivery after garbage")

    dead = TopicReader(kafka_bootstrap, topics.deadletter, DeadLetter)
    keys = set(garbage.values())
    markers = {topic: key + b"-marker" for topic, key in garbage.items()}

    def ours() -> list[DeadLetter]:
        return [letter for letter in dead.snapshot() if letter.key in keys]

    def markers_dead_lettered() -> bool:
        seen = {letter.key for letter in dead.snapshot()}
        return all(marker in seen for marker in markers.values())

    try:
        wait_until(lambda: len(ours()) >= len(keys), 30, "a dead letter per garbage record")
        # A second bad record behind each first one, on its partition: once these are dead-
        # lettered, the first ones were read past, and any second letter of them came before.
        for topic, marker in markers.items():
            producer.send(topic, key=marker, value=b"garbage", partition=partitions[topic])
        producer.flush(timeout=30)
        wait_until(markers_dead_lettered, 30, "a dead letter per marker record")
        letters = ours()
    finally:
        producer.close()
        dead.close()
    assert sorted((letter.source_topic, letter.key) for letter in letters) == sorted(
        (topic, key) for topic, key in garbage.items()
    )
    for letter in letters:
        assert letter.key is not None
        assert letter.value == b"garbage " + letter.key
        assert letter.service == "matcher" and "not an Avro single-object record" in letter.reason
        assert letter.offset >= 0 and letter.partition >= 0


def test_deactivation_never_undoes_a_concurrent_edit(
    shared: tuple[Pipeline, HookstreamClient, StatusReader],
) -> None:
    pipeline, client, statuses = shared
    webhook_id = _id("edited")
    original = WebhookConfig(
        webhook_id=webhook_id,
        name="Original",
        payload_url="https://receiver.example/hook",
        triggers=["/items"],
        deactivation_policy=DeactivationPolicy(number_of_failures=1),
    )
    register_and_wait(client, original)
    renamed = original.model_copy(update={"name": "Renamed"})
    # The failure that meets the policy and an edit arrive back to back.
    client.command(
        WebhookCommand(webhook_id=webhook_id, kind=CommandKind.RECORD_FAILURE, delivery_id="d-1")
    )
    client.register_webhook(renamed)
    final = wait_until(
        lambda: c if (c := client.latest_webhooks()[webhook_id]).revision >= 2 else None,
        30,
        "both commands",
    )
    assert final.name == "Renamed"
    assert not final.active
    # An edit of a deactivated webhook does not silently re-activate it.
    client.register_webhook(renamed.model_copy(update={"name": "Renamed again", "active": True}))
    again = wait_until(
        lambda: c if (c := client.latest_webhooks()[webhook_id]).revision >= 3 else None,
        30,
        "the edit",
    )
    assert again.name == "Renamed again"
    assert not again.active
    client.activate_webhook(webhook_id)
    active = wait_until(
        lambda: c if (c := client.latest_webhooks()[webhook_id]).revision >= 4 else None,
        30,
        "activation",
    )
    assert active.active
    assert active.recent_failures == []


def test_a_receiver_that_is_down_is_reported_as_such(
    shared: tuple[Pipeline, HookstreamClient, StatusReader],
) -> None:
    pipeline, client, statuses = shared
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound but not listening: connections are refused
        resource = f"down{uuid.uuid4().hex[:6]}"
        webhook = WebhookConfig(
            webhook_id=_id("down"),
            name="Down",
            payload_url=f"http://127.0.0.1:{port}/hook",
            triggers=[f"/items/{resource}"],
            deactivation_policy=DeactivationPolicy(number_of_failures=100),
        )
        register_and_wait(client, webhook)
        client.publish_event(make_event("items", "add", resource))
        final = _final(statuses, webhook.webhook_id, timeout_s=60)
    assert final[0].http_status is None
    assert (final[0].error or "").startswith("connection failed")
