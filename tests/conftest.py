"""Shared fixtures: one real Kafka broker per test session, started by the project's own code.

Set HOOKSTREAM_TEST_KAFKA_BOOTSTRAP to run the integration tests against an existing cluster.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, overload

import pytest

from support import TEST_SECRETS_KEY

# Encrypt webhook secrets with the session's key in this process too (read once, lazily).
os.environ["HOOKSTREAM_SECURITY__SECRETS_KEYS"] = TEST_SECRETS_KEY

from history_support import HistoryDatabase, postgres_server
from hookstream.kafka.topics import create_topics
from hookstream.localkafka.broker import LocalBroker
from hookstream.settings import LocalKafkaSettings, Settings
from support import (
    DeadLetterReader,
    Pipeline,
    Receiver,
    StatusReader,
    StatusReaderFactory,
    unique_settings,
)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real broker for the session: the same code as `hookstream kafka start`, on a free port."""
    existing = os.environ.get("HOOKSTREAM_TEST_KAFKA_BOOTSTRAP")
    if existing:
        yield existing
        return
    settings = LocalKafkaSettings(port=0, controller_port=0)
    broker = LocalBroker(settings, workdir=tmp_path_factory.mktemp("kafka"))
    info = broker.start()
    try:
        yield info.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def make_settings(kafka_bootstrap: str) -> Callable[..., Settings]:
    """Settings with unique, freshly created topics for one test."""

    def make(**delivery: object) -> Settings:
        settings = unique_settings(kafka_bootstrap, **delivery)
        create_topics(kafka_bootstrap, settings.topics)
        return settings

    return make


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def pipeline_factory(tmp_path: Path) -> Iterator[Callable[[Settings], Pipeline]]:
    pipelines: list[Pipeline] = []

    def make(settings: Settings) -> Pipeline:
        pipeline = Pipeline(settings, tmp_path)
        pipelines.append(pipeline)
        return pipeline

    yield make
    for pipeline in pipelines:
        pipeline.stop()


@pytest.fixture
def status_reader_factory(kafka_bootstrap: str) -> Iterator[StatusReaderFactory]:
    readers: list[StatusReader | DeadLetterReader] = []

    @overload
    def make(settings: Settings, dead_letters: Literal[False] = False) -> StatusReader: ...

    @overload
    def make(settings: Settings, dead_letters: Literal[True]) -> DeadLetterReader: ...

    def make(settings: Settings, dead_letters: bool = False) -> StatusReader | DeadLetterReader:
        reader: StatusReader | DeadLetterReader = (
            DeadLetterReader(kafka_bootstrap, settings)
            if dead_letters
            else StatusReader(kafka_bootstrap, settings)
        )
        readers.append(reader)
        return reader

    yield make
    for reader in readers:
        reader.close()


@pytest.fixture(scope="session")
def postgres_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server for the session, started only when a test asks for it."""
    with postgres_server(tmp_path_factory.mktemp("postgres")) as dsn:
        yield dsn


@pytest.fixture(params=["sqlite", "postgres"])
def history_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryDatabase]:
    """An empty delivery-history database; every test using it runs on both backends."""
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgres" else None
    database = HistoryDatabase(request.param, tmp_path, dsn)
    yield database
    database.close()
