"""OAuth2 tokens: kept until shortly before they expire (a fake clock), answers a token endpoint
may give, and the model's rules for the oauth2 fields. The HTTP side is faked here; the real
token endpoint is in tests/integration/test_receiver_oauth.py."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from hookstream.net.oauth import OAuthTokens, TokenError
from hookstream.net.ssrf import AddressPolicy
from hookstream.records.models import AuthKind, WebhookAuth, WebhookConfig
from hookstream.settings import SecuritySettings

TIMEOUT = httpx.Timeout(5.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _config(**auth: object) -> WebhookConfig:
    fields: dict[str, object] = {
        "kind": AuthKind.OAUTH2,
        "token_url": "https://auth.example.com/token",
        "client_id": "hs",
        "client_secret": SecretStr("pw"),
        **auth,
    }
    return WebhookConfig(
        webhook_id="w1",
        name="n",
        payload_url="https://receiver.example.com/hook",
        triggers=["/items"],
        auth=WebhookAuth.model_validate(fields),
    )


def _endpoint(answers: list[tuple[int, object]]) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, body = answers[min(len(seen), len(answers)) - 1]
        text = body if isinstance(body, str) else json.dumps(body)
        # A stream, as a real transport gives: the token reader reads it in chunks.
        return httpx.Response(status, stream=httpx.ByteStream(text.encode()))

    return httpx.AsyncClient(transport=httpx.MockTransport(handle)), seen


def _bearer(tokens: OAuthTokens, client: httpx.AsyncClient, rejected: str | None = None) -> str:
    return asyncio.run(tokens.bearer(client, _config(), TIMEOUT, rejected=rejected))


def test_a_token_is_kept_until_shortly_before_it_expires() -> None:
    clock = Clock()
    client, seen = _endpoint(
        [
            (200, {"access_token": "a", "token_type": "bearer", "expires_in": 600}),
            (200, {"access_token": "b", "token_type": "Bearer", "expires_in": 600}),
        ]
    )
    tokens = OAuthTokens(AddressPolicy(), allow_plain_http=False, clock=clock)
    assert _bearer(tokens, client) == "a"
    clock.now += 539  # 600 s less the 60 s margin: still fresh
    assert _bearer(tokens, client) == "a"
    assert len(seen) == 1
    clock.now += 2
    assert _bearer(tokens, client) == "b"
    assert len(seen) == 2
    assert seen[0].headers["authorization"] == "Basic aHM6cHc="
    assert seen[0].content == b"grant_type=client_credentials"


def test_a_short_lived_token_is_renewed_a_fifth_before_it_ends() -> None:
    clock = Clock()
    client, seen = _endpoint([(200, {"access_token": "t", "expires_in": 10})])
    tokens = OAuthTokens(AddressPolicy(), allow_plain_http=False, clock=clock)
    _bearer(tokens, client)
    clock.now += 7.9
    _bearer(tokens, client)
    clock.now += 0.2
    _bearer(tokens, client)
    assert len(seen) == 2


def test_a_rejected_token_is_fetched_again_and_others_are_not() -> None:
    client, seen = _endpoint(
        [(200, {"access_token": "a", "expires_in": 600}), (200, {"access_token": "b"})]
    )
    tokens = OAuthTokens(AddressPolicy(), allow_plain_http=False, clock=Clock())
    assert _bearer(tokens, client) == "a"
    assert _bearer(tokens, client, rejected="a") == "b"
    assert _bearer(tokens, client, rejected="a") == "b"  # a late 401 for "a" keeps "b"
    assert len(seen) == 2


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (400, {"error": "invalid_scope"}, "OAuth2 token endpoint answered 400: "),
        (200, "<html>", "answered 200 but not with JSON"),
        (200, {"token_type": "bearer"}, "without a usable access_token"),
        (200, {"access_token": "x\ny"}, "without a usable access_token"),
        (200, {"access_token": "x", "token_type": "mac"}, "only bearer tokens"),
    ],
)
def test_unusable_answers_are_errors_that_say_what_came(
    status: int, body: object, message: str
) -> None:
    client, _ = _endpoint([(status, body)])
    tokens = OAuthTokens(AddressPolicy(), allow_plain_http=False)
    with pytest.raises(TokenError, match=message) as caught:
        _bearer(tokens, client)
    assert not caught.value.permanent


def test_the_token_url_rules_are_checked_before_fetching() -> None:
    client, seen = _endpoint([(200, {"access_token": "t"})])
    tokens = OAuthTokens(AddressPolicy(), allow_plain_http=False)
    for url, reason in (
        ("http://auth.example.com/token", "must be an https:// URL"),
        ("https://10.0.0.5/token", "private address"),
        ("https://localhost/token", "loopback"),
    ):
        config = _config(token_url=url)
        with pytest.raises(TokenError, match=reason) as caught:
            asyncio.run(tokens.bearer(client, config, TIMEOUT))
        assert caught.value.permanent
    assert seen == []


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"client_secret": None}, "oauth2 authentication needs client_secret"),
        ({"token_url": "ftp://auth.example.com/"}, "token_url must be an absolute https://"),
        ({"token_url": "https://u:p@auth.example.com/"}, "token_url cannot carry credentials"),
        ({"scope": "a\nb"}, "scope must be printable ASCII"),
    ],
)
def test_the_model_refuses_incomplete_oauth2_fields(auth: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _config(**auth)


def test_oauth2_fields_belong_to_oauth2_only() -> None:
    with pytest.raises(ValidationError, match="only for oauth2 authentication"):
        WebhookAuth(kind=AuthKind.NONE, client_id="x")


@pytest.mark.parametrize(
    ("proxy", "message"),
    [
        ("socks5://proxy.internal:1080", "must be an http://host:port URL"),
        ("http://user:pw@proxy.internal:3128", "cannot carry credentials"),
        ("http://proxy.internal", "needs its port"),
        ("http://proxy.internal:3128/path", "scheme, host and port only"),
    ],
)
def test_the_proxy_setting_refuses_what_it_cannot_use(proxy: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SecuritySettings(proxy=proxy)
    usable = SecuritySettings(proxy="http://10.0.0.3:3128", no_proxy="a.example, 10.0.0.0/8")
    assert usable.no_proxy == ["a.example", "10.0.0.0/8"]
    assert SecuritySettings(proxy="", no_proxy="[]") == SecuritySettings()
