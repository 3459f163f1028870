"""The admin API's models of the event-type catalog: a type to declare, and the types listed."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hookstream.core.eventtypes import SchemaMode


class EventTypeIn(BaseModel):
    """An event type to declare in the catalog; the rules are those of ``EventType``."""

    source: str = Field(description="The event source (`orders`); not a built-in source.")
    operation: str = Field(description="What happened (`created`); the type is `source.operation`.")
    description: str = Field(default="", description="What the event means, for receivers.")
    json_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema the events' `properties` must satisfy."
    )
    schema_mode: SchemaMode = Field(
        default=SchemaMode.REJECT,
        description="`reject`: dead-letter events that break `json_schema`; `warn`: log only.",
    )
    example: dict[str, Any] | None = Field(
        default=None, description="Example `properties`; must satisfy `json_schema`."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "source": "orders",
                    "operation": "created",
                    "description": "A customer placed an order.",
                    "json_schema": {
                        "type": "object",
                        "required": ["total"],
                        "properties": {"total": {"type": "number"}},
                    },
                    "example": {"total": 42.5},
                }
            ]
        },
    )


class EventTypeOut(BaseModel):
    """A built-in or declared event type, with the triggers that subscribe to it."""

    name: str = Field(description="`source.operation` (declared, portal) or the device name.")
    family: Literal["portal", "device", "catalog"]
    source: str
    operation: str
    triggers: list[str] = Field(description="Triggers that subscribe to this type.")
    description: str = ""
    json_schema: dict[str, Any] | None = None
    schema_mode: SchemaMode | None = None
    example: dict[str, Any] | None = None
    created_at: int | None = None
    modified_at: int | None = None


class EventTypeList(BaseModel):
    """Every event type webhooks can subscribe to: built in first, then declared."""

    total: int
    items: list[EventTypeOut]
