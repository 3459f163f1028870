"""The SSRF guard: payload URLs may reach public addresses only, unless a network is allow-listed.

The sender resolves a payload URL's host itself (``GuardedResolver``, plugged into aiohttp's
connector), refuses every blocked address, and connects to the addresses it checked: there is no
second lookup that DNS rebinding could change. The Host header, SNI and certificate checks keep
the name. URLs with a literal IP never reach a resolver, so ``check_url`` checks them first.

``canonical_host`` is the one reading of a URL's host, used when a webhook is registered, when
it is pinged and before every attempt: a host is read the way browsers, curl and libc read it
(percent-decoded, UTS-46 mapped, trailing dot dropped, ``127.1``/``0x7f000001``/``0177.0.0.1``
as IPv4), so that no spelling of a blocked address slips past registration, and a host the HTTP
client cannot parse is refused when it is configured rather than failing at every attempt.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

import httpx
import idna
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from hookstream.core.errors import PermanentError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Ranges that the ``is_*`` flags of ``ipaddress`` do not all cover, named for the message.
_EXTRA_BLOCKED: tuple[tuple[IPNetwork, str], ...] = (
    (ipaddress.ip_network("100.64.0.0/10"), "carrier-grade NAT"),
    (ipaddress.ip_network("192.0.0.0/24"), "IETF protocol assignment"),
    (ipaddress.ip_network("198.18.0.0/15"), "benchmarking"),
    (ipaddress.ip_network("fd00:ec2::254/128"), "cloud metadata"),
    (ipaddress.ip_network("64:ff9b::/96"), "NAT64 of a blocked IPv4 address"),
    (ipaddress.ip_network("fec0::/10"), "site-local"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
ALLOW_HINT = "allow its network with HOOKSTREAM_SECURITY__ALLOW_NETWORKS if it is meant"


class BlockedAddressError(PermanentError, OSError):
    """A payload URL leads to an address the guard refuses; the message names it and why.

    ``without_host`` says the same without the host as written (for answers that must not
    echo what was submitted).
    """

    def __init__(self, message: str, without_host: str | None = None) -> None:
        super().__init__(message)
        self.without_host = without_host or message


def blocked_reason(address: IPAddress) -> str | None:
    """Why an address is blocked (loopback, private, ...), or None if it is public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return blocked_reason(address.ipv4_mapped)
    embedded = embedded_ipv4(address)
    if embedded is not None:
        kind, inner = embedded
        inner_reason = blocked_reason(inner)
        if inner_reason is not None:
            return f"{kind}-embedded {inner_reason}"
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


def embedded_ipv4(address: IPAddress) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address a 6to4, Teredo (its client) or NAT64 address carries, and which kind."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    if address.teredo is not None:
        return "Teredo", address.teredo[1]
    if address in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


#: Full stops that UTS-46 does not map but browsers treat as dots in a host.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def _ipv4_part(part: str) -> int | None:
    """One part of a numeric IPv4 host as inet_aton and the WHATWG URL parser read it."""
    if part[:2].lower() == "0x":
        digits, base = part[2:], 16
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if not digits:
        return 0 if base == 16 else None
    if not digits.isascii() or not all(c in "0123456789abcdef"[:base] for c in digits.lower()):
        return None
    return int(digits, base)


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """``127.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1`` ... as the IPv4 address that
    libc, curl and browsers connect to; None if ``host`` is not a numeric IPv4 host."""
    parts = host.split(".")
    if len(parts) > 4 or not all(parts):
        return None
    numbers = [_ipv4_part(part) for part in parts]
    if any(number is None for number in numbers):
        return None
    values = [number for number in numbers if number is not None]
    if any(value > 255 for value in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        return None
    total = values[-1]
    for index, value in enumerate(values[:-1]):
        total += value << (8 * (3 - index))
    return ipaddress.IPv4Address(total)


def canonical_host(url: str) -> str:
    """The host of ``url`` as it will be reached: an IP address in its usual form, or a
    lower-case name without a trailing dot. See the module docstring for why."""
    try:
        netloc_host = urlsplit(url).hostname or ""
    except ValueError as exc:
        raise _unusable("cannot be parsed", exc) from exc
    host = unquote(netloc_host, errors="replace").translate(_DOTS)
    if host.startswith("[") or ":" in host:
        host = host.strip("[]")
        try:
            return str(ipaddress.IPv6Address(host.split("%")[0]))
        except ValueError:
            return host.lower()
    try:
        host = idna.uts46_remap(host, std3_rules=False, transitional=False)
    except (idna.IDNAError, UnicodeError, ValueError):
        host = host.lower()
    host = host.lower().rstrip(".") if host not in (".", "") else host
    address = parse_ipv4(host)
    return str(address) if address is not None else host


def _unusable(detail: str, cause: Exception | None = None) -> BlockedAddressError:
    advice = (
        "the HTTP client cannot send to it as written: use a plain DNS name (IDNA/punycode "
        "allowed) or a dotted IPv4 or [IPv6] address"
    )
    shown = f"{detail} ({cause})" if cause is not None else detail
    return BlockedAddressError(
        f"refused: the payload URL's host {shown}; {advice}",
        without_host=f"refused: the payload URL's host {detail}; {advice}",
    )


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
        article = "an" if reason[0] in "aeiou" else "a"
        raise BlockedAddressError(
            f"refused: {shown} is {article} {reason} address; {ALLOW_HINT}",
            without_host=(
                f"refused: the payload URL's host is {article} {reason} address; {ALLOW_HINT}"
            ),
        )

    def check_url(self, url: str) -> None:
        """Refuse a URL whose host is, in any spelling, a blocked address or ``localhost``, or
        that the HTTP client cannot send to (names are checked again when resolved)."""
        try:
            written = urlsplit(url).hostname or ""
        except ValueError:
            written = ""
        host = canonical_host(url)
        try:
            address: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None:
            self.check(written or host, address)
        elif host == "localhost" or host.endswith(".localhost"):
            self.check(written or host, ipaddress.ip_address("127.0.0.1"))
        self._check_sendable(url, written)

    @staticmethod
    def _check_sendable(url: str, written: str) -> None:
        """Refuse what the HTTP client would not send, or would send elsewhere than checked."""
        if "%" in written:
            raise _unusable("is percent-encoded")
        try:
            parsed = httpx.URL(url)
            client_host = parsed.host
        except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
            raise _unusable("is not valid", exc) from exc
        if not client_host:
            raise _unusable("is empty")
        if client_host.endswith(".") and parse_ipv4(client_host.rstrip(".")) is not None:
            raise _unusable("is an IPv4 address with a trailing dot")


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that resolves once and returns only addresses the policy allows.

    ``exempt`` names hosts the operator configured (the egress proxy): those are not payload
    URLs, so their addresses are not checked.
    """

    def __init__(
        self,
        policy: AddressPolicy,
        resolver: AbstractResolver | None = None,
        exempt: Iterable[str] = (),
    ) -> None:
        self.policy = policy
        self._resolver = resolver or DefaultResolver()
        self.exempt = frozenset(host.lower().rstrip(".") for host in exempt)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        if host.lower().rstrip(".") in self.exempt:
            return results
        for result in results:
            self.policy.check(host, ipaddress.ip_address(result["host"]))
        return results

    async def close(self) -> None:
        await self._resolver.close()
