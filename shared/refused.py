"""A client's side of the error envelope (``shared.errors``): an error answer, read.

Kept apart from ``shared.errors`` (FastAPI, asyncpg, SQLAlchemy) so a client — the ``churnwatch``
CLI, the console's calls to scoring and alerts — does not import a server to read an answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


class Refused(Exception):
    """A service answered with an error: ``status``, its machine-readable ``code``, ``message``."""

    def __init__(self, service: str, status: int, code: str, message: str) -> None:
        super().__init__(f"{service} answered {status} {code}: {message}")
        self.service = service
        self.status = status
        self.code = code
        self.message = message


def error_of(response: httpx.Response) -> tuple[str, str]:
    """The ``code`` and ``message`` of an error answer: every service answers
    ``{"code", "message", "errors"?}`` (``shared.errors``); anything else (a proxy's page)
    gets ``http_<status>`` and the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return "http_" + str(response.status_code), response.text[:200] or response.reason_phrase
    if isinstance(body, dict) and "code" in body:
        return str(body["code"]), str(body.get("message", ""))
    return "http_" + str(response.status_code), str(body)[:200]
