"""Writer schemas by fingerprint (records/schemastore.py): every schema a record names is found."""

from __future__ import annotations

import io
import json

import avro.name
import avro.schema
import fastavro
import pytest

from hookstream.records.codec import SCHEMA_FILES, encode, fingerprint_of, history_dir
from hookstream.records.models import DeliveryStatus, Outcome
from hookstream.records.schemastore import FINGERPRINT_HEX, known_schemas, schema_for


@pytest.mark.parametrize("model", list(SCHEMA_FILES), ids=lambda m: m.__name__)
def test_the_fingerprint_in_a_record_header_finds_its_schema(model: type) -> None:
    fingerprint = fingerprint_of(model)
    found = schema_for(fingerprint.hex())
    assert found is not None and found.current and found.name == model.__name__
    parsed = avro.schema.make_avsc_object(found.schema, avro.name.Names())
    assert parsed.fingerprint() == fingerprint


def test_every_kept_version_is_found_and_self_contained() -> None:
    for path in history_dir().glob("*.avsc"):
        name, fingerprint = path.stem.rsplit("-", 1)
        found = schema_for(fingerprint)
        assert found is not None and found.name == name
        parsed = avro.schema.make_avsc_object(found.schema, avro.name.Names())
        assert parsed.fingerprint().hex() == fingerprint
    assert all(FINGERPRINT_HEX.match(key) for key in known_schemas())


def test_the_served_schema_decodes_a_record_as_written() -> None:
    """What a consumer outside hookstream does: read the header, fetch, decode with fastavro."""
    status = DeliveryStatus(webhook_id="w", webhook_name="W", outcome=Outcome.DELIVERED, final=True)
    data = encode(status)
    found = schema_for(data[2:10].hex())
    assert found is not None
    # json round trip: the schema as the admin API sends it
    writer = fastavro.parse_schema(json.loads(json.dumps(found.schema)))
    read = fastavro.schemaless_reader(io.BytesIO(data[10:]), writer)
    assert isinstance(read, dict)
    assert read["outcome"] == "delivered" and read["webhook_id"] == "w"


def test_fingerprints_are_read_in_any_case_and_spacing() -> None:
    """As ``xxd`` or a Kafka tool prints the header bytes."""
    plain = fingerprint_of(DeliveryStatus).hex()
    pairs = [plain[i : i + 2] for i in range(0, 16, 2)]
    for typed in (plain.upper(), " ".join(pairs), ":".join(pairs)):
        found = schema_for(typed)
        assert found is not None and found.name == "DeliveryStatus", typed


def test_an_unknown_or_malformed_fingerprint_finds_nothing() -> None:
    assert schema_for("0000000000000000") is None
    assert schema_for("not-hex") is None
    assert schema_for("") is None
