"""Route of /api/v1/schemas: the Avro schema a record was written with, by the fingerprint in its
header, for consumers outside hookstream that meet a schema newer than theirs (docs/schemas.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response

from hookstream.admin.schemas import Problem, problem_responses
from hookstream.records.schemastore import FINGERPRINT_HEX, normalize_fingerprint, schema_for

router = APIRouter(prefix="/schemas", tags=["schemas"])

#: A schema never changes under its fingerprint: clients and proxies may keep it for good.
_IMMUTABLE = "public, max-age=31536000, immutable"


@router.get(
    "/{fingerprint}",
    summary="The Avro schema with this fingerprint (the 8 bytes after C3 01 in a record, as hex)",
    response_description="The schema itself, self-contained, ready for an Avro schema parser.",
    responses={
        **problem_responses(401),
        404: {"model": Problem, "description": "hookstream never wrote with this schema."},
    },
)
async def show_schema(
    fingerprint: Annotated[
        str,
        Path(
            description="The 8 fingerprint bytes of a record header in hex, in the order they "
            "are written (little-endian), e.g. as `value[2:10].hex()` gives them.",
            examples=["945e2e514f986f67"],
        ),
    ],
    response: Response,
) -> dict[str, Any]:
    found = schema_for(fingerprint)
    if found is None:
        typed = normalize_fingerprint(fingerprint)
        if not FINGERPRINT_HEX.match(typed):
            detail = (
                "not a schema fingerprint: expected the 8 bytes after C3 01 in a record header "
                "as 16 hex digits"
            )
        else:
            detail = (
                f"no schema with fingerprint {typed}: hookstream has never written records "
                f"with it (is the record from another producer, or damaged?)"
            )
        raise HTTPException(status_code=404, detail=detail)
    response.headers["Cache-Control"] = _IMMUTABLE
    return found.schema
