"""Matcher CPU per event for each input format, in one run: Avro, JSON, CloudEvents structured and
binary, with and without a catalog JSON Schema; decode, match and encode the jobs, as the events
agent's pure step does (``hookstream.matcher.routing.match_record``)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from hookstream.core.eventtypes import EventType
from hookstream.matcher.routing import match_record
from hookstream.records.codec import encode
from hookstream.records.intake import Headers, InputFormat
from hookstream.records.models import DomainEvent, WebhookConfig
from hookstream.views.catalog import EventCatalog
from hookstream.views.directory import WebhookDirectory

PROPERTIES = {"total": 42.5, "currency": "EUR", "lines": [{"sku": "a-1", "qty": 2}], "note": "x"}
SCHEMA = {
    "type": "object",
    "required": ["total", "currency"],
    "properties": {"total": {"type": "number"}, "currency": {"type": "string"}},
}


def records(n: int) -> dict[str, tuple[InputFormat, list[tuple[bytes, Headers]]]]:
    """``n`` records per format, each a distinct order created."""
    avro: list[tuple[bytes, Headers]] = []
    plain: list[tuple[bytes, Headers]] = []
    structured: list[tuple[bytes, Headers]] = []
    binary: list[tuple[bytes, Headers]] = []
    for i in range(n):
        event = DomainEvent(
            event_id=f"e-{i}",
            source="orders",
            operation="created",
            resource_id=f"o-{i}",
            occurred_at=1714557600000 + i,
            properties=PROPERTIES,
        )
        avro.append((encode(event), None))
        plain.append((event.model_dump_json().encode(), None))
        cloud = {
            "specversion": "1.0",
            "id": f"e-{i}",
            "source": "/orders",
            "type": "com.example.orders.created",
            "subject": f"o-{i}",
            "time": "2024-05-01T10:00:00Z",
            "data": PROPERTIES,
        }
        structured.append((json.dumps(cloud).encode(), None))
        headers: Headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", f"e-{i}".encode()),
            ("ce_source", b"/orders"),
            ("ce_type", b"com.example.orders.created"),
            ("ce_subject", f"o-{i}".encode()),
            ("ce_time", b"2024-05-01T10:00:00Z"),
            ("content-type", b"application/json"),
        ]
        binary.append((json.dumps(PROPERTIES).encode(), headers))
    return {
        "avro": (InputFormat.AVRO, avro),
        "json": (InputFormat.JSON, plain),
        "cloudevents-structured": (InputFormat.CLOUDEVENTS, structured),
        "cloudevents-binary": (InputFormat.CLOUDEVENTS, binary),
    }


def cpu_us_per_event(run: Callable[[], int], count: int) -> float:
    start = time.process_time()
    jobs = run()
    assert jobs == count, f"expected one job per event, got {jobs}"
    return (time.process_time() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="events per format")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    plain_catalog, schema_catalog = EventCatalog(), EventCatalog()
    plain_catalog.put(EventType(source="orders", operation="created"))
    schema_catalog.put(EventType(source="orders", operation="created", json_schema=SCHEMA))
    directory = WebhookDirectory(plain_catalog.lenient())
    directory.put(
        WebhookConfig(
            webhook_id="w1", name="w1", payload_url="https://r.example/h", triggers=["/orders"]
        )
    )
    results: dict[str, dict[str, float]] = {}
    for name, (fmt, batch) in records(args.events).items():
        results[name] = {}
        for label, catalog in (("no schema", plain_catalog), ("json schema", schema_catalog)):

            def run(
                catalog: EventCatalog = catalog,
                fmt: InputFormat = fmt,
                batch: list[tuple[bytes, Headers]] = batch,
            ) -> int:
                return sum(
                    len(match_record(v, directory, 1, fmt=fmt, headers=h, catalog=catalog))
                    for v, h in batch
                )

            run()  # warm caches (schema compilation, codecs)
            results[name][label] = round(cpu_us_per_event(run, len(batch)), 1)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"matcher CPU per event (µs), {args.events} events per format, one matching webhook")
    print(f"{'format':<24}{'no schema':>12}{'json schema':>14}")
    for name, row in results.items():
        print(f"{name:<24}{row['no schema']:>12}{row['json schema']:>14}")


if __name__ == "__main__":
    main()
