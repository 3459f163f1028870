"""The audit of the webhooks topic dead-letters what does not decode, without decoding again
what the webhook directory already holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import faust

from hookstream.matcher.agents import DeadLetters, audit
from hookstream.records.codec import decode, encode
from hookstream.records.models import DeadLetter, WebhookConfig
from hookstream.views.directory import WebhookDirectory


@dataclass
class FakeMessage:
    key: bytes | None
    value: bytes | None
    topic: str = "webhooks"
    partition: int = 0
    offset: int = 0


@dataclass
class FakeEvent:
    message: FakeMessage
    acked: bool = False

    @property
    def key(self) -> bytes | None:
        return self.message.key

    @property
    def value(self) -> bytes | None:
        return self.message.value

    def ack(self) -> None:
        self.acked = True


@dataclass
class FakeStream:
    """What ``agents.records`` reads of a Faust stream: ``noack().events()``."""

    events_: list[FakeEvent]

    def noack(self) -> FakeStream:
        return self

    async def events(self) -> AsyncIterator[FakeEvent]:
        for event in self.events_:
            yield event


@dataclass
class FakeTopic:
    sent: list[bytes] = field(default_factory=list)

    async def send(self, key: bytes | None, value: bytes) -> asyncio.Future[None]:
        self.sent.append(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def config(webhook_id: str, revision: int = 0) -> WebhookConfig:
    return WebhookConfig(
        webhook_id=webhook_id,
        name=webhook_id,
        payload_url="https://example.com/hook",
        triggers=["/items"],
        revision=revision,
    )


def run_audit(events: list[FakeEvent], directory: WebhookDirectory | None) -> list[DeadLetter]:
    topic = FakeTopic()
    stream = cast(faust.StreamT[bytes], FakeStream(events))
    known = directory.holds if directory is not None else None
    asyncio.run(audit(stream, WebhookConfig, DeadLetters(cast(Any, topic)), known))
    assert all(event.acked for event in events)
    return [decode(value, DeadLetter) for value in topic.sent]


def test_only_what_does_not_decode_is_dead_lettered() -> None:
    held, newer = config("a"), config("b", revision=2)
    directory = WebhookDirectory()
    directory.put(held, encode(held))
    events = [
        FakeEvent(FakeMessage(b"a", encode(held), offset=0)),  # held: not decoded again
        FakeEvent(FakeMessage(b"b", encode(newer), offset=1)),  # not held yet: decoded, fine
        FakeEvent(FakeMessage(b"c", b"garbage", offset=2)),
        FakeEvent(FakeMessage(b"a", None, offset=3)),  # a tombstone
    ]
    decodes = directory.decodes
    letters = run_audit(events, directory)
    assert [(letter.key, letter.offset) for letter in letters] == [(b"c", 2)]
    assert "not an Avro single-object record" in letters[0].reason
    assert directory.decodes == decodes


def test_a_record_the_directory_holds_is_not_decoded_again(monkeypatch: Any) -> None:
    held = config("a")
    directory = WebhookDirectory()
    directory.put(held, encode(held))
    decoded: list[bytes] = []

    def counting_decode(value: bytes, model: Any) -> Any:
        decoded.append(value)
        return decode(value, model)

    monkeypatch.setattr("hookstream.matcher.agents.decode", counting_decode)
    other = encode(config("b"))
    events = [FakeEvent(FakeMessage(b"a", encode(held))), FakeEvent(FakeMessage(b"b", other))]
    assert run_audit(events, directory) == []
    assert decoded == [other]
    decoded.clear()
    assert run_audit([FakeEvent(FakeMessage(b"a", encode(held)))], None) == []
    assert len(decoded) == 1  # without a directory every record is decoded
