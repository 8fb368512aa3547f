"""Feedback on alerts, and what Slack interactivity needs: the person behind a Slack user id
and the delivered Slack messages that carry an alert (to rewrite them in place).

A person has one verdict per alert (the latest: ``useful``, ``not_useful`` or ``known``); an
alert's verdict, for precision, is the latest given by anyone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.routing import Person
from services.alerts.store.tables import feedback, from_row, people


@dataclass(frozen=True)
class FeedbackRow:
    alert_id: int
    given_by: str
    account_id: str
    rule: str
    verdict: str  # useful, not_useful, known
    source: str  # slack, email, api
    given_at: datetime


@dataclass(frozen=True)
class RuleFeedback:
    """How the alerts of one rule were judged (each alert counted once, by its latest verdict)."""

    rule: str
    useful: int = 0
    not_useful: int = 0
    known: int = 0

    @property
    def judged(self) -> int:
        return self.useful + self.not_useful + self.known

    @property
    def precision(self) -> float | None:
        """Share of judged alerts that were right (useful or already known)."""
        return (self.useful + self.known) / self.judged if self.judged else None


@dataclass(frozen=True)
class SlackMessage:
    """A delivered Slack message about an account, as ``chat.update`` needs it."""

    outbox_id: int
    channel: str  # the channel id Slack answered (a DM's D… id)
    ts: str
    mention: str | None
    payload: dict[str, Any]


async def record_feedback(conn: AsyncConnection, rows: Sequence[FeedbackRow]) -> None:
    """Insert or replace each person's verdict on each alert (one statement)."""
    if not rows:
        return
    stmt = insert(feedback).values([asdict(r) for r in rows])
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[feedback.c.alert_id, feedback.c.given_by],
            set_={
                c: stmt.excluded[c] for c in ("verdict", "source", "given_at", "rule", "account_id")
            },
        )
    )


async def feedback_for(conn: AsyncConnection, alert_ids: Iterable[int]) -> list[FeedbackRow]:
    """The verdicts given on these alerts, oldest first."""
    rows = await conn.execute(
        select(feedback)
        .where(feedback.c.alert_id.in_(list(alert_ids)))
        .order_by(feedback.c.given_at, feedback.c.given_by)
    )
    return [from_row(FeedbackRow, r) for r in rows.mappings()]


async def list_feedback(
    conn: AsyncConnection, since: datetime | None, limit: int
) -> list[FeedbackRow]:
    """Every verdict given since ``since`` (all when None), oldest first, at most ``limit``."""
    query = select(feedback).order_by(feedback.c.given_at, feedback.c.alert_id).limit(limit)
    if since is not None:
        query = query.where(feedback.c.given_at >= since)
    rows = await conn.execute(query)
    return [from_row(FeedbackRow, r) for r in rows.mappings()]


async def rule_feedback(conn: AsyncConnection, since: datetime | None) -> list[RuleFeedback]:
    """Per rule, the alerts judged since ``since`` (all when None) by their latest verdict."""
    rows = await conn.execute(
        text(
            "SELECT rule, verdict, count(*) FROM (SELECT DISTINCT ON (alert_id) rule, verdict "
            "FROM alerts.feedback WHERE CAST(:since AS timestamptz) IS NULL "
            "OR given_at >= :since ORDER BY alert_id, given_at DESC) latest "
            "GROUP BY rule, verdict ORDER BY rule"
        ),
        {"since": since},
    )
    counts: dict[str, dict[str, int]] = {}
    for rule, verdict, count in rows:
        counts.setdefault(rule, {})[verdict] = count
    return [RuleFeedback(rule, **by_verdict) for rule, by_verdict in counts.items()]


async def person_by_slack_id(conn: AsyncConnection, slack_user_id: str) -> Person | None:
    """The person whose record carries this Slack user id (the active one first)."""
    rows = await conn.execute(
        select(people)
        .where(people.c.slack_user_id == slack_user_id)
        .order_by(people.c.active.desc(), people.c.person_id)
        .limit(1)
    )
    row = rows.mappings().first()
    return from_row(Person, row) if row is not None else None


async def slack_messages(
    conn: AsyncConnection, account_id: str, alert_ids: Sequence[int]
) -> list[SlackMessage]:
    """The delivered Web API messages (alerts and escalations) that carry any of the alerts."""
    rows = await conn.execute(
        text(
            "SELECT id, provider_channel, provider_ref, mention, payload FROM alerts.outbox "
            "WHERE account_id = :account AND channel = 'slack' "
            "AND provider_channel IS NOT NULL AND provider_ref IS NOT NULL "
            "AND state = 'sent' AND kind IN ('alert', 'escalation') "
            "AND EXISTS (SELECT 1 FROM jsonb_array_elements(payload->'alerts') a "
            "WHERE (a->>'id')::bigint = ANY(:ids)) ORDER BY id"
        ),
        {"account": account_id, "ids": list(alert_ids)},
    )
    return [SlackMessage(r[0], r[1], r[2], r[3], r[4]) for r in rows]


async def managers(conn: AsyncConnection, person_ids: Sequence[str]) -> set[str]:
    """Those of ``person_ids`` who manage an active person (CS leads: their digest carries the
    per-rule feedback figures)."""
    rows = await conn.execute(
        select(people.c.manager_id)
        .where(people.c.manager_id.in_(list(person_ids)), people.c.active.is_(True))
        .distinct()
    )
    return {r[0] for r in rows}
