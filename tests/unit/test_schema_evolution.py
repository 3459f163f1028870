"""Every schema can read data written with each of its earlier committed versions."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import avro.name
import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from hookstream.codec import SCHEMA_FILES, parse_schemas, schema_dir

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
