"""Who is asking: the session cookie, or a trusted authenticating proxy's identity header;
then who they are in the directory (scoring's people) and whom they manage."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from services.console.backends import Backends
from services.console.permissions import Person, Viewer
from services.console.settings import Network
from services.console.signin import SESSION_COOKIE, Tokens

REPORTS_TTL_SECONDS = 30.0  # a change of manager shows within this long
REPORTS_CACHED = 10_000  # people whose reports are kept at most (then the cache starts over)


@dataclass(frozen=True)
class Directory:
    backends: Backends
    tokens: Tokens
    admins: frozenset[str]
    proxies: tuple[Network, ...]
    identity_header: str
    _reports: dict[str, tuple[float, list[Person]]] = field(default_factory=dict)

    async def reports(self, person_id: str) -> list[Person]:
        """Everyone under ``person_id``, kept ``REPORTS_TTL_SECONDS`` (one call less a page)."""
        now = time.monotonic()
        cached = self._reports.get(person_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = [
            Person(r["person_id"], r["name"], r.get("email"), r.get("manager_id"))
            for r in await self.backends.reports(person_id)
        ]
        if len(self._reports) >= REPORTS_CACHED:
            self._reports.clear()
        self._reports[person_id] = (now + REPORTS_TTL_SECONDS, found)
        return found


def proxied_email(request: Request, proxies: Sequence[Network], header: str) -> str | None:
    """The proxy's identity header, only from a configured proxy's address."""
    if not proxies or request.client is None:
        return None
    value = request.headers.get(header, "").strip().lower()
    if not value:
        return None
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:
        return None
    return value if any(address in network for network in proxies) else None


def first_active(people: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    active = [p for p in people if p.get("active", True)]
    return active[0] if active else None


async def person_of(directory: Directory, email: str) -> dict[str, Any] | None:
    return first_active(await directory.backends.people_by_email(email))


async def viewer_of(request: Request, directory: Directory) -> Viewer | None:
    """The signed-in person, or None (no session, an expired one, an unknown proxied email)."""
    email = proxied_email(request, directory.proxies, directory.identity_header)
    if email is not None:
        person = await person_of(directory, email)
        if person is None and email not in directory.admins:
            return None
        person_id = person["person_id"] if person else None
        name = person["name"] if person else email
        csrf = directory.tokens.proxy_csrf(email)
    else:
        session = directory.tokens.read_session(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return None
        email, person_id, name, csrf = (
            session.email,
            session.person_id,
            session.name,
            session.csrf,
        )
    reports = await directory.reports(person_id) if person_id else []
    return Viewer(
        email=email,
        name=name,
        person_id=person_id,
        admin=email.lower() in directory.admins,
        reports=tuple(reports),
        csrf=csrf,
    )
