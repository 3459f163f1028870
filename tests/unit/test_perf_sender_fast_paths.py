"""The sender's cheap paths send exactly what the general ones did (issue 11)."""

from __future__ import annotations

import asyncio
import builtins
import sys
from typing import Any

import httpx
import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from hookstream.core.payloads import Payload
from hookstream.net.delivery import _request, post
from hookstream.sender import service as sender
from hookstream.sender.writes import partition_for

URL = "http://receiver.example:8080/hooks/in?x=1"
BODY = b'{"events":[{"id":"1"}]}'
HEADERS = {
    "Content-Type": "application/json",
    "webhook-id": "d-1",
    "X-Hookstream-Attempt": "2",
    "Authorization": "Bearer t",
}
TIMEOUT = httpx.Timeout(5.0, connect=2.0)


def test_a_delivery_request_is_the_request_httpx_would_build() -> None:
    general = httpx.Request(
        "POST", URL, content=BODY, headers=HEADERS, extensions={"timeout": TIMEOUT.as_dict()}
    )
    cheap = _request(URL, BODY, HEADERS, TIMEOUT)
    assert (cheap.method, cheap.url) == (general.method, general.url)
    assert cheap.headers.raw == general.headers.raw
    assert cheap.content == general.content == BODY
    assert cheap.extensions == general.extensions


def test_a_header_that_is_not_ascii_cannot_be_built() -> None:
    with pytest.raises(UnicodeEncodeError):
        _request(URL, BODY, {"X-Name": "caf\u00e9"}, TIMEOUT)


def test_post_drives_the_clients_transport_and_reads_a_bounded_excerpt() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503, headers={"Retry-After": "7"}, content=b"x" * 5000)

    async def main() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            return await post(
                client, URL, Payload(BODY, "application/json"), HEADERS, TIMEOUT, 10.0, 100
            )

    result = asyncio.run(main())
    assert (result.http_status, result.retry_after_s, result.error) == (503, 7.0, None)
    assert result.response_excerpt == "x" * 100
    [request] = seen
    assert request.content == BODY
    assert request.headers["host"] == "receiver.example:8080"
    assert request.headers["x-hookstream-attempt"] == "2"


def test_the_sender_runs_on_uvloop_when_it_is_installed() -> None:
    import uvloop

    assert sender.event_loop_factory() is uvloop.new_event_loop


def test_the_sender_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def without_uvloop(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvloop":
            raise ImportError("uvloop is not installed")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "uvloop", raising=False)
    monkeypatch.setattr(builtins, "__import__", without_uvloop)
    factory = sender.event_loop_factory()
    assert factory is asyncio.new_event_loop
    loop = factory()
    try:
        assert loop.run_until_complete(asyncio.sleep(0, result="ran")) == "ran"
    finally:
        loop.close()


@pytest.mark.parametrize(
    "url", ["https://xn--:8443/h", "http://\uff4c\uff4f\uff43\uff41\uff4c:80/h"]
)
def test_a_host_httpx_cannot_decode_fails_the_build_like_httpx(url: str) -> None:
    with pytest.raises(Exception) as general:
        httpx.Request("POST", url, content=BODY)
    with pytest.raises(type(general.value)):
        _request(url, BODY, HEADERS, TIMEOUT)


@given(key=st.binary(max_size=64), count=st.integers(min_value=1, max_value=64))
def test_the_cached_partition_is_the_one_the_default_partitioner_picks(
    key: bytes, count: int
) -> None:
    partitions = list(range(count))
    assert partition_for(key, partitions) == DefaultPartitioner()(key, partitions, partitions)
