"""Notifiers: one small class per channel with one ``send``, returning what happened.

``send`` never raises for a delivery problem; it classifies it:

- :class:`Delivered`  the provider accepted the message (``ref``: Slack ``ts``, or the
                      Message-ID of an email, used to thread later messages; ``channel``:
                      the Slack channel id it landed in, which ``chat.update`` needs);
- :class:`Retry`      a transient problem (rate limit, 5xx, 4xx SMTP reply, timeout,
                      connection error); ``after_seconds`` when the provider said how long;
- :class:`Permanent`  retrying cannot help (``channel_not_found``, 5xx SMTP reply…): the
                      delivery worker falls back to the next destination at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from services.alerts.routing import Destination


@dataclass(frozen=True)
class Message:
    """One outbox row to send."""

    key: str
    kind: str
    destination: Destination
    payload: Mapping[str, Any]
    message_id: str  # the email Message-ID, the same on every attempt
    thread_root: str | None = None  # email: the per-account thread's root id
    thread_ref: str | None = None  # Slack ts / email Message-ID of the message to reply to


@dataclass(frozen=True)
class Delivered:
    ref: str | None = None
    channel: str | None = None


@dataclass(frozen=True)
class Retry:
    reason: str
    after_seconds: float | None = None


@dataclass(frozen=True)
class Permanent:
    reason: str


Outcome = Delivered | Retry | Permanent


class Notifier(Protocol):
    async def send(self, message: Message) -> Outcome:
        """Send one message; classify the result, never raise for a delivery problem."""
        ...
