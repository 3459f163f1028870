"""Delivery-history databases for tests: a fresh SQLite file or a fresh PostgreSQL database."""

from __future__ import annotations

import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from hookstream.history.config import postgres_store, sqlite_store
from hookstream.history.store import HistoryStore

ROOT = Path(__file__).resolve().parent.parent
DAY_S = 24 * 3600


@contextmanager
def postgres_server(workdir: Path) -> Iterator[str]:
    """A throwaway PostgreSQL server (scripts/postgres.sh, as CI runs it); yields its DSN."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = str(ROOT / "scripts" / "postgres.sh")
    started = subprocess.run(  # noqa: S603 - the project's own script
        ["bash", script, "start", str(workdir), str(port)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if started.returncode != 0:
        raise RuntimeError(f"scripts/postgres.sh could not start PostgreSQL:\n{started.stderr}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(  # noqa: S603
            ["bash", script, "stop", str(workdir)], capture_output=True, timeout=120, check=False
        )


class HistoryDatabase:
    """One empty history database of one backend; ``open`` it as often as a restart needs."""

    def __init__(self, backend: str, tmp_path: Path, server_dsn: str | None) -> None:
        self.backend = backend
        self._stores: list[HistoryStore] = []
        if backend == "sqlite":
            self.path = tmp_path / "history.sqlite3"
            self.dsn = ""
        else:
            assert server_dsn is not None
            name = f"h{uuid.uuid4().hex[:12]}"
            with psycopg.connect(server_dsn, autocommit=True) as admin:
                admin.execute(f"CREATE DATABASE {name}")
            self.dsn = server_dsn.rsplit("/", 1)[0] + f"/{name}"

    def open(self, success_s: int = DAY_S, failure_s: int = 7 * DAY_S) -> HistoryStore:
        """A store on this database; closed at the end of the test unless closed before."""
        if self.backend == "sqlite":
            store = sqlite_store(self.path, success_s, failure_s)
        else:
            store = postgres_store(self.dsn, success_s, failure_s)
        self._stores.append(store)
        return store

    def close(self) -> None:
        for store in self._stores:
            store.close()
