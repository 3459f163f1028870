"""The SSRF guard refuses every class of internal address unless its network is allowed."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import given
from hypothesis import strategies as st

from hookstream.net.ssrf import (
    AddressPolicy,
    BlockedAddressError,
    GuardedResolver,
    blocked_reason,
    canonical_host,
)
from hostile import DISGUISED
from support import BLOCKED_ADDRESSES

BLOCKED = BLOCKED_ADDRESSES


@pytest.mark.parametrize(("address", "reason"), BLOCKED.items())
def test_blocked_classes(address: str, reason: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) == reason
    with pytest.raises(BlockedAddressError, match="HOOKSTREAM_SECURITY__ALLOW_NETWORKS"):
        AddressPolicy().check(address, ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "8.8.8.8"]
)
def test_public_addresses_pass(address: str) -> None:
    AddressPolicy().check(address, ipaddress.ip_address(address))


def test_allow_list_opens_exactly_its_network() -> None:
    policy = AddressPolicy(["127.0.0.1/32", "10.20.0.0/16"])
    policy.check("x", ipaddress.ip_address("127.0.0.1"))
    policy.check("x", ipaddress.ip_address("::ffff:127.0.0.1"))
    policy.check("x", ipaddress.ip_address("10.20.3.4"))
    with pytest.raises(BlockedAddressError):
        policy.check("x", ipaddress.ip_address("127.0.0.2"))
    with pytest.raises(BlockedAddressError):
        policy.check("x", ipaddress.ip_address("10.21.0.1"))


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/h",
        "https://[::1]:8443/h",
        "http://169.254.169.254/latest",
        "https://localhost/h",
        "https://api.localhost/h",
    ],
)
def test_literal_and_localhost_urls_are_refused_before_any_connection(url: str) -> None:
    with pytest.raises(BlockedAddressError):
        AddressPolicy().check_url(url)


class _FakeResolver(AbstractResolver):
    def __init__(self, answers: list[str]) -> None:
        self.answers = answers

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.answers
        ]

    async def close(self) -> None:
        return None


def test_resolver_refuses_a_name_that_resolves_to_a_private_address() -> None:
    resolver = GuardedResolver(AddressPolicy(), _FakeResolver(["93.184.215.14", "10.0.0.5"]))
    with pytest.raises(BlockedAddressError, match="rebind.example resolves to 10.0.0.5"):
        asyncio.run(resolver.resolve("rebind.example", 443))


def test_resolver_returns_the_checked_addresses() -> None:
    resolver = GuardedResolver(AddressPolicy(), _FakeResolver(["93.184.215.14"]))
    [result] = asyncio.run(resolver.resolve("public.example", 443))
    assert result["host"] == "93.184.215.14"


@given(st.ip_addresses())
def test_every_address_is_either_public_or_blocked_with_a_reason(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    reason = blocked_reason(address)
    if reason is None:
        AddressPolicy().check("h", address)
    else:
        with pytest.raises(BlockedAddressError):
            AddressPolicy().check("h", address)


@pytest.mark.parametrize(("host", "reason"), DISGUISED.items())
def test_every_spelling_of_a_blocked_address_is_refused_with_its_reason(
    host: str, reason: str
) -> None:
    with pytest.raises(BlockedAddressError) as refused:
        AddressPolicy().check_url(f"https://{host}:8443/h")
    assert f"{reason} address" in str(refused.value)
    assert "HOOKSTREAM_SECURITY__ALLOW_NETWORKS" in str(refused.value)
    assert f"{reason} address" in refused.value.without_host
    assert host not in refused.value.without_host


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("127.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("2852039166", "169.254.169.254"),
        ("Example.COM.", "example.com"),
        ("\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.com", "example.com"),
        ("[0:0::1]", "::1"),
        ("1.2.3.4.5", "1.2.3.4.5"),
        ("256.1.1.1", "256.1.1.1"),
        ("09.1.1.1", "09.1.1.1"),
    ],
)
def test_canonical_host_reads_hosts_as_libc_and_browsers_do(host: str, canonical: str) -> None:
    assert canonical_host(f"https://{host}/x") == canonical


@pytest.mark.parametrize(
    "host",
    [
        "xn--",
        "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54",
        "0177.0.0.1",
        "127.000.000.001",
        "127.0.0.1.",
        "%31%32%37.0.0.1",
    ],
)
def test_an_allowed_address_the_client_cannot_send_to_is_refused(host: str) -> None:
    with pytest.raises(BlockedAddressError, match="the HTTP client cannot send to it"):
        AddressPolicy(["127.0.0.1/32"]).check_url(f"https://{host}:8443/h")


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/x",
        "https://b\u00fccher.de/x",
        "https://xn--bcher-kva.de/x",
        "https://93.184.215.14/x",
        "https://[2002:5db8:d70e::]/x",
        "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:8443/x",
    ],
)
def test_public_hosts_pass_in_any_usual_spelling(url: str) -> None:
    AddressPolicy().check_url(url)


@given(st.text(max_size=40))
def test_check_url_only_ever_refuses_with_its_own_error(host: str) -> None:
    refused: BlockedAddressError | None = None
    try:
        AddressPolicy().check_url(f"https://{host}/x")
    except BlockedAddressError as exc:
        refused = exc
    assert refused is None or str(refused).startswith("refused: ")
