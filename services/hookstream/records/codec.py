"""The one place records are turned into bytes and back: Avro single-object encoding.

Each record is ``C3 01`` + the 8-byte little-endian CRC-64-AVRO fingerprint of its schema's
canonical form + the Avro binary body, so a consumer can tell which schema wrote it. The rest of
hookstream sees only the pydantic models of ``hookstream.records.models``.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, TypeVar, cast

import avro.name
import avro.schema
import fastavro
from pydantic import BaseModel, SecretStr, ValidationError

from hookstream.core.errors import DecodeError, MustStopError, SchemaMismatchError
from hookstream.core.eventtypes import EventType
from hookstream.records.checks import MAX_PROPERTIES_DEPTH
from hookstream.records.models import (
    DeadLetter,
    DeliveryJob,
    DeliveryPolicy,
    DeliveryStatus,
    DomainEvent,
    WebhookCommand,
    WebhookConfig,
)
from hookstream.records.secretbox import secret_box

MARKER = b"\xc3\x01"
_HEADER_SIZE = len(MARKER) + 8
JSON_PROP = "hookstream.json"
SECRET_PROP = "hookstream.secret"  # noqa: S105 - the name of a schema attribute
#: A JSON string (a form without backtracking), and a bracket outside strings.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")

#: Schema files in dependency order (later ones refer to names defined by earlier ones).
SCHEMA_FILES: dict[type[BaseModel], str] = {
    DomainEvent: "domain_event.avsc",
    WebhookConfig: "webhook_config.avsc",
    WebhookCommand: "webhook_command.avsc",
    DeliveryJob: "delivery_job.avsc",
    DeliveryStatus: "delivery_status.avsc",
    DeadLetter: "dead_letter.avsc",
    DeliveryPolicy: "delivery_policy.avsc",
    EventType: "event_type.avsc",
}

M = TypeVar("M", bound=BaseModel)
#: A compiled conversion of one schema's values (see ``_writer`` and ``_reader``).
Convert = Callable[[Any], Any]


def schema_dir() -> Path:
    """``schemas/``: packaged beside the code in a wheel, at the repository root in a checkout."""
    here = Path(__file__).resolve().parents[1]  # the hookstream package, above records/
    for candidate in (here / "schemas", here.parents[1] / "schemas"):
        if (candidate / "domain_event.avsc").exists():
            return candidate
    raise FileNotFoundError(f"hookstream's Avro schemas were not found beside {here}")


def history_dir() -> Path:
    """Self-contained copies of earlier schema versions, named ``<Name>-<fingerprint>.avsc``."""
    return schema_dir() / "history"


def parse_schemas(texts: dict[type[BaseModel], str]) -> dict[type[BaseModel], avro.schema.Schema]:
    """Parse schema texts in dependency order, sharing named types between them."""
    names = avro.name.Names()
    return {
        model: avro.schema.make_avsc_object(json.loads(text), names)
        for model, text in texts.items()
    }


@dataclass(frozen=True)
class Codec:
    """One record type: its schema (the ``avro`` package: canonical form, fingerprint, the field
    attributes), and the same schema compiled by fastavro, which does the byte work ~10x faster."""

    schema: avro.schema.Schema
    fingerprint: bytes
    compiled: Any
    #: Writer schemas by fingerprint: the current one and every earlier version in history.
    writers: dict[bytes, Any]
    #: A model's value to what fastavro writes, and what it read to the model's input.
    to_avro: Convert
    from_avro: Convert


def _compile(schema: avro.schema.Schema) -> Any:
    definition = cast(dict[str, Any], schema.to_json())
    # The write hint marks the result as parsed: without it fastavro parses it again per record.
    return fastavro.parse_schema(definition)


@lru_cache(maxsize=1)
def _codecs() -> dict[type[BaseModel], Codec]:
    folder = schema_dir()
    texts = {model: (folder / name).read_text() for model, name in SCHEMA_FILES.items()}
    by_name = {model.__name__: model for model in SCHEMA_FILES}
    codecs: dict[type[BaseModel], Codec] = {}
    for model, schema in parse_schemas(texts).items():
        fingerprint = schema.fingerprint()
        compiled = _compile(schema)
        codecs[model] = Codec(
            schema,
            fingerprint,
            compiled,
            {fingerprint: compiled},
            _writer(schema) or _same,
            _reader(schema) or _same,
        )
    for path in sorted(history_dir().glob("*.avsc")):
        model_name = path.stem.rsplit("-", 1)[0]
        historic = by_name.get(model_name)
        if historic is None:
            continue
        old = avro.schema.make_avsc_object(json.loads(path.read_text()), avro.name.Names())
        codecs[historic].writers.setdefault(old.fingerprint(), _compile(old))
    return codecs


def codec_of(model: type[BaseModel]) -> Codec:
    """The schemas and conversions of one record type."""
    return _codecs()[model]


def fingerprint_of(model: type[BaseModel]) -> bytes:
    """The 8-byte CRC-64-AVRO fingerprint of a record type's current schema."""
    return _codecs()[model].fingerprint


def _plain(value: Any) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def _seal(value: Any) -> Any:
    """Encrypt a secret field (a string, or a map of strings) for Kafka."""
    if value is None:
        return None
    box = secret_box()
    if isinstance(value, dict):
        return {key: box.encrypt(_plain(item)) for key, item in value.items()}
    return box.encrypt(_plain(value))


def _unseal(value: Any) -> Any:
    if value is None:
        return None
    box = secret_box()
    if isinstance(value, dict):
        return {key: box.decrypt(item) for key, item in value.items()}
    return box.decrypt(value)


def describe_validation_error(exc: ValidationError) -> str:
    """A validation error's fields and rules, without the input values (they may be secrets)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'record'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False)
    )


def json_too_deep(text: str, limit: int = MAX_PROPERTIES_DEPTH) -> bool:
    """Whether a JSON document nests objects and arrays more than ``limit`` levels deep.

    Checked before ``json.loads``, which recurses once per level: a deep enough document would
    raise RecursionError (or, a little less deep, parse and make every later encoder fail)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for bracket in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        if bracket.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _json_field(name: str, text: str) -> Any:
    if json_too_deep(text):
        raise DecodeError(
            f"{name} nests objects and arrays deeper than {MAX_PROPERTIES_DEPTH} levels "
            f"(hookstream.records.checks.MAX_PROPERTIES_DEPTH)"
        )
    return json.loads(text)


def _text(value: Any) -> Any:
    """A string leaf: plain strings pass; a secret or an enum member gives its text."""
    if type(value) is str:
        return value
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Enum):
        return value.value
    return value


def _symbol(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _dump_json(value: Any) -> str:
    # allow_nan=False: NaN and Infinity are not JSON; a receiver could not parse them.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _optional(convert: Convert) -> Convert:
    return lambda value: None if value is None else convert(value)


def _writer(schema: avro.schema.Schema) -> Convert | None:
    """Compile how a model's value becomes what fastavro writes for ``schema``, once per schema:
    walking the schema objects for every record cost more than the byte work itself."""
    if isinstance(schema, avro.schema.RecordSchema):
        plain: list[str] = []
        converted: list[tuple[str, Convert]] = []
        for field in schema.fields:
            if field.props.get(SECRET_PROP):
                converted.append((field.name, _seal))
            elif field.props.get(JSON_PROP):
                converted.append((field.name, _dump_json))
            else:
                convert = _writer(field.type)
                if convert is None:
                    plain.append(field.name)
                else:
                    converted.append((field.name, convert))
        plain_names, conversions = tuple(plain), tuple(converted)

        def record(value: Any) -> dict[str, Any]:
            attributes = value.__dict__  # a pydantic model's field values
            out = {name: attributes[name] for name in plain_names}
            for name, convert in conversions:
                out[name] = convert(attributes[name])
            return out

        return record
    if isinstance(schema, avro.schema.UnionSchema):
        branch = next(s for s in schema.schemas if s.type != "null")
        convert = _writer(branch)
        return None if convert is None else _optional(convert)
    if isinstance(schema, avro.schema.ArraySchema):
        item = _writer(schema.items)
        return None if item is None else lambda value: [item(each) for each in value]
    if isinstance(schema, avro.schema.MapSchema):
        entry = _writer(schema.values)
        if entry is None:
            return None
        return lambda value: {key: entry(each) for key, each in value.items()}
    if isinstance(schema, avro.schema.EnumSchema):
        return _symbol
    if schema.type == "string":
        return _text
    return None


def _reader(schema: avro.schema.Schema) -> Convert | None:
    """Compile how what fastavro read for ``schema`` becomes a model's input (secrets opened,
    JSON fields parsed); None where fastavro's value is the input as it is."""
    if isinstance(schema, avro.schema.RecordSchema):
        converted: list[tuple[str, Convert]] = []
        for field in schema.fields:
            if field.props.get(SECRET_PROP):
                converted.append((field.name, _unseal))
            elif field.props.get(JSON_PROP):
                converted.append((field.name, partial(_json_field, field.name)))
            else:
                convert = _reader(field.type)
                if convert is not None:
                    converted.append((field.name, convert))
        if not converted:
            return None
        conversions = tuple(converted)

        def record(raw: dict[str, Any]) -> dict[str, Any]:
            for name, convert in conversions:
                raw[name] = convert(raw[name])
            return raw

        return record
    if isinstance(schema, avro.schema.UnionSchema):
        branch = next(s for s in schema.schemas if s.type != "null")
        convert = _reader(branch)
        return None if convert is None else _optional(convert)
    if isinstance(schema, avro.schema.ArraySchema):
        item = _reader(schema.items)
        return None if item is None else lambda value: [item(each) for each in value]
    if isinstance(schema, avro.schema.MapSchema):
        entry = _reader(schema.values)
        if entry is None:
            return None
        return lambda value: {key: entry(each) for key, each in value.items()}
    return None


def _same(value: Any) -> Any:
    return value


def encode(record: BaseModel) -> bytes:
    """The single-object encoding of a record under its current schema."""
    codec = _codecs()[type(record)]
    buffer = io.BytesIO()
    buffer.write(MARKER)
    buffer.write(codec.fingerprint)
    fastavro.schemaless_writer(buffer, codec.compiled, codec.to_avro(record))
    return buffer.getvalue()


def _name_of(fingerprint: bytes) -> str:
    for model, codec in _codecs().items():
        if codec.fingerprint == fingerprint:
            return f" ({model.__name__})"
    return " (an unknown schema)"


def decode(data: bytes | None, model: type[M]) -> M:
    """Decode a single-object-encoded record; any mismatch or damage is a DecodeError."""
    codec = _codecs()[model]
    if data is None:
        raise DecodeError(
            f"expected a {model.__name__} record but the value is empty (a tombstone)"
        )
    if len(data) < _HEADER_SIZE or data[:2] != MARKER:
        raise DecodeError(
            f"not an Avro single-object record: it must start with C3 01 and an 8-byte schema "
            f"fingerprint (got {data[:10].hex(' ') or 'no bytes'})"
        )
    written_with = data[2:_HEADER_SIZE]
    writer = codec.writers.get(written_with)
    if writer is None:
        raise SchemaMismatchError(
            f"record was written with schema fingerprint {written_with.hex()}"
            f"{_name_of(written_with)}"
            f" but the reader expects {codec.fingerprint.hex()} ({model.__name__})"
        )
    try:
        body = io.BytesIO(data[_HEADER_SIZE:])
        raw = fastavro.schemaless_reader(body, writer, codec.compiled)
        if body.tell() != len(data) - _HEADER_SIZE:
            raise DecodeError(f"{len(data) - _HEADER_SIZE - body.tell()} bytes after the record")
        fields = codec.from_avro(raw)
    except (DecodeError, MustStopError):
        raise  # a MustStopError: the record is fine, this process's configuration is not
    except Exception as exc:  # the avro package raises assorted types on damaged input
        raise DecodeError(
            f"damaged {model.__name__} record body: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise DecodeError(
            f"invalid {model.__name__} record: {describe_validation_error(exc)}"
        ) from None
