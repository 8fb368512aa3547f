"""The HTTP edge: reading a body within the limits, error bodies, the request id and metrics.

Error bodies are ``shared.errors``' envelope: ``{"code": "<machine code>", "message": "<a
sentence>"}``.
"""

from __future__ import annotations

import re
import time
import uuid
import zlib
from collections.abc import Collection, Mapping

import msgspec
from fastapi import Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.ingest.decisions import Limits, RequestRefused
from services.ingest.metrics import REQUEST_SECONDS, REQUESTS
from shared.logs import request_id

JSON = "application/json"
JSON_TYPES = frozenset({JSON})
# analytics.js sends text/plain to spare browsers a CORS preflight; Segment accepts it.
SEGMENT_TYPES = frozenset({JSON, "text/plain"})


_encoder = msgspec.json.Encoder()


def json_response(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(_encoder.encode(body), status_code=status, media_type=JSON, headers=headers)


async def read_body(request: Request, limits: Limits, content_types: Collection[str]) -> bytes:
    """The request body, gunzipped if it came compressed, refused past ``max_body_bytes``."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in content_types:
        wanted = " or ".join(sorted(content_types))
        raise RequestRefused(
            415,
            "unsupported_media_type",
            f"Content-Type must be {wanted}, not {media_type or 'absent'}",
        )
    limit = limits.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _body_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _body_too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        return _gunzip(body, limit)
    if encoding not in ("", "identity"):
        raise RequestRefused(
            415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported (gzip is)"
        )
    return body


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        plain = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise RequestRefused(400, "invalid_gzip", f"the gzip body is corrupt: {exc}") from None
    if len(plain) > limit or inflater.unconsumed_tail:
        raise _body_too_large(limit)
    return plain


def _body_too_large(limit: int) -> RequestRefused:
    return RequestRefused(
        413, "body_too_large", f"the body is larger than {limit} bytes; split it into requests"
    )


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestContext:
    """ASGI middleware: a request id for every request (``X-Request-Id`` when the caller sends a
    sensible one, else a new one), put in the logs' context and echoed in the response; and
    the request count and latency by route template."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        rid = given if given is not None and _REQUEST_ID.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self._app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            REQUESTS.labels(scope["method"], template, str(status)).inc()
            REQUEST_SECONDS.labels(template).observe(time.perf_counter() - started)
            request_id.reset(token)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None
