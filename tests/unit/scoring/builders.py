"""Builders of events, records and facts for the scoring tests (unit and integration)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.scoring.handler import Inbound
from shared.events import (
    AccountRecord,
    AccountTeam,
    PersonRecord,
    SurveyEvent,
    TicketEvent,
    UsageEvent,
)
from shared.kafka import Record, Tombstone

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
_ids = itertools.count(1)


def usage(
    account: str = "acme",
    *,
    at: datetime = NOW,
    user: str = "u1",
    feature: str | None = None,
    event_id: str | None = None,
    kind: str = "login",
    quantity: float = 1.0,
) -> UsageEvent:
    return UsageEvent(
        event_id=event_id or f"u-{next(_ids)}",
        account_id=account,
        occurred_at=at,
        received_at=at,
        source="test",
        user_id=user,
        type="feature_used" if feature else kind,
        feature=feature,
        quantity=quantity,
    )


def ticket(
    account: str = "acme",
    *,
    at: datetime = NOW,
    ticket_id: str = "t1",
    action: str = "opened",
    priority: str = "urgent",
    status: str = "open",
    event_id: str | None = None,
) -> TicketEvent:
    return TicketEvent(
        event_id=event_id or f"t-{next(_ids)}",
        account_id=account,
        occurred_at=at,
        received_at=at,
        source="test",
        ticket_id=ticket_id,
        action=action,  # type: ignore[arg-type]
        priority=priority,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
    )


def survey(
    account: str = "acme",
    *,
    at: datetime = NOW,
    score: int = 9,
    kind: str = "nps",
    user: str = "u1",
    event_id: str | None = None,
) -> SurveyEvent:
    return SurveyEvent(
        event_id=event_id or f"s-{next(_ids)}",
        account_id=account,
        occurred_at=at,
        received_at=at,
        source="test",
        user_id=user,
        kind=kind,  # type: ignore[arg-type]
        score=score,
    )


def account(
    account_id: str = "acme",
    *,
    seats: int | None = 20,
    csm: str | None = "p_maria",
    tier: str | None = "pro",
    lifecycle_stage: str | None = "mature",
    renewal_date: date | None = date(2027, 3, 31),
    updated_at: datetime = NOW - timedelta(days=90),
    **team: Any,
) -> AccountRecord:
    return AccountRecord(
        account_id=account_id,
        name=f"{account_id.title()} Inc.",
        tier=tier,
        seats=seats,
        arr=120_000.0,
        renewal_date=renewal_date,
        lifecycle_stage=lifecycle_stage,  # type: ignore[arg-type]
        team=AccountTeam(csm=csm, **team),
        updated_at=updated_at,
        source="test",
    )


def person(person_id: str = "p_maria", name: str = "Maria Rossi") -> PersonRecord:
    return PersonRecord(
        person_id=person_id,
        name=name,
        email=f"{person_id}@example.com",
        updated_at=NOW - timedelta(days=90),
        source="test",
    )


def records(*values: Inbound, topic: str = "t", start_offset: int = 0) -> list[Record[Inbound]]:
    """Wrap messages as the consumer loop hands them to the handler."""
    out: list[Record[Inbound]] = []
    for offset, value in enumerate(values, start=start_offset):
        key = getattr(value, "account_id", None) or getattr(value, "person_id", "")
        out.append(Record(topic, 0, offset, str(key).encode(), value, b"{}", 0))
    return out


def steady_usage(
    account: str = "acme",
    *,
    until: datetime = NOW,
    days: int = 70,
    users: int = 5,
    features: int = 4,
) -> list[UsageEvent]:
    """An account used every day for ``days`` days up to ``until``."""
    out: list[UsageEvent] = []
    for d in range(days):
        at = until - timedelta(days=d, hours=1)
        for u in range(users):
            out.append(usage(account, at=at, user=f"user-{u}", feature=f"f{(d + u) % features}"))
    return out


def tombstone(key: str, kind: str = "account") -> list[Record[Inbound]]:
    """A null value on the accounts (or people) topic, keyed by the record's id."""
    return [Record("t", 0, 0, key.encode(), Tombstone(kind), b"", 0)]
