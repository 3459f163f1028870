"""The two databases of the delivery history behind one small connection interface.

The store writes its SQL once, with ``?`` placeholders; the PostgreSQL connection rewrites them
to psycopg's ``%s``. Each connection is used by one thread at a time (the store holds a lock per
connection), so neither driver's thread rules matter to the callers.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from hookstream.core.errors import ConfigurationError

Params = Sequence[Any]


class Connection(Protocol):
    """What the store needs of a database connection."""

    def rows(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]: ...

    def run(self, sql: str, params: Params = ()) -> int: ...

    def run_many(self, sql: str, params: Sequence[Params]) -> None: ...

    def transaction(self) -> contextlib.AbstractContextManager[None]: ...

    def try_lead(self) -> bool: ...

    def close(self) -> None: ...


class SqliteConnection:
    """A connection to the embedded database: one file (on a volume in production), WAL mode so
    that reads never wait for the ingesting writer."""

    def __init__(self, path: Path, cache_kib: int = 8192) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
        except (OSError, sqlite3.Error) as exc:
            raise ConfigurationError(
                f"cannot open the delivery history at {path}: {exc}; point "
                f"HOOKSTREAM_ADMIN__HISTORY_PATH at a writable file (on a volume)"
            ) from None
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        # Page cache per connection (SQLite's default is 2 MiB): the indexes' upper levels stay
        # in memory at a million rows, and the admin's memory is still bounded by it.
        self._db.execute(f"PRAGMA cache_size=-{int(cache_kib)}")

    def rows(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, params).fetchall()

    def run(self, sql: str, params: Params = ()) -> int:
        return self._db.execute(sql, params).rowcount

    def run_many(self, sql: str, params: Sequence[Params]) -> None:
        self._db.executemany(sql, params)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def try_lead(self) -> bool:
        """One process writes a SQLite file; it is always the one."""
        return True

    def close(self) -> None:
        self._db.close()


#: Key of the advisory lock held by the one admin replica that ingests into a shared database.
_LEAD_LOCK = 0x686F6F6B73747265


class PostgresConnection:
    """A connection to an operator's PostgreSQL database, shared by several admin replicas."""

    def __init__(self, dsn: str) -> None:
        import psycopg

        self._psycopg = psycopg
        try:
            self._db = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise ConfigurationError(
                f"cannot connect to the delivery history's PostgreSQL database: {exc}; check "
                f"HOOKSTREAM_ADMIN__HISTORY_DSN"
            ) from None

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    def rows(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        with self._db.cursor() as cursor:
            cursor.execute(self._sql(sql), params)
            return cursor.fetchall() if cursor.description is not None else []

    def run(self, sql: str, params: Params = ()) -> int:
        with self._db.cursor() as cursor:
            cursor.execute(self._sql(sql), params)
            return cursor.rowcount

    def run_many(self, sql: str, params: Sequence[Params]) -> None:
        if not params:
            return
        with self._db.cursor() as cursor:
            cursor.executemany(self._sql(sql), params)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._db.transaction():
            yield

    def try_lead(self) -> bool:
        """Whether this replica ingests: the one holding the advisory lock (released when its
        connection ends, so another replica takes over after a crash)."""
        [(held,)] = self.rows("SELECT pg_try_advisory_lock(?)", (_LEAD_LOCK,))
        return bool(held)

    def close(self) -> None:
        self._db.close()
