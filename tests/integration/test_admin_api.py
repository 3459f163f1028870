"""The admin REST API over HTTP against the real broker, matcher, sender and receivers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import avro.name
import avro.schema
import httpx
import pytest
from standardwebhooks import Webhook
from test_admin_support import DAY_MS, TOKEN, AdminServer, MovableClock, with_admin

from hookstream.client import HookstreamClient
from hookstream.core.signing import standard_signature
from hookstream.kafka.topics import create_topics
from hookstream.records.codec import SCHEMA_FILES, encode, fingerprint_of, history_dir, schema_dir
from hookstream.records.ids import generate_secret
from hookstream.records.models import DeliveryStatus, DomainEvent, Outcome
from hookstream.settings import Settings
from support import Behaviour, Pipeline, Receiver, make_event, unique_settings, wait_until

pytestmark = pytest.mark.integration

API = "/api/v1"
MINUTE_MS = 60_000


@dataclass
class Env:
    """One pipeline and one admin server shared by this module's tests (distinct webhooks)."""

    settings: Settings
    kafka: HookstreamClient
    server: AdminServer
    bodies: list[str] = field(default_factory=list)
    clients: list[httpx.Client] = field(default_factory=list)

    def http(self, token: str | None = TOKEN) -> httpx.Client:
        """A client of the admin API that keeps every response body, for the secrets check."""

        def keep(response: httpx.Response) -> None:
            response.read()
            self.bodies.append(response.text)

        client = self.server.client(token)
        client.event_hooks["response"] = [keep]
        self.clients.append(client)
        return client


@pytest.fixture(scope="module")
def admin(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    settings = with_admin(unique_settings(kafka_bootstrap, retry_interval_s=1.0, max_attempts=2))
    create_topics(kafka_bootstrap, settings.topics)
    pipeline = Pipeline(settings, tmp_path_factory.mktemp("admin-logs"))
    kafka = HookstreamClient(kafka_bootstrap, settings.topics)
    server = AdminServer(settings)
    env = Env(settings, kafka, server)
    try:
        pipeline.start_matcher()
        pipeline.start_sender()
        server.start()
        yield env
    finally:
        for client in env.clients:
            client.close()
        server.stop()
        pipeline.stop()
        kafka.close()


def _hex() -> str:
    return uuid.uuid4().hex[:8]


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def _deliveries(http: httpx.Client, webhook_id: str, **params: Any) -> dict[str, Any]:
    page: dict[str, Any] = _ok(http.get(f"{API}/webhooks/{webhook_id}/deliveries", params=params))
    return page


def _final_delivery(
    http: httpx.Client, webhook_id: str, event: DomainEvent, timeout_s: float = 30
) -> dict[str, Any]:
    """The delivery of ``event`` once it has a final outcome."""

    def final() -> dict[str, Any] | None:
        for entry in _deliveries(http, webhook_id, num=100)["deliveries"]:
            if entry["event_ids"] == [event.event_id] and entry["outcome"] != "pending":
                return dict(entry)
        return None

    found: dict[str, Any] = wait_until(final, timeout_s, f"the delivery of {event.event_id}")
    return found


def test_webhook_life_cycle(admin: Env, receiver: Receiver) -> None:
    http = admin.http()
    resource = f"i{_hex()}"
    password, header_value, secret = f"pw-{_hex()}", f"hv-{_hex()}", generate_secret()
    created = http.post(
        f"{API}/webhooks",
        json={
            "name": "Item updates",
            "payload_url": receiver.url("/life"),
            "triggers": [f"/items/{resource}"],
            "auth": {"kind": "basic", "username": "hook", "password": password},
            "secret": secret,
        },
    )
    hook = _ok(created, 201)
    webhook_id = hook["id"]
    assert len(webhook_id) == 32 and int(webhook_id, 16) >= 0
    assert created.headers["location"] == f"{API}/webhooks/{webhook_id}"
    assert hook["auth"] == {
        "kind": "basic",
        "username": "hook",
        "has_password": True,
        "header_names": [],
        "token_url": None,
        "client_id": None,
        "has_client_secret": False,
        "scope": None,
        "audience": None,
    }
    assert hook["has_secret"] and hook["active"] and "secret" not in hook
    sentinel_id = f"sentinel-{_hex()}"
    sentinel = _ok(
        http.post(
            f"{API}/webhooks",
            json={
                "id": sentinel_id,
                "name": "Sentinel",
                "payload_url": receiver.url("/sentinel"),
                "triggers": [f"/items/{resource}/update"],
                "auth": {"kind": "header", "headers": {"X-Api-Key": header_value}},
            },
        ),
        201,
    )
    assert sentinel["auth"]["header_names"] == ["X-Api-Key"]
    assert (
        http.post(
            f"{API}/webhooks",
            json={
                "id": sentinel_id,
                "name": "x",
                "payload_url": receiver.url("/x"),
                "triggers": ["/items"],
            },
        ).status_code
        == 409
    )

    # The trigger filter compares parsed triggers (operation names in any letter case).
    updates = _ok(http.get(f"{API}/webhooks", params={"trigger": f"/items/{resource}/UPDATE"}))
    assert updates["total"] == 1 and updates["webhooks"][0]["id"] == sentinel_id
    first_page = _ok(http.get(f"{API}/webhooks", params={"num": 1}))
    assert first_page["num"] == 1 and first_page["next_start"] == 2
    everything = _ok(http.get(f"{API}/webhooks", params={"num": 100}))
    assert {webhook_id, sentinel_id} <= {w["id"] for w in everything["webhooks"]}
    last = _ok(http.get(f"{API}/webhooks", params={"start": everything["total"], "num": 1}))
    assert last["next_start"] is None and last["num"] == 1
    assert _ok(http.get(f"{API}/webhooks/{webhook_id}")) == hook

    # A delivery, and its notification status.
    first = make_event("items", "update", resource, title="One")
    admin.kafka.publish_event(first)
    [request] = wait_until(lambda: receiver.on("/life"), 30, "the first delivery")
    Webhook(secret).verify(request.body, request.headers)
    entry = _final_delivery(http, webhook_id, first)
    assert entry["outcome"] == "delivered"
    assert entry["trigger"] == f"/items/{resource}"
    assert entry["events"][0]["event_id"] == first.event_id
    assert entry["events"][0]["properties"] == {"title": "One"}
    [attempt] = entry["attempts"]
    assert attempt["http_status"] == 200 and attempt["response_excerpt"] == "ok"
    assert attempt["duration_ms"] > 0 and attempt["final"]
    assert entry["delivery_id"] == request.headers["webhook-id"]
    assert resource in (entry["payload"] or "")
    assert _ok(http.get(f"{API}/webhooks/{webhook_id}/deliveries/{entry['delivery_id']}")) == entry

    # An edit keeps the credentials it does not mention.
    patched = _ok(
        http.patch(
            f"{API}/webhooks/{webhook_id}",
            json={"name": "Renamed", "triggers": [f"/items/{resource}", "/groups/update"]},
        )
    )
    assert patched["name"] == "Renamed" and patched["revision"] > hook["revision"]
    assert patched["auth"]["has_password"] and patched["has_secret"]
    assert patched["triggers"] == [f"/items/{resource}", "/groups/update"]
    # An edited payload URL passes the same SSRF check as a new one (every class: access tests).
    refused = http.patch(
        f"{API}/webhooks/{webhook_id}", json={"payload_url": "https://169.254.169.254/latest"}
    )
    assert refused.status_code == 422 and "cloud metadata" in refused.json()["detail"], refused

    deactivated = _ok(
        http.post(f"{API}/webhooks/{webhook_id}/deactivate", json={"reason": "maintenance"})
    )
    assert not deactivated["active"] and deactivated["deactivated_reason"] == "maintenance"
    inactive = _ok(http.get(f"{API}/webhooks", params={"active": False, "num": 100}))
    assert webhook_id in {w["id"] for w in inactive["webhooks"]}
    assert all(not w["active"] for w in inactive["webhooks"])
    active = _ok(http.get(f"{API}/webhooks", params={"active": True, "num": 100}))
    assert sentinel_id in {w["id"] for w in active["webhooks"]}
    assert webhook_id not in {w["id"] for w in active["webhooks"]}

    second = make_event("items", "update", resource, title="Two")
    admin.kafka.publish_event(second)
    wait_until(lambda: len(receiver.on("/sentinel")) >= 2, 30, "the sentinel's second delivery")
    assert len(receiver.on("/life")) == 1  # deactivated: nothing sent

    assert _ok(http.post(f"{API}/webhooks/{webhook_id}/activate"))["active"]
    third = make_event("items", "update", resource, title="Three")
    admin.kafka.publish_event(third)
    wait_until(lambda: len(receiver.on("/life")) >= 2, 30, "a delivery after activation")
    _final_delivery(http, webhook_id, third)
    listed = _deliveries(http, webhook_id)
    assert [d["event_ids"] for d in listed["deliveries"]] == [[third.event_id], [first.event_id]]
    assert listed["total"] == 2

    assert http.delete(f"{API}/webhooks/{webhook_id}").status_code == 204
    gone = http.get(f"{API}/webhooks/{webhook_id}")
    assert gone.status_code == 404
    assert gone.headers["content-type"] == "application/problem+json"
    assert webhook_id in gone.json()["detail"]
    assert http.get(f"{API}/webhooks/{webhook_id}/deliveries").status_code == 404
    assert http.delete(f"{API}/webhooks/{webhook_id}").status_code == 404

    secrets = [password, header_value, secret, secret.removeprefix("whsec_")]
    assert len(admin.bodies) > 20
    for body in admin.bodies:
        assert not any(value in body for value in secrets), body


def test_an_event_published_right_after_a_change_is_routed_with_it(
    admin: Env, receiver: Receiver
) -> None:
    """Once the API has answered, the change holds for the next event: the matcher and the
    sender follow the webhook topic a little behind, and wait for it rather than route an event
    without a webhook created (or activated) a moment before."""
    http = admin.http()
    resource = f"i{_hex()}"
    created = []
    for number in range(12):
        path = f"/fresh-{resource}-{number}"
        hook = _ok(
            http.post(
                f"{API}/webhooks",
                json={
                    "name": f"Fresh {number}",
                    "payload_url": receiver.url(path),
                    "triggers": [f"/items/{resource}-{number}/update"],
                },
            ),
            201,
        )
        event = make_event("items", "update", f"{resource}-{number}", title=str(number))
        admin.kafka.publish_event(event)
        created.append((hook["id"], path, event))
    for webhook_id, path, event in created:
        wait_until(partial(receiver.on, path), 30, f"the delivery to {path}")
        assert _final_delivery(http, webhook_id, event)["outcome"] == "delivered"
    webhook_id, path, _ = created[0]
    for turn in range(6):
        _ok(http.post(f"{API}/webhooks/{webhook_id}/deactivate", json={"reason": "pause"}))
        _ok(http.post(f"{API}/webhooks/{webhook_id}/activate"))
        event = make_event("items", "update", f"{resource}-0", title=f"again {turn}")
        admin.kafka.publish_event(event)
        assert _final_delivery(http, webhook_id, event)["outcome"] == "delivered"
    assert len(receiver.on(path)) == 7


def test_settings_changes_take_effect_in_the_running_sender(admin: Env, receiver: Receiver) -> None:
    http = admin.http()
    group = f"g{_hex()}"
    failing = _ok(
        http.post(
            f"{API}/webhooks",
            json={
                "name": "Failing",
                "payload_url": receiver.url("/failing", Behaviour(status=500)),
                "triggers": [f"/groups/{group}"],
                "deactivation_policy": {"number_of_failures": 100, "days_in_past": 1},
            },
        ),
        201,
    )
    before = _ok(http.get(f"{API}/settings"))
    assert before["max_attempts"] == 2
    try:
        one = _ok(http.patch(f"{API}/settings", json={"max_attempts": 1}))
        assert one["max_attempts"] == 1 and one["retry_interval_s"] == 1.0
        assert one["modified_at"] > 0
        event = make_event("groups", "update", group)
        admin.kafka.publish_event(event)
        entry = _final_delivery(http, failing["id"], event)
        assert entry["outcome"] == "failed"
        assert [a["attempt"] for a in entry["attempts"]] == [1]
        assert entry["attempts"][0]["http_status"] == 500

        assert _ok(http.patch(f"{API}/settings", json={"max_attempts": 3}))["max_attempts"] == 3
        assert _ok(http.get(f"{API}/settings"))["max_attempts"] == 3
        event = make_event("groups", "update", group)
        admin.kafka.publish_event(event)
        entry = _final_delivery(http, failing["id"], event, timeout_s=60)
        assert [a["attempt"] for a in entry["attempts"]] == [1, 2, 3]
        assert [a["final"] for a in entry["attempts"]] == [False, False, True]
        assert len(receiver.on("/failing")) == 1 + 3
    finally:
        http.patch(f"{API}/settings", json={"max_attempts": 2})


def test_notification_status_retention_with_a_test_clock(admin: Env, receiver: Receiver) -> None:
    http = admin.http()
    user = f"u{_hex()}"
    ids = {}
    for path, status in (("/kept-ok", 200), ("/kept-failed", 500)):
        hook = http.post(
            f"{API}/webhooks",
            json={
                "name": path,
                "payload_url": receiver.url(path, Behaviour(status=status)),
                "triggers": [f"/users/{user}"],
                "deactivation_policy": {"number_of_failures": 100},
            },
        )
        ids[path] = _ok(hook, 201)["id"]
    event = make_event("users", "signin", user)
    admin.kafka.publish_event(event)
    delivered = _final_delivery(http, ids["/kept-ok"], event)
    failed = _final_delivery(http, ids["/kept-failed"], event)
    assert (delivered["outcome"], failed["outcome"]) == ("delivered", "failed")
    assert len(failed["attempts"]) == 2

    # A new admin service rebuilds the notification status from the topics.
    clock = MovableClock()
    with AdminServer(admin.settings, clock) as restarted, restarted.client() as fresh:

        def listed(path: str, **params: Any) -> list[str]:
            page = _deliveries(fresh, ids[path], **params)
            return [d["delivery_id"] for d in page["deliveries"]]

        assert listed("/kept-ok") == [delivered["delivery_id"]]
        assert listed("/kept-failed", outcome="failed") == [failed["delivery_id"]]
        assert listed("/kept-failed", outcome="delivered") == []
        fired = delivered["triggered_at"]
        assert listed("/kept-ok", since=fired, until=fired + 1) == [delivered["delivery_id"]]
        assert listed("/kept-ok", since=fired + 1) == []
        assert listed("/kept-ok", until=fired) == []

        clock.advance(DAY_MS - MINUTE_MS)
        assert listed("/kept-ok") == [delivered["delivery_id"]]
        clock.advance(2 * MINUTE_MS)  # a day and a minute later
        assert listed("/kept-ok") == []
        one_url = f"{API}/webhooks/{ids['/kept-ok']}/deliveries/{delivered['delivery_id']}"
        assert fresh.get(one_url).status_code == 404
        assert listed("/kept-failed") == [failed["delivery_id"]]
        clock.advance(6 * DAY_MS - 2 * MINUTE_MS)  # a minute short of seven days
        assert listed("/kept-failed") == [failed["delivery_id"]]
        clock.advance(2 * MINUTE_MS)
        assert listed("/kept-failed") == []
        assert _deliveries(fresh, ids["/kept-failed"])["total"] == 0


def test_redelivery_sends_the_same_delivery_again(admin: Env, receiver: Receiver) -> None:
    http = admin.http()
    role = f"r{_hex()}"
    hook = _ok(
        http.post(
            f"{API}/webhooks",
            json={
                "name": "Roles",
                "payload_url": receiver.url("/again"),
                "triggers": [f"/roles/{role}"],
            },
        ),
        201,
    )
    event = make_event("roles", "update", role)
    admin.kafka.publish_event(event)
    entry = _final_delivery(http, hook["id"], event)
    base = f"{API}/webhooks/{hook['id']}/deliveries"
    accepted = _ok(http.post(f"{base}/{entry['delivery_id']}/redeliver"), 202)
    assert accepted == {
        "delivery_id": entry["delivery_id"],
        "webhook_id": hook["id"],
        "status": "queued",
    }
    first, second = wait_until(
        lambda: r if len(r := receiver.on("/again")) >= 2 else None, 30, "the redelivery"
    )
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == entry["delivery_id"]
    assert second.headers["x-hookstream-attempt"] == "1"
    assert json_events(second.body) == json_events(first.body)

    def redelivered() -> dict[str, Any] | None:
        found = _ok(http.get(f"{base}/{entry['delivery_id']}"))
        return found if len(found["attempts"]) == 2 and found["outcome"] != "pending" else None

    again = wait_until(redelivered, 30, "the redelivery's status")
    assert again["redelivered"] and again["outcome"] == "delivered"
    assert [a["attempt"] for a in again["attempts"]] == [1, 1]

    assert http.post(f"{base}/no-such-delivery/redeliver").status_code == 404
    _ok(http.post(f"{API}/webhooks/{hook['id']}/deactivate"))
    refused = http.post(f"{base}/{entry['delivery_id']}/redeliver")
    assert refused.status_code == 409 and "inactive" in refused.json()["detail"]


def json_events(body: bytes) -> Any:
    return json.loads(body)["events"]


def test_ping_posts_a_test_event_now_and_counts_nothing(admin: Env, receiver: Receiver) -> None:
    http = admin.http()
    secret = generate_secret()
    hook = _ok(
        http.post(
            f"{API}/webhooks",
            json={
                "name": "Ping me",
                "payload_url": receiver.url("/ping"),
                "triggers": ["ComputerAdded"],
                "payload_format": "xml",
                "secret": secret,
            },
        ),
        201,
    )
    result = _ok(http.post(f"{API}/webhooks/{hook['id']}/ping"))
    assert result["delivered"] and result["http_status"] == 200 and result["error"] is None
    [request] = receiver.on("/ping")
    assert request.headers["x-hookstream-ping"] == "true"
    assert request.headers["content-type"].startswith("text/xml")
    assert b"<webhookEvent>ping</webhookEvent>" in request.body
    headers = request.headers
    signed = standard_signature(
        secret, headers["webhook-id"], int(headers["webhook-timestamp"]), request.body
    )
    assert headers["webhook-signature"] == signed

    receiver.behaviours["/ping"] = Behaviour(status=503)
    failed = _ok(http.post(f"{API}/webhooks/{hook['id']}/ping"))
    assert not failed["delivered"] and failed["http_status"] == 503
    assert _ok(http.get(f"{API}/webhooks/{hook['id']}"))["recent_failures"] == []
    assert _deliveries(http, hook["id"])["total"] == 0
    assert http.post(f"{API}/webhooks/nope/ping").status_code == 404


# --- writer schemas by fingerprint (docs/schemas.md) --------------------------------------------


def _schemas_doc_python_example() -> dict[str, Any]:
    """The Python example of docs/schemas.md, as a consumer would copy it (without its last lines,
    which use the consumer's own url, token and message)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "schemas.md").read_text()
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(block.split("\n\nrecords = ", 1)[0], namespace)  # noqa: S102 - our own documentation
    return namespace


def test_a_consumer_resolves_a_status_record_by_its_fingerprint(admin: Env) -> None:
    """What docs/schemas.md tells a Python consumer to do, against the running admin API."""
    example = _schemas_doc_python_example()
    reader = json.loads((schema_dir() / "delivery_status.avsc").read_text())
    records = example["HookstreamRecords"](str(admin.server.url), TOKEN, reader)
    status = DeliveryStatus(
        webhook_id="w-schema", webhook_name="W", outcome=Outcome.DELIVERED, final=True
    )
    decoded = records.decode(encode(status))
    assert decoded["webhook_id"] == "w-schema" and decoded["outcome"] == "delivered"


def test_every_schema_hookstream_wrote_is_served_by_its_fingerprint(admin: Env) -> None:
    http = admin.http()
    fingerprints = [fingerprint_of(model) for model in SCHEMA_FILES]
    fingerprints += [bytes.fromhex(p.stem.rsplit("-", 1)[1]) for p in history_dir().glob("*.avsc")]
    for fingerprint in fingerprints:
        response = http.get(f"{API}/schemas/{fingerprint.hex()}")
        schema = _ok(response)
        assert response.headers["content-type"] == "application/json"
        assert "immutable" in response.headers["cache-control"]
        parsed = avro.schema.make_avsc_object(schema, avro.name.Names())
        assert parsed.fingerprint() == fingerprint  # little-endian, as in the record header
    # in any letter case
    assert _ok(http.get(f"{API}/schemas/{fingerprints[0].hex().upper()}"))["type"] == "record"


@pytest.mark.parametrize(
    ("fingerprint", "says"),
    [("0123456789abcdef", "never written"), ("not-a-fingerprint", "16 hex digits")],
)
def test_an_unknown_fingerprint_is_a_404_problem(admin: Env, fingerprint: str, says: str) -> None:
    response = admin.http().get(f"{API}/schemas/{fingerprint}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert says in response.json()["detail"]


def test_schemas_need_the_bearer_token(admin: Env) -> None:
    response = admin.http(token=None).get(f"{API}/schemas/{fingerprint_of(DeliveryStatus).hex()}")
    assert response.status_code == 401


def test_webhooks_show_their_numeric_id_and_device_payloads_carry_it(
    admin: Env, receiver: Receiver
) -> None:
    http = admin.http()
    webhook_id = f"dev-xml-{_hex()}"
    created = _ok(
        http.post(
            f"{API}/webhooks",
            json={
                "id": webhook_id,
                "name": "Numbered",
                "payload_url": receiver.url("/numbered"),
                "triggers": ["ComputerAdded"],
            },
        ),
        201,
    )
    number = created["numeric_id"]
    assert isinstance(number, int) and number >= 1
    edited = _ok(http.patch(f"{API}/webhooks/{webhook_id}", json={"name": "Renamed"}))
    assert edited["numeric_id"] == number
    assert _ok(http.get(f"{API}/webhooks/{webhook_id}"))["numeric_id"] == number

    admin.kafka.publish_event(
        DomainEvent.for_device_event("ComputerAdded", {"deviceName": "mac-01", "jssID": 17})
    )
    [request] = wait_until(lambda: receiver.on("/numbered"), 30, "the device delivery")
    assert json.loads(request.body)["webhook"]["id"] == number
