"""Requests/s through httpx's default transport and the aiohttp transport, against raw aiohttp.

The receiver runs in a child process so that it does not share the interpreter with the client
under test; every client makes the same number of POSTs with the same concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection

import aiohttp
import httpx
from aiohttp import web
from httpx_aiohttp import AiohttpTransport

BODY = b'{"info":{"webhookName":"bench"},"events":[{"operation":"update","source":"item"}]}'


def _server(conn: Connection) -> None:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/", ok)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        conn.send(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await runner.cleanup()

    asyncio.run(main())


async def measure(send: Callable[[], Awaitable[None]], requests: int, concurrency: int) -> float:
    limit = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with limit:
            await send()

    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*[one() for _ in range(requests)]), 300)
    return requests / (time.perf_counter() - started)


async def run(url: str, requests: int, concurrency: int) -> dict[str, float]:
    results: dict[str, float] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def raw() -> None:
            async with session.post(url, data=BODY) as response:
                await response.read()

        results["raw aiohttp"] = await measure(raw, requests, concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:

        async def default() -> None:
            (await client.post(url, content=BODY)).read()

        results["httpx default transport"] = await measure(default, requests, concurrency)

    def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

    async with httpx.AsyncClient(transport=AiohttpTransport(client=session)) as client:

        async def aiohttp_transport() -> None:
            async with client.stream("POST", url, content=BODY) as response:
                async for _ in response.aiter_bytes():
                    pass

        results["httpx + aiohttp transport (hookstream)"] = await measure(
            aiohttp_transport, requests, concurrency
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(
        target=_server, args=(child,), daemon=True
    )
    server.start()
    try:
        port = parent.recv()
        results = asyncio.run(run(f"http://127.0.0.1:{port}/", args.requests, args.concurrency))
    finally:
        parent.send("stop")
        server.join(timeout=10)
    baseline = results["raw aiohttp"]
    for name, rate in results.items():
        print(f"{name:40} {rate:8.0f} requests/s  x{rate / baseline:.2f} of raw aiohttp")
    print(json.dumps({"benchmark": "http_clients", "requests_per_s": results}))


if __name__ == "__main__":
    main()
