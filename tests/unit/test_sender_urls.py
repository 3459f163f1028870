"""The sender's per-URL verdict: the same answers as the checks it replaces, worked out once."""

from __future__ import annotations

import pytest

from hookstream.net.ssrf import AddressPolicy
from hookstream.sender.urls import PLAIN_HTTP_REFUSED, UrlVerdicts


class CountingPolicy(AddressPolicy):
    """The real policy, counting how often a URL is checked."""

    def __init__(self, allow_networks: tuple[str, ...] = ()) -> None:
        super().__init__(allow_networks)
        self.checked: list[str] = []

    def check_url(self, url: str) -> None:
        self.checked.append(url)
        super().check_url(url)


def test_plain_http_is_refused_unless_allowed() -> None:
    assert UrlVerdicts(AddressPolicy(), False).refusal("http://example.com/") == PLAIN_HTTP_REFUSED
    assert UrlVerdicts(AddressPolicy(), True).refusal("http://example.com/") is None
    assert UrlVerdicts(AddressPolicy(), False).refusal("https://example.com/") is None


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1/", "https://0x7f000001/", "https://localhost/", "https://10.1.2.3/"]
)
def test_blocked_addresses_are_refused_with_the_guards_reason(url: str) -> None:
    refusal = UrlVerdicts(AddressPolicy(), False).refusal(url)
    assert refusal is not None
    assert refusal.startswith("refused:")
    assert "HOOKSTREAM_SECURITY__ALLOW_NETWORKS" in refusal


def test_allow_listed_network_passes() -> None:
    verdicts = UrlVerdicts(AddressPolicy(["127.0.0.1/32"]), True)
    assert verdicts.refusal("http://127.0.0.1:8080/hook") is None


def test_each_url_is_checked_once_and_answers_stay_the_same() -> None:
    policy = CountingPolicy()
    verdicts = UrlVerdicts(policy, False)
    first = [verdicts.refusal(url) for url in ("https://example.com/a", "https://127.0.0.1/")]
    again = [verdicts.refusal(url) for url in ("https://example.com/a", "https://127.0.0.1/")]
    assert first == again
    assert first[0] is None and first[1] is not None
    assert policy.checked == ["https://example.com/a", "https://127.0.0.1/"]


def test_memory_is_bounded_and_refilled_correctly() -> None:
    policy = CountingPolicy()
    verdicts = UrlVerdicts(policy, False, max_urls=3)
    urls = [f"https://host{n}.example/" for n in range(3)] + ["https://127.0.0.1/"]
    for url in urls:
        verdicts.refusal(url)
    assert len(verdicts._verdicts) <= 3
    assert verdicts.refusal("https://127.0.0.1/") is not None
    assert verdicts.refusal("https://host0.example/") is None
    assert policy.checked.count("https://host0.example/") == 2
