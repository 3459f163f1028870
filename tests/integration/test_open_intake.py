"""Open event intake end to end: JSON and CloudEvents (structured and binary) topics beside Avro,
written by the broker's own console producer (Java) and by kafka-python, for an event type
declared in the catalog through the admin API; a real receiver checks what is POSTed."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer
from test_admin_support import TOKEN, AdminServer, with_admin

from hookstream.cli.main import main
from hookstream.client import HookstreamClient
from hookstream.kafka.topics import create_topics
from hookstream.localkafka.jars import fetch_tools
from hookstream.records.models import DeadLetter
from hookstream.settings import LocalKafkaSettings, Settings
from support import DeadLetterReader, Pipeline, Receiver, make_event, unique_settings, wait_until

pytestmark = pytest.mark.integration

API = "/api/v1"
ORDER_SCHEMA = {
    "type": "object",
    "required": ["total"],
    "properties": {"total": {"type": "number"}},
}


@dataclass
class Env:
    settings: Settings
    avro: str
    json_topic: str
    cloud: str
    server: AdminServer
    kafka: HookstreamClient
    producer: KafkaProducer
    dead_letters: DeadLetterReader

    def http(self) -> httpx.Client:
        return self.server.client()


@pytest.fixture(scope="module")
def env(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = unique_settings(kafka_bootstrap, retry_interval_s=1.0, max_attempts=2)
    prefix = base.topics.events[0].rsplit(".", 1)[0]
    avro, json_topic, cloud = f"{prefix}.events", f"{prefix}.orders", f"{prefix}.cloud"
    topics = base.topics.model_copy(
        update={"events": [avro, f"{json_topic}=json", f"{cloud}=cloudevents"]}
    )
    settings = with_admin(base.model_copy(update={"topics": topics}))
    create_topics(kafka_bootstrap, settings.topics)
    pipeline = Pipeline(settings, tmp_path_factory.mktemp("intake-logs"))
    server = AdminServer(settings)
    kafka = HookstreamClient(kafka_bootstrap, settings.topics)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    dead_letters = DeadLetterReader(kafka_bootstrap, settings)
    try:
        server.start()
        with server.client() as http:
            declared = http.post(
                f"{API}/event-types",
                json={
                    "source": "orders",
                    "operation": "created",
                    "description": "A customer placed an order.",
                    "json_schema": ORDER_SCHEMA,
                    "example": {"total": 1},
                },
            )
            assert declared.status_code == 201, declared.text
        pipeline.start_matcher()
        pipeline.start_sender()
        yield Env(settings, avro, json_topic, cloud, server, kafka, producer, dead_letters)
    finally:
        dead_letters.close()
        producer.close()
        kafka.close()
        server.stop()
        pipeline.stop()


def console_produce(bootstrap: str, topic: str, lines: list[str], headers: bool = False) -> None:
    """Kafka's own ``kafka-console-producer``; with ``headers``, each line is
    ``name:value,name:value<TAB>value`` (the record's headers, then its value)."""
    tools = fetch_tools(LocalKafkaSettings())
    log_config = Path(__file__).parents[2] / "services/hookstream/localkafka/log4j2.properties"
    options = ["--property", "parse.headers=true"] if headers else []
    done = subprocess.run(
        [
            "java",
            f"-Dlog4j2.configurationFile={log_config}",
            "-cp",
            f"{tools}/*",
            "org.apache.kafka.tools.ConsoleProducer",
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            *options,
        ],
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _webhook(env: Env, receiver: Receiver, path: str, triggers: list[str]) -> str:
    with env.http() as http:
        created = http.post(
            f"{API}/webhooks",
            json={"name": path, "payload_url": receiver.url(path), "triggers": triggers},
        )
    assert created.status_code == 201, created.text
    webhook_id: str = created.json()["id"]
    return webhook_id


def _order_json(event_id: str, total: Any) -> str:
    return json.dumps(
        {
            "event_id": event_id,
            "source": "orders",
            "operation": "created",
            "resource_id": f"o-{event_id}",
            "occurred_at": 1714557600000,
            "properties": {"total": total},
        }
    )


def _order_cloudevent(event_id: str, total: Any) -> str:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "https://shop.example.com/orders",
            "type": "com.example.orders.created",
            "subject": f"o-{event_id}",
            "time": "2024-05-01T10:00:00Z",
            "datacontenttype": "application/json",
            "data": {"total": total},
        }
    )


def _binary_headers(event_id: str, specversion: str = "1.0") -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", specversion.encode()),
        ("ce_id", event_id.encode()),
        ("ce_source", b"/orders"),
        ("ce_type", b"com.example.orders.created"),
        ("ce_subject", f"o-{event_id}".encode()),
        ("content-type", b"application/json"),
    ]


def _console_binary_line(event_id: str, total: Any) -> str:
    headers = ",".join(
        f"{name}:{value.decode()}"
        for name, value in _binary_headers(event_id)
        if name != "content-type"
    )
    return f"{headers},content-type:application/json\t" + json.dumps({"total": total})


def _bodies(receiver: Receiver, path: str) -> dict[str, dict[str, Any]]:
    """The Standard Webhooks bodies a path received, by the order id in their data."""
    return {body["data"]["id"]: body for body in (json.loads(r.body) for r in receiver.on(path))}


def test_the_catalog_in_the_admin_api(env: Env) -> None:
    with env.http() as http:
        listed = http.get(f"{API}/event-types")
        assert listed.status_code == 200, listed.text
        by_name = {item["name"]: item for item in listed.json()["items"]}
        assert by_name["orders.created"]["family"] == "catalog"
        assert by_name["orders.created"]["json_schema"] == ORDER_SCHEMA
        assert "/orders/<id>/created" in by_name["orders.created"]["triggers"]
        assert by_name["items.add"]["family"] == "portal"
        assert by_name["ComputerAdded"]["family"] == "device"

        again = http.post(f"{API}/event-types", json={"source": "orders", "operation": "created"})
        assert again.status_code == 409 and "already declared" in again.text

        clash = http.post(f"{API}/event-types", json={"source": "items", "operation": "sold"})
        assert clash.status_code == 422 and "clashes with a built-in source" in clash.text

        bad_schema = http.post(
            f"{API}/event-types",
            json={"source": "orders", "operation": "paid", "json_schema": {"type": "nonsense"}},
        )
        assert bad_schema.status_code == 422 and "not a valid JSON Schema" in bad_schema.text

        misspelt = {"name": "n", "payload_url": "http://127.0.0.1:9/x"}
        typo = http.post(f"{API}/webhooks", json={**misspelt, "triggers": ["/orders/craeted"]})
        assert typo.status_code == 422 and "did you mean 'created'" in typo.text
        source = http.post(f"{API}/webhooks", json={**misspelt, "triggers": ["/ordres"]})
        assert source.status_code == 422 and "did you mean 'orders'" in source.text

        shown = http.get(f"{API}/event-types/orders.created")
        assert shown.status_code == 200 and shown.json()["example"] == {"total": 1}
        assert http.get(f"{API}/event-types/orders.nothing").status_code == 404

        made = http.post(
            f"{API}/webhooks",
            json={**misspelt, "triggers": ["/orders/created"], "payload_shape": "portal"},
        )
        assert made.status_code == 201, made.text
        assert made.json()["payload_shape"] == "portal"
        filtered = http.get(f"{API}/webhooks", params={"trigger": "/orders/created"})
        assert filtered.status_code == 200, filtered.text
        assert [w["id"] for w in filtered.json()["webhooks"]] == [made.json()["id"]]


def test_every_format_and_producer_reaches_the_receiver(env: Env, receiver: Receiver) -> None:
    _webhook(env, receiver, "/orders", ["/orders/created"])
    bootstrap = env.settings.kafka_bootstrap or ""
    tag = uuid.uuid4().hex[:6]
    ids = {name: f"{name}-{tag}" for name in ("cjson", "cstruct", "cbin", "pjson", "pbin", "avro")}

    console_produce(bootstrap, env.json_topic, [_order_json(ids["cjson"], 1)])
    console_produce(bootstrap, env.cloud, [_order_cloudevent(ids["cstruct"], 2)])
    console_produce(bootstrap, env.cloud, [_console_binary_line(ids["cbin"], 3)], headers=True)
    env.producer.send(env.json_topic, _order_json(ids["pjson"], 4).encode()).get(timeout=30)
    env.producer.send(
        env.cloud, json.dumps({"total": 5}).encode(), headers=_binary_headers(ids["pbin"])
    ).get(timeout=30)
    avro = make_event("orders", "created", f"o-{ids['avro']}", total=6)
    env.kafka.publish_event(avro, topic=env.avro)

    expected = {f"o-{event_id}": n for n, event_id in enumerate(ids.values(), start=1)}
    wait_until(
        lambda: set(expected) <= set(_bodies(receiver, "/orders")),
        120,
        "one POST per format and producer",
    )
    bodies = _bodies(receiver, "/orders")
    for order_id, total in expected.items():
        body = bodies[order_id]
        assert set(body) == {"type", "timestamp", "data"}
        assert body["type"] == "orders.created"
        assert body["data"] == {"total": total, "id": order_id}
    assert bodies[f"o-{ids['cstruct']}"]["timestamp"] == "2024-05-01T10:00:00.000Z"
    assert bodies[f"o-{ids['cjson']}"]["timestamp"] == "2024-05-01T10:00:00.000Z"
    request = receiver.on("/orders")[0]
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"]


def _letters(env: Env, topic: str) -> list[DeadLetter]:
    return [letter for letter in env.dead_letters.snapshot() if letter.source_topic == topic]


def test_bad_input_is_dead_lettered_with_the_field_and_the_rest_goes_on(
    env: Env, receiver: Receiver
) -> None:
    _webhook(env, receiver, "/after-bad", ["/orders"])
    bootstrap = env.settings.kafka_bootstrap or ""
    tag = uuid.uuid4().hex[:6]
    good_json, good_cloud = f"gj-{tag}", f"gc-{tag}"
    console_produce(
        bootstrap,
        env.json_topic,
        ['{"event_id": "x", "source": ', _order_json(f"schema-{tag}", "lots"), "[1, 2]"],
    )
    no_id = json.loads(_order_cloudevent("dropped", 1))
    del no_id["id"]
    console_produce(bootstrap, env.cloud, [json.dumps(no_id)])
    env.producer.send(
        env.cloud, b'{"total": 1}', headers=_binary_headers(f"v-{tag}", specversion="0.9")
    ).get(timeout=30)
    env.producer.send(env.json_topic, _order_json(good_json, 7).encode()).get(timeout=30)
    env.producer.send(env.cloud, _order_cloudevent(good_cloud, 8).encode()).get(timeout=30)

    wait_until(
        lambda: {f"o-{good_json}", f"o-{good_cloud}"} <= set(_bodies(receiver, "/after-bad")),
        120,
        "the good events after the bad ones",
    )
    wait_until(
        lambda: len(_letters(env, env.json_topic)) >= 3 and len(_letters(env, env.cloud)) >= 2,
        60,
        "five dead letters",
    )
    json_reasons = [letter.reason for letter in _letters(env, env.json_topic)]
    assert any("malformed JSON" in reason for reason in json_reasons), json_reasons
    assert any("a JSON list, not an object" in reason for reason in json_reasons), json_reasons
    assert any(
        "breaks the JSON Schema of event type orders.created" in reason
        and "properties at total" in reason
        for reason in json_reasons
    ), json_reasons
    cloud_reasons = [letter.reason for letter in _letters(env, env.cloud)]
    assert any("required attribute id missing" in reason for reason in cloud_reasons)
    assert any("specversion" in reason and "1.0" in reason for reason in cloud_reasons)
    assert f"o-schema-{tag}" not in _bodies(receiver, "/after-bad")


def test_the_event_types_commands(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--url", env.server.url, "--token", TOKEN]
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["reason"]}))
    created = main(
        [
            "event-types",
            "create",
            *common,
            "--source",
            "orders",
            "--operation",
            "cancelled",
            "--description",
            "An order was called off.",
            "--schema-file",
            str(schema),
            "--warn-only",
        ]
    )
    assert created == 0
    assert "orders.cancelled (catalog)" in capsys.readouterr().out
    assert main(["event-types", "list", *common, "--declared"]) == 0
    listed = capsys.readouterr().out
    assert "orders.cancelled" in listed and "orders.created" in listed
    assert "ComputerAdded" not in listed
    assert main(["event-types", "show", *common, "--json", "orders.cancelled"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["schema_mode"] == "warn" and shown["json_schema"]["required"] == ["reason"]
    assert main(["event-types", "create", *common, "--source", "users", "--operation", "x"]) == 1
    assert "clashes with a built-in source" in capsys.readouterr().err
    assert main(["event-types", "delete", *common, "orders.cancelled"]) == 0
    assert "deleted" in capsys.readouterr().out
