"""The SSRF guard: payload URLs may reach public addresses only, unless a network is allow-listed.

The sender resolves a payload URL's host itself (``GuardedResolver``, plugged into aiohttp's
connector), refuses every blocked address, and connects to the addresses it checked: there is no
second lookup that DNS rebinding could change. The Host header, SNI and certificate checks keep
the name. URLs with a literal IP never reach a resolver, so ``check_url`` checks them first.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from hookstream.errors import PermanentError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Ranges that the ``is_*`` flags of ``ipaddress`` do not all cover, named for the message.
_EXTRA_BLOCKED: tuple[tuple[IPNetwork, str], ...] = (
    (ipaddress.ip_network("100.64.0.0/10"), "carrier-grade NAT"),
    (ipaddress.ip_network("192.0.0.0/24"), "IETF protocol assignment"),
    (ipaddress.ip_network("198.18.0.0/15"), "benchmarking"),
    (ipaddress.ip_network("fd00:ec2::254/128"), "cloud metadata"),
    (ipaddress.ip_network("64:ff9b::/96"), "NAT64 of a blocked IPv4 address"),
)
ALLOW_HINT = "allow its network with HOOKSTREAM_SECURITY__ALLOW_NETWORKS if it is meant"


class BlockedAddressError(PermanentError, OSError):
    """A payload URL leads to an address the guard refuses; the message names it and why."""


def blocked_reason(address: IPAddress) -> str | None:
    """Why an address is blocked (loopback, private, ...), or None if it is public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return blocked_reason(address.ipv4_mapped)
    if address == ipaddress.ip_address("169.254.169.254"):
        return "cloud metadata"
    checks = (
        (address.is_loopback, "loopback"),
        (address.is_unspecified, "unspecified"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
    )
    for flagged, name in checks:
        if flagged:
            return name
    for network, name in _EXTRA_BLOCKED:
        if address.version == network.version and address in network:
            return name
    return None


class AddressPolicy:
    """Public addresses pass; blocked ones pass only inside an allow-listed network."""

    def __init__(self, allow_networks: Iterable[str] = ()) -> None:
        self.allowed: list[IPNetwork] = [
            ipaddress.ip_network(n, strict=False) for n in allow_networks
        ]

    def check(self, host: str, address: IPAddress) -> None:
        """Raise ``BlockedAddressError`` unless ``address`` (of ``host``) may be reached."""
        reason = blocked_reason(address)
        if reason is None:
            return
        candidates = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        for network in self.allowed:
            if any(c.version == network.version and c in network for c in candidates):
                return
        shown = host if host == str(address) else f"{host} resolves to {address}, which"
        raise BlockedAddressError(f"refused: {shown} is a {reason} address; {ALLOW_HINT}")

    def check_url(self, url: str) -> None:
        """Check a URL whose host is a literal IP address (names are checked when resolved)."""
        host = urlsplit(url).hostname or ""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            if host.lower() == "localhost" or host.lower().endswith(".localhost"):
                self.check(host, ipaddress.ip_address("127.0.0.1"))
            return
        self.check(host, address)


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that resolves once and returns only addresses the policy allows."""

    def __init__(self, policy: AddressPolicy, resolver: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._resolver = resolver or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            self.policy.check(host, ipaddress.ip_address(result["host"]))
        return results

    async def close(self) -> None:
        await self._resolver.close()


def resolved_addresses(results: Iterable[dict[str, Any]]) -> list[str]:
    """The addresses in a list of resolver results (for logs and tests)."""
    return [str(result["host"]) for result in results]
