"""What a notification says: the payload stored in the outbox row, built at enqueue time.

Pure. The payload is plain JSON so the delivery worker can render it for whichever channel the
row (or its fallback) uses: the account, its owner, the score and band change, the alerts, the
top reasons, a link to the brief and signed one-click links (acknowledge, snooze 1 day or
1 week, view). Links expire ``link_ttl`` after the message is written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from services.alerts import digest as digests
from services.alerts.lifecycle import Alert, Notification
from services.alerts.links import Action, Link, LinkSigner
from services.alerts.routing import Destination, Recipient
from shared.events import ComponentMove

MAX_REASONS = 5
MAX_MOVES = 4  # components named in a message's "what moved the score"


@dataclass(frozen=True)
class Move:
    """A component that moved the score: by how many points, and the facts that moved it
    (``"weekly active users 12 → 4"``), as scoring published them."""

    name: str
    delta_points: float
    evidence: tuple[str, ...] = ()

    @classmethod
    def of(cls, move: ComponentMove) -> Move:
        return cls(move.name, move.delta_points, tuple(move.evidence))

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Move:
        return cls(str(raw["name"]), float(raw["delta_points"]), tuple(raw.get("evidence") or ()))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "delta_points": self.delta_points,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True)
class AccountView:
    account_id: str
    name: str
    score: float | None = None
    band: str | None = None
    before_score: float | None = None
    before_band: str | None = None
    as_of: datetime | None = None
    reasons: tuple[str, ...] = ()
    moved_by: tuple[Move, ...] = ()
    tier: str | None = None
    arr: float | None = None
    renewal_date: date | None = None


@dataclass(frozen=True)
class Content:
    """How links and ids are made: from the settings."""

    signer: LinkSigner
    public_url: str
    brief_url_template: str
    link_ttl: timedelta
    message_id_domain: str

    def link(
        self,
        action: Action,
        account_id: str,
        alert_ids: Sequence[int],
        person: str | None,
        now: datetime,
    ) -> str:
        token = self.signer.sign(
            Link(action, account_id, tuple(alert_ids), person, now + self.link_ttl)
        )
        return f"{self.public_url.rstrip('/')}/links/{token}"

    def brief_url(self, account_id: str, person: str | None, now: datetime) -> str:
        """The account's brief for a person in a browser: a signed, expiring, read-only page
        served by this service (``/brief/<token>``); or, when ``brief_url_template`` is set
        (a console with its own login), that page."""
        if self.brief_url_template:
            return self.brief_url_template.format(account_id=quote(account_id, safe=""))
        token = self.signer.sign(Link("brief", account_id, (), person, now + self.link_ttl))
        return f"{self.public_url.rstrip('/')}/brief/{token}"

    def message_id(self, key: str) -> str:
        return message_id(key, self.message_id_domain)


def message_id(key: str, domain: str) -> str:
    """The email Message-ID of the notification ``key``: the same on every attempt."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def thread_root(account_id: str, address: str, domain: str) -> str:
    """The id every email about ``account_id`` to ``address`` refers to, so they thread."""
    digest = hashlib.sha256(f"{account_id}|{address}".encode()).hexdigest()[:24]
    return f"<account.{digest}@{domain}>"


def alert_payload(
    notification: Notification,
    account: AccountView,
    members: Sequence[Alert],
    content: Content,
    now: datetime,
) -> dict[str, Any]:
    """The payload of an alert, escalation or resolved notice about one account."""
    ids = [a.id for a in members if a.id is not None]
    person = notification.recipient.person_id
    owner = members[0].route.owner if members else None
    links: dict[str, str] = {
        "brief": content.brief_url(account.account_id, person, now),
        "view": content.link("view", account.account_id, ids, person, now),
    }
    if notification.kind != "resolved":
        for action in (
            "ack",
            "snooze_1d",
            "snooze_1w",
            "feedback_useful",
            "feedback_not_useful",
            "feedback_known",
        ):
            links[action] = content.link(action, account.account_id, ids, person, now)
    return {
        "kind": notification.kind,
        "account": account_json(account, now),
        "owner": {"name": owner.name, "person_id": owner.person_id} if owner else None,
        "recipient": notification.recipient.to_json(),
        "severity": notification.severity,
        "health": {
            "score": account.score,
            "band": account.band,
            "before_score": account.before_score,
            "before_band": account.before_band,
            "as_of": account.as_of.isoformat() if account.as_of else None,
        },
        "reasons": list(account.reasons[:MAX_REASONS]),
        "moved_by": moves_json(account.moved_by),
        "alerts": [
            {
                "id": a.id,
                "rule": a.rule,
                "title": rule_title(a.rule),
                "severity": a.severity,
                "motion": a.motion,
                "summary": a.summary,
                "state": a.state,
                "resolved_by": a.resolved_by,
                "started_at": a.started_at.isoformat(),
            }
            for a in members
        ],
        "route_path": list(members[0].route.path) if members else [],
        "escalation_path": list(notification.path),
        "links": links,
        "written_at": now.isoformat(),
    }


# Rule names in words (a rule of another name reads as its name, "_" as spaces).
RULE_TITLES: dict[str, str] = {
    "band_worsened": "Health fell into a worse band",
    "score_dropped": "Health score dropped",
    "no_activity": "No product activity",
    "ticket_surge": "Surge of urgent support tickets",
    "renewal_at_risk": "Renewal at risk",
    "expansion": "Expansion opportunity",
    "advocacy": "Advocacy candidate",
}
# Score components in words.
COMPONENT_LABELS: dict[str, str] = {
    "activity": "Activity",
    "recency": "Recent use",
    "breadth": "Feature breadth",
    "seat_utilisation": "Seat utilisation",
    "support": "Support tickets",
    "sentiment": "Sentiment (NPS/CSAT)",
}


def rule_title(rule: str) -> str:
    return RULE_TITLES.get(rule) or rule.replace("_", " ").capitalize()


def component_label(name: str) -> str:
    return COMPONENT_LABELS.get(name) or name.replace("_", " ").capitalize()


def moves_json(moves: Sequence[Move], limit: int = MAX_MOVES) -> list[dict[str, Any]]:
    """The biggest moves first (as scoring sorted them), each with its label in words."""
    return [{**m.to_json(), "label": component_label(m.name)} for m in moves[:limit]]


def days_to(day: date | None, now: datetime) -> int | None:
    return None if day is None else (day - now.date()).days


def account_json(account: AccountView, now: datetime) -> dict[str, Any]:
    """The account's record facts a message shows: tier, ARR, renewal date and days left."""
    return {
        "id": account.account_id,
        "name": account.name,
        "tier": account.tier,
        "arr": account.arr,
        "renewal_date": account.renewal_date.isoformat() if account.renewal_date else None,
        "days_to_renewal": days_to(account.renewal_date, now),
    }


def digest_payload(
    digest: digests.Digest, recipient: Recipient, content: Content, now: datetime
) -> dict[str, Any]:
    def line(a: digests.AccountLine) -> dict[str, Any]:
        return {
            "account_id": a.account_id,
            "name": a.name,
            "score": round(a.score, 1),
            "band": a.band,
            "moved": None if a.moved is None else round(a.moved, 1),
            "reasons": list(a.reasons[:2]),
            "tier": a.tier,
            "arr": a.arr,
            "renewal_date": a.renewal_date.isoformat() if a.renewal_date else None,
            "days_to_renewal": days_to(a.renewal_date, now),
            "moved_by": moves_json([Move.from_json(m) for m in a.moved_by], limit=2),
            "brief": content.brief_url(a.account_id, digest.person_id, now),
        }

    return {
        "kind": "digest",
        "recipient": recipient.to_json(),
        "date": digest.local_date.isoformat(),
        "person": {"person_id": digest.person_id, "name": digest.person_name},
        "red": [line(a) for a in digest.red],
        "yellow": [line(a) for a in digest.yellow],
        "movers": [line(a) for a in digest.movers],
        "silent": [{**line(a), "days": round(days)} for a, days in digest.silent],
        "held": [
            {
                "id": h.alert_id,
                "account_id": h.account_id,
                "account_name": h.account_name,
                "rule": h.rule,
                "title": rule_title(h.rule),
                "severity": h.severity,
                "summary": h.summary,
                "new": h.new,
                "ack": content.link("ack", h.account_id, [h.alert_id], digest.person_id, now),
            }
            for h in digest.held
        ],
        "written_at": now.isoformat(),
    }


@dataclass(frozen=True)
class OutboxEntry:
    """One message to one destination, as the outbox stores it (the row before it has an id)."""

    key: str
    kind: str
    account_id: str | None
    channel: str
    address: str
    mention: str | None
    fallbacks: list[dict[str, Any]]
    payload: dict[str, Any]
    message_id: str
    thread_key: str | None
    next_attempt_at: datetime
    created_at: datetime
    depends_on: int | None = None  # a message of the same thread that must be sent first
    not_before: datetime | None = None  # held until (clock time): the recipient's working hours


def outbox_entry(
    key: str,
    kind: str,
    account_id: str | None,
    options: Sequence[Destination],
    payload: Mapping[str, Any],
    message_id_domain: str,
    enqueued_at: datetime,
) -> OutboxEntry:
    """The entry for the first of ``options``, with the others as its fallbacks.

    ``enqueued_at`` is real (wall-clock) time: delivery retries live in the real world even
    when the service runs on a simulated clock."""
    first, rest = options[0], options[1:]
    return OutboxEntry(
        key=key,
        kind=kind,
        account_id=account_id,
        channel=first.channel,
        address=first.address,
        mention=first.mention,
        fallbacks=[d.to_json() for d in rest],
        payload=dict(payload),
        message_id=message_id(key, message_id_domain),
        thread_key=thread_key(account_id, first) if account_id else None,
        next_attempt_at=enqueued_at,
        created_at=enqueued_at,
    )


def outbox_rows(
    key: str,
    kind: str,
    account_id: str | None,
    options: Sequence[Destination],
    payload: Mapping[str, Any],
    content: Content,
    enqueued_at: datetime,
) -> list[OutboxEntry]:
    """The outbox entry for the first destination (none when there is no destination)."""
    if not options:
        return []
    return [
        outbox_entry(
            key, kind, account_id, options, payload, content.message_id_domain, enqueued_at
        )
    ]


def thread_key(account_id: str, destination: Destination) -> str:
    return f"{account_id}|{destination.channel}:{destination.address}"
