"""Matching cost per event with 10 and with 100,000 webhooks: the trigger index against a scan."""

from __future__ import annotations

import argparse
import json
import random
import time

from hookstream.core.triggers import event_lookup_keys, parse_triggers
from hookstream.records.models import WebhookConfig
from hookstream.views.directory import WebhookDirectory

BROAD = ["/", "/groups/add", "/users/signin", "ComputerAdded", "/items/share", "/items/update"]


def make_webhooks(count: int, rng: random.Random) -> list[WebhookConfig]:
    """A fixed handful of broad webhooks; every other one narrowed to one item or one user."""
    webhooks = []
    for n in range(count):
        if n < len(BROAD):
            triggers = [BROAD[n]]
        elif n % 2:
            triggers = [f"/items/item{rng.randrange(count)}/update"]
        else:
            triggers = [f"/users/user{rng.randrange(count)}"]
        webhooks.append(
            WebhookConfig(
                webhook_id=f"w{n}",
                name=f"w{n}",
                payload_url="https://r.example/h",
                triggers=triggers,
            )
        )
    return webhooks


def events(count: int, rng: random.Random, universe: int) -> list[tuple[str, str | None, str]]:
    out: list[tuple[str, str | None, str]] = []
    for _ in range(count):
        if rng.random() < 0.5:
            out.append(("items", f"item{rng.randrange(universe)}", "update"))
        else:
            out.append(("users", f"user{rng.randrange(universe)}", "signin"))
    return out


def time_index(
    directory: WebhookDirectory, sample: list[tuple[str, str | None, str]]
) -> tuple[float, int]:
    matched = 0
    start = time.perf_counter()
    for source, resource, operation in sample:
        matched += len(directory.match(source, resource, operation))
    return (time.perf_counter() - start) / len(sample) * 1e6, matched


def time_scan(webhooks: list[WebhookConfig], sample: list[tuple[str, str | None, str]]) -> float:
    """The naive way: check every webhook's (pre-parsed) triggers against each event."""
    parsed = [(w, parse_triggers(w.triggers)) for w in webhooks]
    start = time.perf_counter()
    for source, resource, operation in sample:
        keys = set(event_lookup_keys(source, resource, operation))
        _ = [w for w, triggers in parsed if any(t.key in keys for t in triggers)]
    return (time.perf_counter() - start) / len(sample) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--scan-lookups", type=int, default=50)
    args = parser.parse_args()
    results = {}
    for size in (10, 100_000):
        rng = random.Random(7)
        webhooks = make_webhooks(size, rng)
        directory = WebhookDirectory()
        for webhook in webhooks:
            directory.put(webhook)
        sample = events(args.lookups, rng, size)
        index_us, matched = time_index(directory, sample)
        scan_us = time_scan(webhooks, sample[: args.scan_lookups])
        results[size] = {
            "index_us": index_us,
            "scan_us": scan_us,
            "matches_per_event": matched / len(sample),
        }
    print(f"{'webhooks':>9} {'index µs/event':>15} {'scan µs/event':>14} {'matches/event':>14}")
    for size, r in results.items():
        index, scan, matches = r["index_us"], r["scan_us"], r["matches_per_event"]
        print(f"{size:>9} {index:>15.2f} {scan:>14.1f} {matches:>14.2f}")
    ratio = results[100_000]["index_us"] / results[10]["index_us"]
    scan_ratio = results[100_000]["scan_us"] / results[10]["scan_us"]
    print(f"index cost 100,000 vs 10 webhooks: x{ratio:.2f}; scan: x{scan_ratio:.0f}")
    print(
        json.dumps(
            {
                "benchmark": "matching",
                "results": results,
                "index_ratio": ratio,
                "scan_ratio": scan_ratio,
            }
        )
    )


if __name__ == "__main__":
    main()
