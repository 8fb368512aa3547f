"""Sign-in: emailed links, sessions and CSRF tokens, all signed with ``itsdangerous``.

- A **sign-in link** carries the email, where to go next and a nonce, signed and timestamped
  (``CONSOLE_SIGN_IN_TTL_SECONDS``, 15 minutes by default). It is single use: the first sign-in
  records its SHA-256 through alerts' ``POST /v1/used-tokens`` (the table and retention of
  alerts' one-click links), so the console itself stays stateless and any replica refuses a
  second use. ``GET`` on a link only shows a "Continue" button; ``POST`` signs in — mail
  scanners that follow links do not use them up.
- A **session** is a signed, timestamped cookie (``CONSOLE_SESSION_TTL_SECONDS``) holding the
  email, the person id, the name and a random CSRF token; nothing is kept on the server.
  Sign-out clears the cookie. Permissions are not in the cookie: they are read on each request.
- **CSRF**: every POST carries the session's token in a form field, compared in constant time.
  The sign-in form (no session yet) uses a double-submit cookie. Behind a trusted proxy the
  token is an HMAC of the email.

Times are real (``time.time``), not the simulated business clock: a link expires in real
minutes even when the demo runs its clock fast.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from services.console.settings import ConsoleSettings

SESSION_COOKIE = "cw_session"
FORM_COOKIE = "cw_form"
MAX_NEXT = 500

Now = Callable[[], float]


class LinkInvalid(Exception):
    """A sign-in link whose signature does not check (or not a link at all)."""


class LinkExpired(Exception):
    """A sign-in link older than its time to live."""


@dataclass(frozen=True)
class SignIn:
    email: str
    next: str
    digest: str  # SHA-256 of the token, hex: what is recorded as used
    expires_at: datetime


@dataclass(frozen=True)
class Session:
    email: str
    person_id: str | None
    name: str
    csrf: str


def _serializer(secret: str, salt: str, now: Now) -> URLSafeTimedSerializer:
    class Signer(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(now())

    return URLSafeTimedSerializer(secret, salt=salt, signer=Signer)


def safe_next(value: str | None) -> str:
    """A local path to go to after signing in (never another site: no open redirect)."""
    if not value or len(value) > MAX_NEXT or not value.startswith("/"):
        return "/"
    if value.startswith("//") or "\\" in value or any(ord(c) < 32 for c in value):
        return "/"
    return value


class Tokens:
    def __init__(
        self, secret: str, *, sign_in_ttl: float, session_ttl: float, now: Now = time.time
    ) -> None:
        self._secret = secret
        self._now = now
        self.sign_in_ttl = sign_in_ttl
        self.session_ttl = session_ttl
        self._links = _serializer(secret, "sign-in", now)
        self._sessions = _serializer(secret, "session", now)

    def sign_in(self, email: str, next_path: str = "/") -> str:
        payload = {"e": email.lower(), "n": safe_next(next_path), "j": secrets.token_hex(8)}
        return self._links.dumps(payload)

    def read_sign_in(self, token: str) -> SignIn:
        try:
            payload, signed_at = self._links.loads(
                token, max_age=int(self.sign_in_ttl), return_timestamp=True
            )
        except SignatureExpired:
            raise LinkExpired from None
        except BadSignature:
            raise LinkInvalid from None
        if not isinstance(payload, dict) or not isinstance(payload.get("e"), str):
            raise LinkInvalid
        return SignIn(
            email=payload["e"],
            next=safe_next(payload.get("n")),
            digest=hashlib.sha256(token.encode()).hexdigest(),
            expires_at=signed_at + timedelta(seconds=self.sign_in_ttl),
        )

    def session(self, email: str, person_id: str | None, name: str) -> str:
        payload = {"e": email, "p": person_id, "n": name, "c": secrets.token_urlsafe(24)}
        return self._sessions.dumps(payload)

    def read_session(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            payload: Any = self._sessions.loads(cookie, max_age=int(self.session_ttl))
        except BadSignature:  # SignatureExpired is one
            return None
        if not isinstance(payload, dict):
            return None
        return Session(payload["e"], payload.get("p"), payload.get("n") or "", payload["c"])

    def proxy_csrf(self, email: str) -> str:
        return hmac.new(self._secret.encode(), f"csrf:{email}".encode(), "sha256").hexdigest()


def csrf_ok(expected: str, given: str | None) -> bool:
    if not expected or given is None:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def link_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/sign-in/{quote(token, safe='')}"


def sign_in_link(settings: ConsoleSettings, email: str, next_path: str = "/") -> str:
    """A sign-in link for ``email`` (the demo prints one per person; local mode only). Needs
    ``CONSOLE_SECRET_KEY``: the running console must check it with the same key."""
    if settings.secret_key is None:
        raise ValueError("CONSOLE_SECRET_KEY must be set to mint links outside the console")
    tokens = tokens_of(settings, settings.secret_key.get_secret_value())
    return link_url(settings.public_url, tokens.sign_in(email, next_path))


def tokens_of(settings: ConsoleSettings, secret: str, now: Now = time.time) -> Tokens:
    return Tokens(
        secret,
        sign_in_ttl=settings.sign_in_ttl_seconds,
        session_ttl=settings.session_ttl_seconds,
        now=now,
    )


def mail(sender: str, to: str, link: str, ttl_seconds: float) -> EmailMessage:
    """The sign-in email (pure)."""
    minutes = max(1, round(ttl_seconds / 60))
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = "Your churnwatch sign-in link"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(
        f"Sign in to the churnwatch console:\n\n{link}\n\n"
        f"The link works once, for {minutes} minutes. If you did not ask for it, ignore this"
        " email.\n"
    )
    return message


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
