"""An event type of the catalog: a source and operation declared by an administrator.

Its name is ``source.operation`` (``orders.created``). A type may carry a JSON Schema for the
events' ``properties`` (checked by the matcher: dead-lettered, or only logged with ``warn``) and
an example. Sources of the built-in vocabularies cannot be declared: they keep behaving exactly
as before.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self

import jsonschema
from pydantic import Field, field_validator, model_validator

from hookstream.core.triggers import BUILTIN_SOURCES, normalize_operation, normalize_source
from hookstream.records.checks import check_properties
from hookstream.records.models import _NAME, _Record, now_ms


class SchemaMode(StrEnum):
    """What the matcher does with an event that breaks its type's JSON Schema."""

    REJECT = "reject"
    WARN = "warn"


class EventType(_Record):
    """One declared event type, as held in the compacted catalog topic (key = its name)."""

    source: str = Field(pattern=_NAME, description="The event source, e.g. orders.")
    operation: str = Field(pattern=_NAME, description="What happened, e.g. created.")
    description: str = Field(default="", max_length=2000)
    json_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema the events' properties must satisfy."
    )
    schema_mode: SchemaMode = SchemaMode.REJECT
    example: dict[str, Any] | None = Field(default=None, description="Example properties.")
    created_at: int = Field(default_factory=now_ms)
    modified_at: int = Field(default_factory=now_ms)

    @property
    def name(self) -> str:
        """``source.operation``, the type's key and the ``type`` of its Standard Webhooks body."""
        return type_name(self.source, self.operation)

    @field_validator("source")
    @classmethod
    def _not_builtin(cls, value: str) -> str:
        if value.lower() in BUILTIN_SOURCES or normalize_source(value) in BUILTIN_SOURCES:
            builtin = ", ".join(sorted(BUILTIN_SOURCES))
            raise ValueError(
                f"source {value!r} clashes with a built-in source ({builtin}); choose another name"
            )
        return value

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_properties(value)
            try:
                jsonschema.validators.validator_for(value).check_schema(value)
            except jsonschema.SchemaError as exc:
                where = "/".join(str(part) for part in exc.path) or "(root)"
                raise ValueError(f"not a valid JSON Schema at {where}: {exc.message}") from None
        return value

    @field_validator("example")
    @classmethod
    def _json_example(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_properties(value)
        return value

    @model_validator(mode="after")
    def _example_fits(self) -> Self:
        if self.example is not None and self.json_schema is not None:
            problem = schema_problem(self.json_schema, self.example)
            if problem is not None:
                raise ValueError(f"the example does not satisfy json_schema: {problem}")
        return self


def type_name(source: str, operation: str) -> str:
    """The catalog key of (source, operation): lower-case, ``source.operation``."""
    return f"{normalize_source(source)}.{normalize_operation(operation)}"


def schema_problem(schema: dict[str, Any], properties: dict[str, Any]) -> str | None:
    """The first way ``properties`` breaks ``schema`` (path and message), or None."""
    validator_class = jsonschema.validators.validator_for(schema)
    error = jsonschema.exceptions.best_match(validator_class(schema).iter_errors(properties))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path) or "(root)"
    return f"properties at {where}: {error.message}"
