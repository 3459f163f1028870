"""The egress proxy: which requests go through it, and to which address they are tunnelled.

With ``HOOKSTREAM_SECURITY__PROXY`` set, every request to a receiver or token endpoint goes
through that HTTP proxy (``CONNECT`` for https targets), except targets matching
``HOOKSTREAM_SECURITY__NO_PROXY``. A proxy resolves the names it is given itself, out of the
SSRF guard's sight, so a name is never handed to it: the sender resolves the target, checks
every address with the ``AddressPolicy`` (as the connector's resolver does for direct
requests), and sends ``CONNECT <checked address>:<port>``. The TLS handshake inside the tunnel
still sends the name (SNI) and verifies the certificate against it, and the Host header keeps
it, so the receiver sees the request it would without a proxy. A target the guard refuses is
refused before anything is sent to the proxy.

The proxy's own address is not checked: the operator configured it, and it usually is private.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from hookstream.net.ssrf import AddressPolicy, IPAddress, IPNetwork
from hookstream.settings.delivery import check_proxy_url


def proxy_host(proxy: str | None) -> list[str]:
    """The proxy's host name, for the guard's exemptions (none without a proxy)."""
    if proxy is None:
        return []
    host = urlsplit(proxy).hostname
    return [host] if host else []


@dataclass(frozen=True)
class Route:
    """How one request leaves: the URL to ask for, the proxy (None: direct), the TLS name."""

    url: httpx.URL
    proxy: str | None = None
    server_hostname: str | None = None


class ProxyRoutes:
    """Chooses direct or proxied per target, and pins a proxied target to checked addresses."""

    def __init__(
        self,
        proxy: str,
        no_proxy: list[str],
        policy: AddressPolicy,
        resolver: AbstractResolver | None = None,
    ) -> None:
        check_proxy_url(proxy)
        self.proxy = proxy
        self.policy = policy
        # Made on first use: aiohttp's resolver binds to the running loop when it is made.
        self._resolver = resolver
        suffixes: list[str] = []
        networks: list[IPNetwork] = []
        for item in no_proxy:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                suffixes.append(item.lower().strip(".").removeprefix("*."))
        self.suffixes = tuple(suffixes)
        self.networks = tuple(networks)

    def _bypassed_name(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == s or host.endswith("." + s) for s in self.suffixes)

    def _bypassed_address(self, address: IPAddress) -> bool:
        return any(
            address.version == network.version and address in network for network in self.networks
        )

    async def route(self, url: httpx.URL) -> Route:
        """The route of a request to ``url``; ``BlockedAddressError`` if a proxied target's
        address is refused (raised before anything is sent to the proxy)."""
        host = url.host
        if self._bypassed_name(host):
            return Route(url)
        try:
            addresses: list[IPAddress] = [ipaddress.ip_address(host)]
            literal = True
        except ValueError:
            port = url.port or (443 if url.scheme == "https" else 80)
            if self._resolver is None:
                self._resolver = DefaultResolver()
            results = await self._resolver.resolve(host, port, socket.AF_UNSPEC)
            addresses = [ipaddress.ip_address(result["host"]) for result in results]
            literal = False
        if addresses and all(self._bypassed_address(address) for address in addresses):
            return Route(url)  # direct: the connector's resolver checks it again
        for address in addresses:
            self.policy.check(host, address)
        if not addresses:
            raise OSError(f"{host} resolved to no address")
        pinned = url.copy_with(host=str(addresses[0]))
        name = None if literal or url.scheme != "https" else host
        return Route(pinned, self.proxy, name)
