"""Every schema hookstream writes today is kept in schemas/history/ (scripts/snapshot_schemas.py).

Readers resolve a record's writer schema by the fingerprint it carries; a schema changed without
its copy kept would leave the records written with it unreadable after the next change.
"""

from __future__ import annotations

from hookstream.records.codec import SCHEMA_FILES, history_dir, parse_schemas, schema_dir


def test_every_current_schema_has_its_copy_in_history() -> None:
    folder = schema_dir()
    texts = {model: (folder / name).read_text() for model, name in SCHEMA_FILES.items()}
    kept = {path.stem for path in history_dir().glob("*.avsc")}
    missing = [
        f"{model.__name__}-{schema.fingerprint().hex()}"
        for model, schema in parse_schemas(texts).items()
        if f"{model.__name__}-{schema.fingerprint().hex()}" not in kept
    ]
    assert not missing, f"run scripts/snapshot_schemas.py and commit: {missing}"
