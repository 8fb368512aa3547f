"""One error envelope for the three services, its exception handlers and its OpenAPI description.

Every error answer is ``{"code": "<machine code>", "message": "<a sentence>"}`` at the top level
of the body; an invalid request is ``422 invalid_request`` with ``errors``, one item per
problem: ``{"where": "query.limit", "why": "…"}``. Services raise :func:`refusal` (an
``HTTPException`` carrying the code) or an exception their app maps with ``install(translate=…)``;
clients read ``code``. Starlette and FastAPI raise their own for an unknown route (404), a wrong
method (405) or a body they cannot parse (400) with a bare sentence: the handler installed here
gives those a code from their status. A request value PostgreSQL cannot use — a NUL character,
an integer past 64 bits — is the caller's mistake (422), not a server error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import asyncpg
import fastapi
import msgspec
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)

JSON = "application/json"
CODES = {
    400: "invalid_body",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "body_too_large",
    415: "unsupported_media_type",
}
MAX_MESSAGE = 1000


class ErrorItem(msgspec.Struct):
    """One problem of an invalid request."""

    where: str  # the parameter's path, e.g. ``query.limit`` or ``body.matchers.0.value``
    why: str


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Every error answer of every service."""

    code: str  # machine-readable, stable
    message: str  # for a human
    errors: list[ErrorItem] = []  # with 422 invalid_request: what is wrong, item by item


_encoder = msgspec.json.Encoder()


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    items: Sequence[ErrorItem] = (),
) -> Response:
    """An error answer in the envelope."""
    body = ErrorBody(code, message[:MAX_MESSAGE], list(items))
    return Response(_encoder.encode(body), status_code=status, media_type=JSON, headers=headers)


def refusal(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> fastapi.HTTPException:
    """The exception a route raises to answer ``status`` with ``code`` and ``message``."""
    detail = {"code": code, "message": message}
    return fastapi.HTTPException(status, detail=detail, headers=dict(headers or {}))


def invalid_items(exc: RequestValidationError) -> list[ErrorItem]:
    """What is wrong with a request, item by item: ``where`` (the parameter's path, e.g.
    ``body.matchers.0.value``) and ``why``. The same items in every service's 422."""
    return [
        ErrorItem(".".join(str(p) for p in e.get("loc", ())), str(e.get("msg", "")))
        for e in exc.errors()
    ]


def _data_error(exc: BaseException | None) -> asyncpg.DataError | None:
    """The PostgreSQL data error behind ``exc`` (SQLAlchemy wraps asyncpg's), if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, asyncpg.DataError):
            return exc
        seen.add(id(exc))
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
    return None


def _answer(exc: HTTPException) -> tuple[str, Response]:
    detail: Any = exc.detail
    if isinstance(detail, dict) and "code" in detail:
        code = str(detail["code"])
        items = [ErrorItem(str(i["where"]), str(i["why"])) for i in detail.get("errors", ())]
        message = str(detail.get("message", ""))
    else:
        code, message, items = (
            CODES.get(exc.status_code, f"http_{exc.status_code}"),
            str(detail),
            [],
        )
    return code, error_response(exc.status_code, code, message, exc.headers, items)


def _invalid(exc: RequestValidationError) -> tuple[str, Response]:
    items = invalid_items(exc)
    first = f": {items[0].where}: {items[0].why}" if items else ""
    more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
    message = f"the request is not valid{first}{more}"
    return "invalid_request", error_response(422, "invalid_request", message, items=items)


def _unusable(exc: Exception) -> tuple[str, Response]:
    found = _data_error(exc)
    if found is None:
        log.error("database error while answering a request", exc_info=exc)
        message = "the request could not be answered"
        return "internal_error", error_response(500, "internal_error", message)
    message = f"a value of the request cannot be used: {str(found)[:200]}"
    return "invalid_request", error_response(422, "invalid_request", message)


Translate = Callable[[Exception], HTTPException]


def install(
    app: FastAPI,
    *,
    count: Callable[[str], None] | None = None,
    translate: Mapping[type[Exception], Translate] | None = None,
) -> None:
    """Answer in the envelope: every ``HTTPException`` (with the code it carries, or one from
    its status), an invalid request (``422 invalid_request`` with its items), a request value
    the database refuses (``422 invalid_request``), and each exception type of ``translate``
    (mapped to a :func:`refusal`). ``count`` is told the code of every error answered."""

    def answering(answer: Callable[[Any], tuple[str, Response]]) -> Any:
        async def handler(_request: Request, exc: Exception) -> Response:
            code, response = answer(exc)
            if count is not None:
                count(code)
            return response

        return handler

    app.add_exception_handler(HTTPException, answering(_answer))
    app.add_exception_handler(RequestValidationError, answering(_invalid))
    app.add_exception_handler(asyncpg.DataError, answering(_unusable))
    app.add_exception_handler(DBAPIError, answering(_unusable))
    for kind, to_refusal in (translate or {}).items():
        app.add_exception_handler(kind, answering(_translated(to_refusal)))


def _translated(to_refusal: Translate) -> Callable[[Exception], tuple[str, Response]]:
    return lambda exc: _answer(to_refusal(exc))


REF = "#/components/schemas/{name}"
_refs, SCHEMAS = msgspec.json.schema_components([ErrorBody], ref_template=REF)
ERROR_REF: dict[str, Any] = _refs[0]
ERRORS = {
    "400": "The body cannot be parsed",
    "401": "`unauthenticated`: no API key, or an unknown one",
    "403": "`forbidden`: the key lacks the scope",
    "404": "Not found (`code` says what)",
    "408": "`request_timeout`: the body did not arrive in time",
    "409": "A conflict (`code` says what)",
    "422": "`invalid_request`: a parameter or the body is not valid; `errors` says which and why",
}
PUBLIC = frozenset({"/healthz", "/readyz", "/metrics"})


def add_schemas(schema: dict[str, Any]) -> None:
    """Put the envelope's schemas (``ErrorBody``, ``ErrorItem``) in an OpenAPI document."""
    schema.setdefault("components", {}).setdefault("schemas", {}).update(
        {name: dict(value) for name, value in SCHEMAS.items()}
    )


def document(app: FastAPI, *, html_errors: Iterable[str] = ()) -> None:
    """Document the error answers of every operation (except the operational ones) with the
    shape they really have. Paths starting with one of ``html_errors`` answer their 403, 404
    409 and 410 as HTML pages (one-click links)."""
    pages = tuple(html_errors)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        add_schemas(schema)
        ref = {JSON: {"schema": dict(ERROR_REF)}}
        for path, item in schema.get("paths", {}).items():
            if path in PUBLIC:
                continue
            for operation in item.values():
                responses = operation.setdefault("responses", {})
                for status, description in ERRORS.items():
                    current = responses.get(status)
                    if current is None or status == "422":  # FastAPI's 422 has another shape
                        responses[status] = {"description": description, "content": ref}
                if path.startswith(pages):
                    html = {"text/html": {"schema": {"type": "string"}}}
                    for status in ("403", "404", "409", "410"):
                        responses[status] = {"description": "A page saying why", "content": html}
                    responses["405"] = {"description": "Not an action", "content": ref}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
