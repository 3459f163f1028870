"""The field rules of the records: header authentication, absolute URLs, encodable text, event
properties (depth, numbers, keys). The models apply them; the codec and the admin API reuse them."""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

#: Header names a webhook's header authentication may not set (compared case-insensitively):
#: the ones hookstream sets itself, and every hop-by-hop or framing header, which could change
#: how the receiver (or a proxy in between) reads the request (request smuggling).
FORBIDDEN_AUTH_HEADERS = frozenset(
    {
        "content-type",
        "user-agent",
        "accept-encoding",
        "content-length",
        "host",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
    }
)
#: Name prefixes header authentication may not use: hookstream's own headers, and proxy headers.
RESERVED_HEADER_PREFIXES = ("webhook-", "x-hookstream-", "proxy-")
#: The longest value of one header-auth header, in characters.
MAX_HEADER_VALUE_LENGTH = 4096
#: The most header-auth headers one webhook may set.
MAX_AUTH_HEADERS = 20
#: The most characters all header-auth names and values of one webhook may hold together.
MAX_AUTH_HEADERS_SIZE = 16384
#: How deep an event's ``properties`` may nest, counting the properties object itself as level 1.
#: JSON parsers and encoders (ours and the receivers') recurse once per level; this bound, far
#: below Python's recursion limit, is checked wherever properties are accepted: the model (so
#: decoding, the client and the CLI) and, before parsing, the codec.
MAX_PROPERTIES_DEPTH = 64
#: The most decimal digits of an integer in properties (Python prints no more than 4300).
MAX_INTEGER_DIGITS = 4000
_MAX_INTEGER = 10**MAX_INTEGER_DIGITS
_TOKEN = re.compile(r"\A[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
#: What the HTTP client sends as a header value: visible ASCII, space and tab.
HEADER_VALUE = re.compile(r"\A[\t\x20-\x7e]*\Z")
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_header(name: str, value: str) -> None:
    """Refuse a header that could override hookstream's own, change the request's framing, or
    that the HTTP client cannot send (it encodes header values as ASCII)."""
    if not name or not _TOKEN.match(name):
        raise ValueError(
            f"header name {name!r} is not a valid HTTP header name (letters, digits and "
            f"!#$%&'*+-.^_`|~ only)"
        )
    lowered = name.lower()
    if lowered in FORBIDDEN_AUTH_HEADERS or lowered.startswith(RESERVED_HEADER_PREFIXES):
        raise ValueError(
            f"header {name!r} cannot be set by header authentication; forbidden are "
            f"{', '.join(sorted(FORBIDDEN_AUTH_HEADERS))} and names starting with "
            f"{' or '.join(RESERVED_HEADER_PREFIXES)} (in any letter case)"
        )
    if len(value) > MAX_HEADER_VALUE_LENGTH:
        raise ValueError(
            f"the value of header {name!r} is longer than {MAX_HEADER_VALUE_LENGTH} characters, "
            f"the most a header value may hold"
        )
    if not HEADER_VALUE.match(value):
        raise ValueError(
            f"the value of header {name!r} is refused: header values must be printable ASCII "
            f"(visible characters, space and tab; no CR, LF, NUL or other control characters, "
            f"no characters beyond ASCII)"
        )


def check_absolute_url(value: str, field: str) -> None:
    """Refuse a URL the sender cannot POST to as written (the scheme rule and the SSRF guard
    are applied where it is written and before every request). Messages never repeat the URL:
    validation errors carry no input values."""
    if any(char.isspace() or ord(char) < 0x20 or char == "\x7f" for char in value):
        raise ValueError(f"{field} contains white space or a control character")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{field} must be an absolute https:// URL")
    if parts.username or parts.password:
        raise ValueError(f"{field} cannot carry credentials; use the authentication fields")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise ValueError(f"{field} has an invalid port (1 to 65535)") from None
    try:
        # Parsed as the sender's HTTP client will: it IDNA-encodes a non-ASCII host name
        # (refusing one that is not a valid internationalised domain name) and checks a
        # literal IP address; an ASCII "xn--" label must decode back (``host`` does that).
        httpx.URL(value).host  # noqa: B018
    except (httpx.InvalidURL, ValueError):  # idna raises a UnicodeError of its own
        raise ValueError(
            f"{field} cannot be sent to: its host is not a valid host name, IP address "
            "or internationalised domain name"
        ) from None


def check_text(value: str, what: str) -> None:
    """Refuse a string that UTF-8 cannot encode (a lone surrogate, e.g. from JSON's "\\ud800"):
    every record is written as UTF-8, so such a string would fail later, far from its source."""
    if not value.isascii() and _SURROGATE.search(value):
        raise ValueError(
            f"{what} holds a lone surrogate (U+D800 to U+DFFF), which UTF-8 cannot encode"
        )


def check_fields(fields: dict[str, Any]) -> None:
    """``check_text`` on every string of a record's fields: values, secrets, list items, and
    map keys and values (nested records check their own)."""
    for name, value in fields.items():
        items = value.items() if isinstance(value, dict) else ((None, value),)
        for key, item in items:
            if isinstance(key, str):
                check_text(key, f"{name} (a key)")
            for text in item if isinstance(item, list) else (item,):
                if isinstance(text, SecretStr):
                    check_text(text.get_secret_value(), name)
                elif isinstance(text, str):
                    check_text(text, name)


def check_properties(properties: dict[str, Any]) -> None:
    """Refuse event properties that cannot be sent as JSON: nesting deeper than
    MAX_PROPERTIES_DEPTH, strings UTF-8 cannot encode, NaN or infinite numbers, integers longer
    than MAX_INTEGER_DIGITS, non-string keys, and values that are not JSON at all.

    Iterative, so a deep structure cannot exhaust the stack while it is being checked."""
    pending: list[tuple[Any, int]] = [(properties, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list | tuple):
            if depth > MAX_PROPERTIES_DEPTH:
                raise ValueError(
                    f"properties nest deeper than {MAX_PROPERTIES_DEPTH} levels "
                    f"(objects and arrays inside each other)"
                )
            if isinstance(value, dict):
                for key, item in value.items():
                    if not isinstance(key, str):
                        raise ValueError("properties may only have string keys, as JSON does")
                    check_text(key, "a key in properties")
                    pending.append((item, depth + 1))
            else:
                pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            check_text(value, "a string in properties")
        elif value is None or isinstance(value, bool):
            continue
        elif isinstance(value, int):
            if not -_MAX_INTEGER < value < _MAX_INTEGER:
                raise ValueError(
                    f"properties hold an integer of more than {MAX_INTEGER_DIGITS} digits"
                )
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(
                    "properties hold NaN or an infinite number (e.g. 1e999), which JSON cannot "
                    "carry; send null or a string instead"
                )
        else:
            raise ValueError(
                f"properties may hold only JSON values (objects, arrays, strings, numbers, "
                f"true, false, null), not {type(value).__name__}"
            )
