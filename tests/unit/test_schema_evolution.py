"""Every schema can read data written with each of its earlier versions, and consumers holding
the current schemas can read what later versions write (the rules of docs/schemas.md)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import avro.io
import avro.name
import avro.schema
import fastavro
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from hookstream.records.codec import SCHEMA_FILES, decode, encode, parse_schemas, schema_dir
from hookstream.records.models import DeliveryStatus, Outcome, WebhookCommand

REPO = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str:
    git = shutil.which("git")
    if git is None:
        pytest.fail("git is needed to read the earlier versions of schemas/")
    return subprocess.run([git, *args], cwd=REPO, capture_output=True, text=True, check=True).stdout


def _committed_versions(name: str) -> list[str]:
    """Every commit that changed schemas/<name>, newest first."""
    return [
        line for line in _git("log", "--format=%H", "--", f"schemas/{name}").splitlines() if line
    ]


def _schemas_at(commit: str) -> dict[type, avro.schema.Schema]:
    """The schemas as committed then (files added later are simply absent)."""
    texts = {}
    for model, name in SCHEMA_FILES.items():
        try:
            texts[model] = _git("show", f"{commit}:schemas/{name}")
        except subprocess.CalledProcessError:
            continue
    return parse_schemas(texts)


def test_repository_has_history() -> None:
    assert _committed_versions("domain_event.avsc"), "schemas/ must be committed to check evolution"


@pytest.mark.parametrize("model", list(SCHEMA_FILES), ids=lambda m: m.__name__)
def test_current_schema_reads_every_earlier_version(model: type) -> None:
    current = parse_schemas({m: (schema_dir() / n).read_text() for m, n in SCHEMA_FILES.items()})[
        model
    ]
    commits = _committed_versions(SCHEMA_FILES[model])
    checked = 0
    for commit in commits:
        old = _schemas_at(commit)
        result = ReaderWriterCompatibilityChecker().get_compatibility(
            reader=current, writer=old[model]
        )
        assert result.compatibility is SchemaCompatibilityType.compatible, (
            f"schemas/{SCHEMA_FILES[model]} cannot read data written at {commit[:10]}: "
            f"{result.messages}"
        )
        checked += 1
    assert checked >= 1


def test_checker_refuses_an_incompatible_change() -> None:
    """The check has teeth: a new required field without a default is refused."""
    text = json.loads((schema_dir() / "domain_event.avsc").read_text())
    writer = avro.schema.make_avsc_object(text, avro.name.Names())
    text["fields"].append({"name": "required_without_default", "type": "string"})
    reader = avro.schema.make_avsc_object(text, avro.name.Names())
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader=reader, writer=writer)
    assert result.compatibility is SchemaCompatibilityType.incompatible


@pytest.mark.parametrize(
    "path", sorted((schema_dir() / "history").glob("*.avsc")), ids=lambda p: p.stem
)
def test_current_schema_reads_every_kept_version(path: Path) -> None:
    """The versions the codec keeps for decoding old records are all readable by the current one."""
    name = path.stem.rsplit("-", 1)[0]
    [model] = [m for m in SCHEMA_FILES if m.__name__ == name]
    current = parse_schemas({m: (schema_dir() / n).read_text() for m, n in SCHEMA_FILES.items()})
    old = avro.schema.make_avsc_object(json.loads(path.read_text()), avro.name.Names())
    assert old.fingerprint().hex() == path.stem.rsplit("-", 1)[1]
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader=current[model], writer=old)
    assert result.compatibility is SchemaCompatibilityType.compatible, result.messages


# --- enums --------------------------------------------------------------------------------------

#: Enums whose readers must tolerate symbols added later: they carry a default (``unknown``).
#: Every other enum (command kinds, auth kinds, payload formats) has none on purpose: a reader
#: that meets a symbol it does not know must refuse the record (it is dead-lettered), never
#: act on a guess.
TOLERANT_ENUMS = {"io.hookstream.Outcome": "unknown"}


def _enums(schema: avro.schema.Schema, found: dict[str, avro.schema.EnumSchema]) -> None:
    if isinstance(schema, avro.schema.EnumSchema):
        found[schema.fullname] = schema
    elif isinstance(schema, avro.schema.RecordSchema):
        if schema.fullname in found:
            return
        found[schema.fullname] = schema  # type: ignore[assignment]  # marks the record as seen
        for field in schema.fields:
            _enums(field.type, found)
    elif isinstance(schema, avro.schema.UnionSchema):
        for branch in schema.schemas:
            _enums(branch, found)
    elif isinstance(schema, avro.schema.ArraySchema):
        _enums(schema.items, found)
    elif isinstance(schema, avro.schema.MapSchema):
        _enums(schema.values, found)


def enums_of(schema: avro.schema.Schema) -> dict[str, avro.schema.EnumSchema]:
    """Every enum a schema uses, by full name."""
    found: dict[str, avro.schema.EnumSchema] = {}
    _enums(schema, found)
    return {name: s for name, s in found.items() if isinstance(s, avro.schema.EnumSchema)}


def enum_rule_violations(old: avro.schema.Schema, new: avro.schema.Schema) -> list[str]:
    """Where ``new`` breaks the enum rule against ``old``: symbols are only appended at the end.

    Avro writes an enum as the symbol's position in the writer's list; a consumer that decodes
    with its own copy of the schema (no lookup of the writer's) reads positions, so a removed,
    renamed or moved symbol would be read as another one. With a reader default, Avro's own
    compatibility check does not see a removal, hence this check.
    """
    new_enums = enums_of(new)
    problems = []
    for name, before in enums_of(old).items():
        after = new_enums.get(name)
        if after is None:
            problems.append(f"enum {name} was removed")
        elif list(after.symbols[: len(before.symbols)]) != list(before.symbols):
            problems.append(
                f"enum {name}: symbols {list(before.symbols)} became {list(after.symbols)}; "
                f"symbols may only be added at the end"
            )
    return problems


def _current() -> dict[type, avro.schema.Schema]:
    return parse_schemas({m: (schema_dir() / n).read_text() for m, n in SCHEMA_FILES.items()})


def _status_text() -> dict[str, Any]:
    text: dict[str, Any] = json.loads((schema_dir() / "delivery_status.avsc").read_text())
    return text


def _outcome_symbols(text: dict[str, Any]) -> list[str]:
    [field] = [f for f in text["fields"] if f["name"] == "outcome"]
    symbols: list[str] = field["type"]["symbols"]
    return symbols


def test_only_tolerant_enums_carry_a_default() -> None:
    seen = {}
    for schema in _current().values():
        seen.update(enums_of(schema))
    assert set(TOLERANT_ENUMS) <= set(seen)
    for name, enum in seen.items():
        assert enum.get_prop("default") == TOLERANT_ENUMS.get(name), (
            f"enum {name}: only {sorted(TOLERANT_ENUMS)} may have a default (see docs/schemas.md)"
        )
        if name in TOLERANT_ENUMS:
            assert TOLERANT_ENUMS[name] in enum.symbols


@pytest.mark.parametrize("model", list(SCHEMA_FILES), ids=lambda m: m.__name__)
def test_enum_symbols_are_only_appended_across_committed_versions(model: type) -> None:
    current = _current()[model]
    for commit in _committed_versions(SCHEMA_FILES[model]):
        old = _schemas_at(commit)[model]
        assert enum_rule_violations(old, current) == [], f"against {commit[:10]}"


@pytest.mark.parametrize(
    "path", sorted((schema_dir() / "history").glob("*.avsc")), ids=lambda p: p.stem
)
def test_enum_symbols_are_only_appended_across_kept_versions(path: Path) -> None:
    [model] = [m for m in SCHEMA_FILES if m.__name__ == path.stem.rsplit("-", 1)[0]]
    old = avro.schema.make_avsc_object(json.loads(path.read_text()), avro.name.Names())
    assert enum_rule_violations(old, _current()[model]) == []


def _future_status() -> tuple[avro.schema.Schema, avro.schema.Schema, dict[str, Any]]:
    """(this schema, a later one whose Outcome gained ``expired``, its JSON)."""
    text = _status_text()
    future = json.loads(json.dumps(text))
    _outcome_symbols(future).append("expired")
    this = avro.schema.make_avsc_object(text, avro.name.Names())
    later = avro.schema.make_avsc_object(future, avro.name.Names())
    return this, later, future


_EXPIRED = {
    "delivery_id": "d-1",
    "webhook_id": "w-1",
    "webhook_name": "W",
    "event_ids": ["e-1"],
    "trigger": "/items",
    "attempt": 3,
    "max_attempts": 3,
    "attempted_at": 1_700_000_000_000,
    "duration_ms": 1.5,
    "outcome": "expired",
    "final": True,
    "next_attempt_at": None,
    "http_status": None,
    "response_excerpt": None,
    "error": "expired before delivery",
    "payload": None,
}


def _written_by_later_schema(future: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(future), _EXPIRED)
    return buffer.getvalue()


def test_this_status_schema_declares_later_outcomes_compatible() -> None:
    """Avro's own check (Java's SchemaCompatibility gives the same): a consumer holding this
    schema can read records of a schema that adds an Outcome symbol."""
    this, later, _ = _future_status()
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader=this, writer=later)
    assert result.compatibility is SchemaCompatibilityType.compatible, result.messages


def test_fastavro_resolves_a_new_outcome_to_unknown() -> None:
    """A Python consumer that looks up the writer's schema by fingerprint and resolves it
    against this one (fastavro) reads a new symbol as ``unknown`` and every other field as is."""
    _, _, future = _future_status()
    body = _written_by_later_schema(future)
    read = fastavro.schemaless_reader(
        io.BytesIO(body), fastavro.parse_schema(future), fastavro.parse_schema(_status_text())
    )
    assert read == {**_EXPIRED, "outcome": "unknown"}


def test_avro_package_reading_with_this_schema_gets_unknown() -> None:
    """A consumer that decodes with its own copy of this schema (no writer lookup) reads the
    appended symbol's position as ``unknown``: the reason symbols go only at the end."""
    this, _, future = _future_status()
    body = _written_by_later_schema(future)
    read = avro.io.DatumReader(this).read(avro.io.BinaryDecoder(io.BytesIO(body)))
    assert read == {**_EXPIRED, "outcome": "unknown"}


def test_hookstream_reads_an_unknown_outcome() -> None:
    """hookstream's own model accepts what a consumer with this schema reads."""
    status = DeliveryStatus.model_validate({**_EXPIRED, "outcome": "unknown"})
    assert status.outcome is Outcome.UNKNOWN
    assert decode(encode(status), DeliveryStatus) == status


@pytest.mark.parametrize(
    ("change", "symbols"),
    [
        ("removed", ["delivered", "failed", "deactivated", "activated", "unknown"]),
        ("renamed", ["delivered", "failed", "ignored", "deactivated", "activated", "unknown"]),
        ("moved", ["delivered", "failed", "skipped", "deactivated", "unknown", "activated"]),
        ("inserted", ["delivered", "expired", "failed", "skipped", "deactivated", "activated"]),
    ],
)
def test_removing_renaming_or_moving_an_outcome_is_caught(change: str, symbols: list[str]) -> None:
    this = avro.schema.make_avsc_object(_status_text(), avro.name.Names())
    text = _status_text()
    _outcome_symbols(text)[:] = symbols
    if "unknown" not in symbols:
        text["fields"][[f["name"] for f in text["fields"]].index("outcome")]["type"].pop("default")
    changed = avro.schema.make_avsc_object(text, avro.name.Names())
    [problem] = enum_rule_violations(this, changed)
    assert "io.hookstream.Outcome" in problem and "added at the end" in problem, change


def test_removing_a_command_kind_is_refused_by_avro_too() -> None:
    """An enum without a default: Avro's check itself refuses a reader missing a symbol."""
    texts = {m: (schema_dir() / n).read_text() for m, n in SCHEMA_FILES.items()}
    text = json.loads(texts[WebhookCommand])
    [kind] = [f for f in text["fields"] if f["name"] == "kind"]
    kind["type"]["symbols"].remove("record_failure")
    writer = parse_schemas(texts)[WebhookCommand]
    reader = parse_schemas({**texts, WebhookCommand: json.dumps(text)})[WebhookCommand]
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader=reader, writer=writer)
    assert result.compatibility is SchemaCompatibilityType.incompatible
    assert enum_rule_violations(writer, reader)
