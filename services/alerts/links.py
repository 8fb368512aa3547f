"""Signed, expiring one-click links: acknowledge or snooze from a message, with no login.

A token is ``<payload>.<signature>``, both base64url without padding: the payload is compact
JSON naming the action, the alerts, the account, the person the message went to and the expiry
(epoch seconds); the signature is HMAC-SHA256 of the payload under the signing secret. Tokens
signed with a previous secret stay valid while that secret is listed (rotation). ``GET`` on a
link only shows a confirmation page; ``POST`` acts — so link previews and mail scanners that
follow links never acknowledge anything.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

Action = Literal[
    "ack",
    "snooze_1d",
    "snooze_1w",
    "view",
    "brief",  # the read-only brief page (/brief/<token>): never acts
    "feedback_useful",  # feedback: services.alerts.feedback.FEEDBACK_ACTIONS
    "feedback_not_useful",
    "feedback_known",
]
ACTIONS: tuple[Action, ...] = get_args(Action)
SNOOZE: dict[str, timedelta] = {"snooze_1d": timedelta(days=1), "snooze_1w": timedelta(weeks=1)}
ACTION_LABEL: dict[str, str] = {
    "ack": "Acknowledge",
    "snooze_1d": "Snooze 1 day",
    "snooze_1w": "Snooze 1 week",
    "view": "View",
    "brief": "Open the brief",
    "feedback_useful": "Useful",
    "feedback_not_useful": "Not useful",
    "feedback_known": "Already known",
}
READ_ONLY: frozenset[str] = frozenset({"view", "brief"})  # links that never act


@dataclass(frozen=True)
class Link:
    action: Action
    account_id: str
    alert_ids: tuple[int, ...]
    person: str | None
    expires_at: datetime


class LinkError(Exception):
    """A link that must be refused: ``code`` is ``link_invalid`` or ``link_expired``."""

    def __init__(self, code: Literal["link_invalid", "link_expired"], message: str) -> None:
        super().__init__(message)
        self.code = code


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    def __init__(self, secret: str, previous: Sequence[str] = ()) -> None:
        if len(secret) < 16:
            raise ValueError("the link signing secret must be at least 16 characters")
        self._keys = [secret.encode(), *(p.encode() for p in previous)]

    def _mac(self, key: bytes, payload: bytes) -> bytes:
        return hmac.new(key, payload, hashlib.sha256).digest()

    def sign(self, link: Link) -> str:
        payload = json.dumps(
            {
                "a": link.action,
                "c": link.account_id,
                "i": list(link.alert_ids),
                "p": link.person,
                "e": int(link.expires_at.timestamp()),
            },
            separators=(",", ":"),
        ).encode()
        return f"{_b64(payload)}.{_b64(self._mac(self._keys[0], payload))}"

    def verify(self, token: str, now: datetime) -> Link:
        """The link in ``token``; raises :class:`LinkError` when forged, altered or expired."""
        payload_part, dot, signature_part = token.partition(".")
        if not dot or not payload_part or not signature_part or len(token) > 4096:
            raise LinkError("link_invalid", "this link is malformed")
        try:
            payload, signature = _unb64(payload_part), _unb64(signature_part)
        except (binascii.Error, ValueError):
            raise LinkError("link_invalid", "this link is malformed") from None
        if _b64(payload) != payload_part or _b64(signature) != signature_part:
            # Only the spelling churnwatch issued: base64 decoding ignores a last character's
            # unused bits, padding and stray characters, and a link is used up by its token —
            # another spelling of the same link must not act again.
            raise LinkError("link_invalid", "this link is malformed")
        if not any(hmac.compare_digest(self._mac(k, payload), signature) for k in self._keys):
            raise LinkError("link_invalid", "this link was not issued by churnwatch")
        try:
            raw = json.loads(payload)
            link = Link(
                action=raw["a"],
                account_id=str(raw["c"]),
                alert_ids=tuple(int(i) for i in raw["i"]),
                person=raw.get("p"),
                expires_at=datetime.fromtimestamp(int(raw["e"]), UTC),
            )
        except (ValueError, KeyError, TypeError):
            raise LinkError("link_invalid", "this link is malformed") from None
        if link.action not in ACTIONS:
            raise LinkError("link_invalid", "this link names an unknown action")
        if now >= link.expires_at:
            raise LinkError("link_expired", "this link has expired")
        return link
