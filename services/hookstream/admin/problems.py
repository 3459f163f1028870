"""Every error answer of the admin API as RFC 9457 problem details, and the handlers making them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, NoReturn

from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from hookstream.admin.schemas import FieldProblem, Problem

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
#: Where a request part sits in an error location; the field name follows it.
_PARTS = frozenset({"body", "query", "path", "header", "cookie"})
#: Model field names shown under the API's own names.
_RENAMED = {"webhook_id": "id"}


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answer with a title from the status code and a human-readable detail."""
    body = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail)
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


def field_of(loc: Sequence[int | str]) -> str:
    """``("body", "auth", "headers")`` -> ``auth.headers``; a loc of the whole body -> ``body``."""
    parts = list(loc)
    if parts and parts[0] in _PARTS:
        parts = parts[1:]
    if parts and parts[0] in _RENAMED:
        parts[0] = _RENAMED[str(parts[0])]
    return ".".join(str(part) for part in parts) or "body"


def _message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")


def field_problems(errors: Sequence[Any]) -> list[FieldProblem]:
    """The fields and rules of validation errors; the input values are never echoed (secrets)."""
    return [FieldProblem(field=field_of(e.get("loc", ())), message=_message(e)) for e in errors]


def validation_problem(problems: list[FieldProblem]) -> JSONResponse:
    detail = "; ".join(f"{p.field}: {p.message}" for p in problems) or "invalid request"
    body = Problem(title="Unprocessable Content", status=422, detail=detail, errors=problems)
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=422, media_type=PROBLEM_JSON
    )


def raise_invalid(exc: ValidationError, prefix: tuple[str, ...] = ("body",)) -> NoReturn:
    """Report a model's validation error as the request's own 422, under ``prefix``."""
    errors = [
        {"loc": (*prefix, *error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    raise RequestValidationError(errors)


def invalid_field(field: str, message: str, part: str = "body") -> NoReturn:
    """Refuse one field with a message saying what is allowed."""
    raise RequestValidationError([{"loc": (part, field), "msg": message, "type": "value_error"}])


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # registered for this type only
        raise exc
    return validation_problem(field_problems(exc.errors()))


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, HTTPException):  # registered for this type only
        raise exc
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return problem(exc.status_code, detail, headers=dict(exc.headers or {}))


async def _on_kafka(request: Request, exc: KafkaError) -> JSONResponse:
    if isinstance(exc, MessageSizeTooLargeError):
        # The input is too large, not the cluster unhealthy: retrying would never help.
        log.warning("Kafka refused an oversized write for %s %s", request.method, request.url.path)
        return problem(
            413,
            "the change is larger than Kafka accepts for one record; shorten the largest "
            "fields (auth header values, triggers, name) and send it again",
        )
    log.error("Kafka refused a write for %s %s: %r", request.method, request.url.path, exc)
    return problem(503, "Kafka did not accept the write; try again when the cluster is healthy")


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error in %s %s", request.method, request.url.path)
    return problem(500, "internal error; the admin service's log has the details")


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error, including FastAPI's own 404/405/422, as problem details."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(KafkaError, _on_kafka)
    app.add_exception_handler(Exception, _on_unexpected)
