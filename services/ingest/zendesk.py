"""Zendesk event-subscribed ticket webhooks: signature verification and the mapping to ticket
events. Pure: ``now`` is passed in.

Zendesk signs every delivery (see developer.zendesk.com, "Verifying webhook authenticity"):
``X-Zendesk-Webhook-Signature`` is ``base64(HMAC-SHA256(secret, timestamp + body))`` where
``timestamp`` is the ``X-Zendesk-Webhook-Signature-Timestamp`` header, byte for byte, and
``body`` the raw request body. A timestamp older than the allowed age (default 5 minutes) — or
as far in the future — is refused, so a captured delivery cannot be replayed later.

The payload of an event-subscribed webhook::

    {"type": "zen:event-type:ticket.status_changed", "id": "<event uuid>", "time": "...",
     "subject": "zen:ticket:88231", "account_id": 123,
     "detail": {"id": "88231", "organization_id": "3601", "priority": "HIGH",
                "status": "OPEN", ...},
     "event": {"previous": "SOLVED", "current": "OPEN"}}

``id`` identifies the event and stays the same when Zendesk redelivers it, so the ticket
event's ``event_id`` is derived from it and scoring counts a redelivery once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from services.ingest.decisions import (
    Decision,
    Message,
    Refused,
    RequestRefused,
    utf8_or_refused,
)
from shared.events import TicketAction, TicketEvent, TicketPriority, TicketStatus, Topics, encode

ZENDESK_SOURCE = "zendesk"
SIGNATURE_HEADER = "x-zendesk-webhook-signature"
TIMESTAMP_HEADER = "x-zendesk-webhook-signature-timestamp"


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature Zendesk computes for a delivery."""
    digest = hmac.new(secret, timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify(
    *,
    secrets: Sequence[bytes],
    signature_header: str | None,
    timestamp_header: str | None,
    body: bytes,
    now: datetime,
    max_age: timedelta,
) -> None:
    """Raise :class:`RequestRefused` (401) unless the delivery is signed and fresh.

    ``secrets`` are the current signing secret first, then previous ones still accepted while a
    secret is rotated; a signature made with any of them is valid.
    """
    if not signature_header or not timestamp_header:
        raise RequestRefused(
            401,
            "missing_signature",
            "X-Zendesk-Webhook-Signature and X-Zendesk-Webhook-Signature-Timestamp are required",
        )
    presented = signature_header.strip().encode()
    matches = [
        hmac.compare_digest(signature(secret, timestamp_header, body).encode(), presented)
        for secret in secrets
    ]
    if not any(matches):
        raise RequestRefused(401, "invalid_signature", "the webhook signature does not match")
    try:
        signed_at = datetime.fromisoformat(timestamp_header.strip())
    except ValueError:
        raise RequestRefused(
            401, "invalid_signature", "the signature timestamp is not an ISO 8601 time"
        ) from None
    if signed_at.tzinfo is None:
        signed_at = signed_at.replace(tzinfo=UTC)
    if abs(now - signed_at) > max_age:
        raise RequestRefused(
            401,
            "stale_signature",
            f"the delivery was signed at {signed_at.isoformat()}, more than "
            f"{max_age.total_seconds():.0f} s from now; replays are refused",
        )


# ---------------------------------------------------------------------------------------------
# The payload (tolerant: Zendesk adds fields over time)


class ZendeskDetail(msgspec.Struct, kw_only=True):
    id: str | int
    organization_id: str | int | None = None
    priority: str | None = None
    status: str | None = None


class ZendeskChange(msgspec.Struct, kw_only=True):
    current: Any = None
    previous: Any = None


class ZendeskWebhook(msgspec.Struct, kw_only=True):
    """An event-subscribed webhook delivery (only the fields ingest reads)."""

    id: str
    type: str
    time: datetime
    detail: ZendeskDetail
    event: ZendeskChange | None = None


_webhook = msgspec.json.Decoder(ZendeskWebhook)

_STATUS: dict[str, TicketStatus] = {
    "new": "new",
    "open": "open",
    "pending": "pending",
    "hold": "hold",
    "solved": "solved",
    "closed": "closed",
}
_PRIORITY: dict[str, TicketPriority] = {
    "low": "low",
    "normal": "normal",
    "high": "high",
    "urgent": "urgent",
}
_PRIORITY_RANK = {"low": 0, "normal": 1, "high": 2, "urgent": 3}
_DONE = {"solved", "closed"}


@dataclass(frozen=True)
class TicketChange:
    action: TicketAction
    status: TicketStatus
    priority: TicketPriority


def ticket_change(payload: ZendeskWebhook) -> TicketChange | None:
    """What a Zendesk event means for the ticket, or None when it means nothing to scoring
    (a comment, a tag, a deleted ticket, a non-ticket event…)."""
    kind = payload.type.removeprefix("zen:event-type:")
    detail = payload.detail
    status = _STATUS.get(str(detail.status or "").lower())
    priority = _PRIORITY.get(str(detail.priority or "").lower(), "normal")
    change = payload.event or ZendeskChange()
    if kind == "ticket.created":
        return TicketChange("opened", status or "new", priority)
    if kind == "ticket.status_changed":
        current = _STATUS.get(str(change.current or "").lower())
        previous = _STATUS.get(str(change.previous or "").lower())
        if current is None:  # deleted, archived, scrubbed: the ticket is gone, not solved
            return None
        if current in _DONE:
            if previous in _DONE:  # solved → closed: already counted as solved
                return None
            return TicketChange("solved", current, priority)
        if previous in _DONE:
            return TicketChange("reopened", current, priority)
        return TicketChange("updated", current, priority)
    if kind == "ticket.priority_changed":
        current_priority = _PRIORITY.get(str(change.current or "").lower(), priority)
        previous_priority = _PRIORITY.get(str(change.previous or "").lower(), "normal")
        raised = _PRIORITY_RANK[current_priority] > _PRIORITY_RANK[previous_priority]
        action: TicketAction = (
            "escalated" if raised and current_priority in ("high", "urgent") else "updated"
        )
        return TicketChange(action, status or "open", current_priority)
    return None


def event_id(payload: ZendeskWebhook) -> str:
    return f"zendesk:{payload.id}"[:128]


@utf8_or_refused
def decide(
    body: bytes,
    *,
    now: datetime,
    topics: Topics,
    organizations: Mapping[str, str],
) -> Decision:
    """One delivery → one ticket event (or nothing, or a refusal for an unmapped org).

    A delivery is one event whatever its size (a ticket's description can be long): only the
    body limit applies, not the per-item one.
    """
    try:
        payload = _webhook.decode(body)
    except msgspec.ValidationError as exc:
        raise RequestRefused(422, "invalid_webhook", f"not a Zendesk event: {exc}") from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise RequestRefused(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    decision = Decision()
    change = ticket_change(payload)
    if change is None:
        decision.ignored = 1
        return decision
    organization = payload.detail.organization_id
    account_id = organizations.get(str(organization)) if organization is not None else None
    if account_id is None:
        decision.refused.append(
            Refused(
                0,
                "unmapped_organization",
                f"Zendesk organization {organization!r} maps to no account; add it to "
                "INGEST_ZENDESK_ORGANIZATIONS and replay the dead letter",
                body,
            )
        )
        return decision
    ticket_id = str(payload.detail.id)
    if not 1 <= len(ticket_id) <= 256:
        raise RequestRefused(422, "invalid_webhook", "detail.id must be 1 to 256 characters")
    occurred_at = payload.time if payload.time.tzinfo else payload.time.replace(tzinfo=UTC)
    event = TicketEvent(
        event_id=event_id(payload),
        account_id=account_id,
        occurred_at=occurred_at,
        received_at=now,
        source=ZENDESK_SOURCE,
        ticket_id=ticket_id,
        action=change.action,
        priority=change.priority,
        status=change.status,
    )
    decision.messages.append(Message(topics.tickets, account_id.encode(), encode(event)))
    decision.accepted = 1
    return decision
