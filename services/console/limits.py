"""How often sign-in links may be asked for: per email address and per client address.

Without a limit anyone could make the console mail-bomb a person (one POST, one email) or
probe many addresses. Both limits are token buckets (``shared.ratelimit``, ingest's limiter):
``per`` requests at once, then one more every ``window / per`` seconds — ``per`` per window on
average, at most ``2 × per`` within any one window. They are kept in this process's memory:
with N replicas a person may get up to N times as many links (docs/console.md).

The email limit counts every address asked for, known or not, so a refusal tells nothing about
whether the address belongs to someone (no enumeration).
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from services.console.settings import ConsoleSettings, Network
from shared.ratelimit import RateLimiter

Scope = Literal["email", "client"]


@dataclass(frozen=True)
class Limited:
    scope: Scope
    retry_after: int


class SignInLimits:
    def __init__(self, per_email: int, per_client: int, window_seconds: float) -> None:
        self._email = RateLimiter(per_email / window_seconds, per_email)
        self._client = RateLimiter(per_client / window_seconds, per_client)

    @classmethod
    def of(cls, settings: ConsoleSettings) -> SignInLimits:
        return cls(
            settings.sign_in_per_email,
            settings.sign_in_per_client,
            settings.sign_in_window_seconds,
        )

    def client(self, address: str, now: float) -> Limited | None:
        """Spend one of the client's requests (first: a refused client spends no email's)."""
        wait = self._client.take(address, now)
        return None if wait is None else Limited("client", wait)

    def email(self, email: str, now: float) -> Limited | None:
        wait = self._email.take(email, now)
        return None if wait is None else Limited("email", wait)


def client_address(request: Request, proxies: tuple[Network, ...]) -> str:
    """The asking client's address: the peer's, or — when the peer is a trusted proxy
    (``CONSOLE_TRUSTED_PROXIES``) — the last address it appended to ``X-Forwarded-For``."""
    peer = request.client.host if request.client else "unknown"
    forwarded = request.headers.get("x-forwarded-for", "")
    if not proxies or not forwarded:
        return peer
    try:
        trusted = any(ipaddress.ip_address(peer) in network for network in proxies)
    except ValueError:
        return peer
    last = forwarded.split(",")[-1].strip()
    return last[:64] if trusted and last else peer


def email_tag(email: str) -> str:
    """A stable tag for logs: the address's SHA-256, 12 hex digits (never the address)."""
    return hashlib.sha256(email.encode()).hexdigest()[:12]
