"""Which database holds the delivery history, from the admin settings.

``AdminSettings.history_backend`` (``sqlite`` or ``postgres``) picks the backend;
``history_path`` is the SQLite file and ``history_dsn`` the PostgreSQL connection string (secret).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hookstream.core.errors import ConfigurationError
from hookstream.history.backends import PostgresConnection, SqliteConnection
from hookstream.history.store import HistoryStore
from hookstream.settings import Settings


def default_sqlite_path(app_id: str) -> Path:
    """Where the embedded history lives unless HOOKSTREAM_ADMIN__HISTORY_PATH says otherwise
    (not durable: production puts it on a volume)."""
    return Path(tempfile.gettempdir()) / "hookstream-admin" / f"{app_id}-history.sqlite3"


def sqlite_store(path: Path, success_retention_s: int, failure_retention_s: int) -> HistoryStore:
    """The embedded history in one file; it needs no server."""
    return HistoryStore(
        SqliteConnection(path, cache_kib=8192),
        SqliteConnection(path, cache_kib=8192),
        success_retention_s,
        failure_retention_s,
    )


def postgres_store(dsn: str, success_retention_s: int, failure_retention_s: int) -> HistoryStore:
    """The history in an operator's PostgreSQL database, which several admin replicas share."""
    return HistoryStore(
        PostgresConnection(dsn), PostgresConnection(dsn), success_retention_s, failure_retention_s
    )


def open_store(settings: Settings) -> HistoryStore:
    """The history these settings name, its tables created if missing."""
    admin = settings.admin
    success_s, failure_s = admin.success_retention_s, admin.failure_retention_s
    if admin.history_backend == "sqlite":
        path = admin.history_path or default_sqlite_path(settings.app_id)
        return sqlite_store(path, success_s, failure_s)
    if admin.history_backend == "postgres":
        if admin.history_dsn is None:
            raise ConfigurationError(
                "HOOKSTREAM_ADMIN__HISTORY_BACKEND is postgres but HOOKSTREAM_ADMIN__HISTORY_DSN "
                "is not set; set it to postgresql://user:password@host:5432/database"
            )
        dsn = admin.history_dsn.get_secret_value()
        return postgres_store(dsn, success_s, failure_s)
    raise ConfigurationError(
        f"HOOKSTREAM_ADMIN__HISTORY_BACKEND is {admin.history_backend!r}; use sqlite or postgres"
    )
