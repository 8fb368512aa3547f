"""Every error answer carries a machine-readable code — the framework's own ones too.

Services raise ``HTTPException(status, detail={"code": …, "message": …})`` and clients read
``detail.code``. Starlette and FastAPI raise their own for an unknown route (404), a wrong
method (405) or a body they cannot parse (400) with a bare sentence as the detail; the handler
installed here gives those a code from their status, and passes every other one through.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

CODES = {
    400: "invalid_body",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
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


def install(app: FastAPI) -> None:
    """Answer every ``HTTPException`` as ``{"detail": {"code", "message", …}}``."""
    app.add_exception_handler(HTTPException, coded)
