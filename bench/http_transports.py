"""Requests/s, p50/p99 latency and client CPU per request of JSON POSTs: raw aiohttp vs httpx vs
httpx+AiohttpTransport vs the sender's own ``delivery.post`` on it.

By default the aiohttp receiver runs in a child process started by this script (one
multiprocessing "spawn" child, bound to 127.0.0.1 on a free port): sharing one event loop
with the client under test makes the server's own work count against every client and
compresses the ratios between them. `--server loop` runs the receiver in the same event loop
instead, as a single-process variant. Each client gets a short untimed warm-up (to open its
connections), then N timed POSTs with C workers in flight; the whole run has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection

import aiohttp
import httpx
from aiohttp import web
from httpx_aiohttp import AiohttpTransport

from hookstream.core.payloads import Payload
from hookstream.net import egress
from hookstream.net.delivery import post
from hookstream.net.egress import make_http_client
from hookstream.net.tls import shared_contexts
from hookstream.records.codec import decode, encode
from hookstream.records.models import DeliveryJob, DomainEvent, WebhookConfig
from hookstream.sender.attempts import Deliverer
from hookstream.settings import Settings
from hookstream.views.directory import WebhookDirectory
from hookstream.views.policy import PolicyFeed

HOST = "127.0.0.1"
BODY = json.dumps(
    {
        "info": {"webhookName": "bench", "webhookId": "w-1"},
        "events": [{"operation": "update", "source": "item", "id": 42, "status": "done"}],
    },
    separators=(",", ":"),
).encode()
HEADERS = {"content-type": "application/json"}
BASELINE = "raw aiohttp"

Send = Callable[[], Awaitable[None]]


async def _ok(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=b"ok", content_type="text/plain")


async def start_server() -> tuple[web.AppRunner, int]:
    """Start the receiver on 127.0.0.1, port chosen by the OS; return the runner and the port."""
    app = web.Application()
    app.router.add_post("/", _ok)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    port: int = runner.addresses[0][1]
    return runner, port


def serve_in_child(conn: Connection) -> None:
    """Child-process entry point: send the port to the parent, serve until it says stop."""

    async def main() -> None:
        runner, port = await start_server()
        conn.send(port)
        try:
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        except EOFError:
            pass
        finally:
            await runner.cleanup()

    asyncio.run(main())


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def drive(send: Send, requests: int, concurrency: int) -> tuple[float, list[float]]:
    """Make `requests` calls with `concurrency` workers; return elapsed seconds and latencies."""
    latencies: list[float] = []
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await send()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, requests)):
            group.create_task(worker())
    return time.perf_counter() - started, latencies


async def measure(send: Send, requests: int, concurrency: int, warmup: int) -> dict[str, float]:
    await drive(send, warmup, concurrency)
    cpu_before = time.process_time()
    elapsed, latencies = await drive(send, requests, concurrency)
    cpu_s = time.process_time() - cpu_before
    latencies.sort()
    return {
        "requests_per_s": len(latencies) / elapsed,
        "cpu_us_per_request": cpu_s / len(latencies) * 1e6,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def expect_ok(status: int) -> None:
    if status != 200:
        raise RuntimeError(f"receiver answered {status}")


async def run_clients(
    url: str, requests: int, concurrency: int, skip_default: bool = False
) -> dict[str, dict[str, float]]:
    warmup = min(requests, 2 * concurrency)
    results: dict[str, dict[str, float]] = {}

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def raw() -> None:
            async with session.post(url, data=BODY, headers=HEADERS) as response:
                await response.read()
                expect_ok(response.status)

        results[BASELINE] = await measure(raw, requests, concurrency, warmup)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    if not skip_default:
        async with httpx.AsyncClient(limits=limits, trust_env=False) as client:

            async def default() -> None:
                response = await client.post(url, content=BODY, headers=HEADERS)
                expect_ok(response.status_code)

            results["httpx default transport"] = await measure(
                default, requests, concurrency, warmup
            )

    # AiohttpTransport builds its own aiohttp.TCPConnector(limit=limits.max_connections,
    # keepalive_timeout=limits.keepalive_expiry); max_keepalive_connections is not used.
    transport = AiohttpTransport(limits=limits)
    async with httpx.AsyncClient(transport=transport, trust_env=False) as client:

        async def via_aiohttp() -> None:
            response = await client.post(url, content=BODY, headers=HEADERS)
            expect_ok(response.status_code)

        results["httpx + AiohttpTransport"] = await measure(
            via_aiohttp, requests, concurrency, warmup
        )
    # The same client driven the way the sender drives it: hookstream.net.delivery.post (a request
    # built directly, send(stream=True), an excerpt of the answer, the result as a value).
    transport = AiohttpTransport(limits=limits)
    async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
        payload = Payload(BODY, "application/json")
        timeout = httpx.Timeout(10.0, connect=5.0)

        async def as_the_sender() -> None:
            result = await post(client, url, payload, HEADERS, timeout, 16.0, 2048)
            expect_ok(result.http_status or 0)

        results["hookstream delivery.post"] = await measure(
            as_the_sender, requests, concurrency, warmup
        )
    # The sender's own client and call: its EgressTransport, the SSRF-guarded resolver, the
    # webhook's TLS choice (hookstream.net.egress.send), as one delivery makes it.
    settings = Settings(
        security={"allow_networks": [f"{HOST}/32"]},
        delivery={"allow_plain_http": True, "concurrency": concurrency},
    )
    config = WebhookConfig(
        webhook_id="bench", name="bench", payload_url=url, triggers=["/items/update"]
    )
    contexts = shared_contexts(None)
    async with make_http_client(settings) as client:
        payload = Payload(BODY, "application/json")
        timeout = httpx.Timeout(10.0, connect=5.0)

        async def as_a_delivery() -> None:
            result = await egress.send(
                client, config, url, payload, HEADERS, timeout, 16.0, 2048, contexts
            )
            expect_ok(result.http_status or 0)

        results["hookstream egress.send"] = await measure(
            as_a_delivery, requests, concurrency, warmup
        )
        # A whole attempt as the sender makes it, less Kafka: the job record decoded, the
        # payload built, the POST, the verdict, the status record encoded.
        directory = WebhookDirectory()
        directory.put(config)
        policy = PolicyFeed(settings.delivery, "127.0.0.1:9", "unused", "bench")
        deliverer = Deliverer(settings, client, directory, policy)
        event = DomainEvent(
            event_id="e-1", source="items", operation="update", resource_id="42", occurred_at=0
        )
        job = encode(
            DeliveryJob(
                delivery_id="d-1",
                webhook_id=config.webhook_id,
                trigger="/items/update",
                events=[event],
                due_at=0,
                triggered_at=0,
            )
        )

        async def an_attempt() -> None:
            attempt = await deliverer.deliver(decode(job, DeliveryJob))
            expect_ok(attempt.result.http_status or 0 if attempt.result else 0)

        results["hookstream job -> status"] = await measure(
            an_attempt, requests, concurrency, warmup
        )
    return results


async def run_with_loop_server(
    requests: int, concurrency: int, skip_default: bool
) -> dict[str, dict[str, float]]:
    runner, port = await start_server()
    try:
        return await run_clients(f"http://{HOST}:{port}/", requests, concurrency, skip_default)
    finally:
        await runner.cleanup()


def run_with_child_server(
    requests: int,
    concurrency: int,
    deadline: float,
    skip_default: bool,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
) -> dict[str, dict[str, float]]:
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(
        target=serve_in_child, args=(child,), daemon=True
    )
    server.start()
    try:
        if not parent.poll(30):
            raise TimeoutError("receiver process did not report its port within 30 s")
        port: int = parent.recv()
        coro = run_clients(f"http://{HOST}:{port}/", requests, concurrency, skip_default)
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(with_deadline(coro, deadline))
    finally:
        parent.send("stop")
        server.join(timeout=10)
        if server.is_alive():
            server.terminate()
            server.join(timeout=5)


async def with_deadline(
    coro: Awaitable[dict[str, dict[str, float]]], deadline: float
) -> dict[str, dict[str, float]]:
    async with asyncio.timeout(deadline):
        return await coro


def report(results: dict[str, dict[str, float]], requests: int, concurrency: int) -> None:
    baseline = results[BASELINE]["requests_per_s"]
    for name, figures in results.items():
        figures["ratio_to_raw_aiohttp"] = figures["requests_per_s"] / baseline
        print(
            f"{name:26} {figures['requests_per_s']:8.0f} requests/s"
            f"  p50 {figures['p50_ms']:6.2f} ms  p99 {figures['p99_ms']:6.2f} ms"
            f"  x{figures['ratio_to_raw_aiohttp']:.2f} of raw aiohttp"
            f"  {figures['cpu_us_per_request']:6.0f} us CPU per request"
        )
    summary = {
        "benchmark": "http_transports",
        "requests": requests,
        "concurrency": concurrency,
        "results": {
            name: {key: round(value, 3) for key, value in figures.items()}
            for name, figures in results.items()
        },
    }
    print(json.dumps(summary))


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    if name == "sender":
        from hookstream.sender.service import event_loop_factory

        return event_loop_factory()
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="timed POSTs per client")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight")
    parser.add_argument(
        "--server",
        choices=["process", "loop"],
        default="process",
        help="receiver in a child process (default) or in the client's event loop",
    )
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds for the whole run")
    parser.add_argument(
        "--loop",
        choices=["asyncio", "uvloop", "sender"],
        default="asyncio",
        help="the clients' event loop; sender: the one `hookstream sender` picks",
    )
    parser.add_argument(
        "--skip-default", action="store_true", help="leave out httpx's own (slow) transport"
    )
    args = parser.parse_args()
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be at least 1")
    try:
        loop_factory = _loop_factory(args.loop)
        if args.server == "loop":
            coro = run_with_loop_server(args.requests, args.concurrency, args.skip_default)
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                results = runner.run(with_deadline(coro, args.deadline))
        else:
            results = run_with_child_server(
                args.requests, args.concurrency, args.deadline, args.skip_default, loop_factory
            )
    except TimeoutError:
        print(f"http_transports: not finished within {args.deadline:.0f} s", file=sys.stderr)
        return 1
    report(results, args.requests, args.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
