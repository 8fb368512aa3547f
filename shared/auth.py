"""API keys: who may call a service, and for what.

Keys are configured per caller in ``API_KEYS``, a JSON list of
``{"name": "billing-app", "sha256": "<hex digest of the key>", "scopes": ["events"]}``.
Only the SHA-256 digest of a key is ever configured or held in memory, and the key itself is
never logged. Keys are long random strings (``python -m shared.auth new --name X --scopes a,b``
makes one), so a plain SHA-256 is the right hash: there is nothing to brute-force.

A caller presents its key as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.
Missing or unknown key → 401 ``unauthenticated``; known key without the scope → 403 ``forbidden``.

Scopes:
  events    — post usage, ticket and survey events (native and Segment-compatible)
  accounts  — write account and person records
  webhooks  — deliver third-party webhooks (Zendesk)
  read      — read health, portfolio, briefs and alerts
  admin     — change alert state and silences
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from fastapi import Request
from pydantic import BaseModel, Field, TypeAdapter

from shared import errors

Scope = Literal["events", "accounts", "webhooks", "read", "admin"]
SCOPES: tuple[Scope, ...] = ("events", "accounts", "webhooks", "read", "admin")


class ApiKeyEntry(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: frozenset[Scope]


_entries = TypeAdapter(list[ApiKeyEntry])


@dataclass(frozen=True)
class Caller:
    """Who is calling: the configured name of the key, and what it may do."""

    name: str
    scopes: frozenset[str]


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    def __init__(self, entries: Iterable[ApiKeyEntry]) -> None:
        self._by_digest = {
            entry.sha256: Caller(entry.name, frozenset(entry.scopes)) for entry in entries
        }

    @classmethod
    def from_json(cls, raw: str) -> ApiKeys:
        """Parse ``API_KEYS``; raises ``ValueError`` naming what is wrong (never the value)."""
        try:
            return cls(_entries.validate_json(raw or "[]"))
        except Exception as exc:
            raise ValueError(f"API_KEYS is not a valid list of keys: {exc}") from None

    def lookup(self, key: str | None) -> Caller | None:
        if not key:
            return None
        return self._by_digest.get(digest(key))

    def require(self, scope: Scope) -> Callable[[Request], Awaitable[Caller]]:
        """A FastAPI dependency that authenticates the request and checks ``scope``."""

        async def dependency(request: Request) -> Caller:
            return authenticate(self, request, scope)

        return dependency


def require(scope: Scope) -> Callable[[Request], Awaitable[Caller]]:
    """A FastAPI dependency for module-level routes: authenticates the request with the keys
    the app keeps in ``app.state.api_keys`` and checks ``scope``."""

    async def dependency(request: Request) -> Caller:
        return authenticate(request.app.state.api_keys, request, scope)

    return dependency


def authenticate(keys: ApiKeys, request: Request, scope: Scope) -> Caller:
    caller = keys.lookup(presented_key(request))
    if caller is None:
        raise errors.refusal(
            401,
            "unauthenticated",
            "missing or unknown API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    authorize(caller, scope)
    request.state.caller = caller
    return caller


def authorize(caller: Caller, scope: Scope) -> None:
    if scope not in caller.scopes:
        raise errors.refusal(403, "forbidden", f"this API key lacks the '{scope}' scope")


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


def new_key() -> str:
    return "cw_" + secrets.token_urlsafe(32)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.auth")
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="make a key; prints the key and its API_KEYS entry")
    new.add_argument("--name", required=True)
    new.add_argument("--scopes", required=True, help=f"comma-separated, of {','.join(SCOPES)}")
    args = parser.parse_args(argv)
    scopes = sorted(set(args.scopes.split(",")))
    unknown = set(scopes) - set(SCOPES)
    if unknown:
        parser.error(f"unknown scopes: {', '.join(sorted(unknown))}")
    key = new_key()
    print(f"key (give it to the caller; it is not stored): {key}")
    entry = {"name": args.name, "sha256": digest(key), "scopes": scopes}
    print(f"API_KEYS entry: {json.dumps(entry)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
