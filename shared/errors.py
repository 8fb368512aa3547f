"""Every error answer carries a machine-readable code — the framework's own ones too — and
the OpenAPI document says which errors an operation may answer, in the shape they have.

Services raise ``HTTPException(status, detail={"code": …, "message": …})`` and clients read
``detail.code``. Starlette and FastAPI raise their own for an unknown route (404), a wrong
method (405) or a body they cannot parse (400) with a bare sentence as the detail: the handler
installed here gives those a code from their status. A request value PostgreSQL cannot use —
a NUL character, an integer past 64 bits — is the caller's mistake (422), not a server error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)

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


async def coded(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    detail: Any = exc.detail
    if not (isinstance(detail, dict) and "code" in detail):
        code = CODES.get(exc.status_code, f"http_{exc.status_code}")
        detail = {"code": code, "message": str(detail)}
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)


def invalid_items(exc: RequestValidationError) -> list[dict[str, str]]:
    """What is wrong with a request, item by item: ``where`` (the parameter's path, e.g.
    ``body.matchers.0.value``) and ``why``. The same shape in every service's 422."""
    return [
        {"where": ".".join(str(p) for p in e.get("loc", ())), "why": str(e.get("msg", ""))}
        for e in exc.errors()
    ]


async def invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """422 ``invalid_request`` with the items (:func:`invalid_items`)."""
    items = invalid_items(exc) if isinstance(exc, RequestValidationError) else []
    detail = {"code": "invalid_request", "message": "the request is not valid", "errors": items}
    return JSONResponse({"detail": detail}, status_code=422)


def _data_error(exc: BaseException | None) -> asyncpg.DataError | None:
    """The PostgreSQL data error behind ``exc`` (SQLAlchemy wraps asyncpg's), if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, asyncpg.DataError):
            return exc
        seen.add(id(exc))
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
    return None


async def unusable_value(_request: Request, exc: Exception) -> JSONResponse:
    found = _data_error(exc)
    if found is None:
        log.error("database error while answering a request", exc_info=exc)
        detail = {"code": "internal_error", "message": "the request could not be answered"}
        return JSONResponse({"detail": detail}, status_code=500)
    detail = {
        "code": "invalid_request",
        "message": f"a value of the request cannot be used: {str(found)[:200]}",
    }
    return JSONResponse({"detail": detail}, status_code=422)


def install(app: FastAPI) -> None:
    """Answer every ``HTTPException`` as ``{"detail": {"code", "message", …}}``, an invalid
    request as ``422 invalid_request`` with its items, and a request value the database
    refuses as ``422 invalid_request``."""
    app.add_exception_handler(HTTPException, coded)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(asyncpg.DataError, unusable_value)
    app.add_exception_handler(DBAPIError, unusable_value)


ERROR_SCHEMA = {
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
ERRORS = {
    "400": "The body cannot be parsed",
    "401": "`unauthenticated`: no API key, or an unknown one",
    "403": "`forbidden`: the key lacks the scope",
    "404": "Not found (`code` says what)",
    "408": "`request_timeout`: the body did not arrive in time",
    "409": "A conflict (`code` says what)",
    "422": "`invalid_request`: a parameter or the body is not valid",
}
PUBLIC = frozenset({"/healthz", "/readyz", "/metrics"})


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
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
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
