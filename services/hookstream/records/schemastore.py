"""Writer schemas by fingerprint, for consumers outside hookstream that meet a record they cannot
read with the schema they hold (served by the admin API, ``GET /api/v1/schemas/{fingerprint}``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import avro.name
import avro.schema

from hookstream.records.codec import SCHEMA_FILES, history_dir, parse_schemas, schema_dir

#: A fingerprint as it appears in a record: the 8 bytes after ``C3 01``, in hex, in that order.
FINGERPRINT_HEX = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class KnownSchema:
    """One schema version: its record name, whether it is the one hookstream writes now, and the
    self-contained schema JSON (named types defined inline, docs and defaults kept)."""

    name: str
    current: bool
    schema: dict[str, Any]


@lru_cache(maxsize=1)
def known_schemas() -> dict[str, KnownSchema]:
    """Every schema hookstream writes or has written, by fingerprint hex (little-endian as in a
    record header): the current ones in ``schemas/`` and every version kept in history."""
    folder = schema_dir()
    texts = {model: (folder / name).read_text() for model, name in SCHEMA_FILES.items()}
    known: dict[str, KnownSchema] = {}
    for model, schema in parse_schemas(texts).items():
        known[schema.fingerprint().hex()] = KnownSchema(model.__name__, True, _json(schema))
    for path in sorted(history_dir().glob("*.avsc")):
        old = avro.schema.make_avsc_object(json.loads(path.read_text()), avro.name.Names())
        name = path.stem.rsplit("-", 1)[0]
        known.setdefault(old.fingerprint().hex(), KnownSchema(name, False, _json(old)))
    return known


def _json(schema: avro.schema.Schema) -> dict[str, Any]:
    # to_json() with fresh names defines every named type at its first use: self-contained.
    return cast(dict[str, Any], schema.to_json())


def normalize_fingerprint(text: str) -> str:
    """The lookup key of a fingerprint as a user may type it (any letter case, with or without
    separating spaces or colons, as ``xxd`` and Kafka tools print bytes)."""
    return re.sub(r"[\s:]", "", text).lower()


def schema_for(fingerprint: str) -> KnownSchema | None:
    """The schema with this fingerprint, or None when hookstream never wrote with it."""
    return known_schemas().get(normalize_fingerprint(fingerprint))
