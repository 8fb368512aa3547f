"""Alerts and silences: the open alerts of accounts, saving decided alerts, what is due, the
API's listings and changes, and the one-click links already used."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.lifecycle import Alert, Matcher, Silence
from services.alerts.routing import Recipient, Route
from services.alerts.store.tables import (
    alerts,
    from_row,
    grouped,
    one_of,
    silences,
    used_links,
)


async def load_open_alerts(
    conn: AsyncConnection, account_ids: Iterable[str]
) -> dict[str, list[Alert]]:
    ids = list(set(account_ids))
    if not ids:
        return {}
    rows = await conn.execute(
        select(alerts)
        .where(one_of(alerts.c.account_id, ids), alerts.c.state != "resolved")
        .order_by(alerts.c.id)
    )
    return grouped(rows.mappings(), "account_id", alert_from_row, keys=ids)


async def load_alerts(conn: AsyncConnection, ids: Iterable[int]) -> list[Alert]:
    rows = await conn.execute(select(alerts).where(alerts.c.id.in_(list(ids))))
    return [alert_from_row(r) for r in rows.mappings()]


def alert_from_row(row: RowMapping) -> Alert:
    return from_row(
        Alert,
        row,
        route=Route.from_json(row["route"]),
        notified_to=tuple(Recipient.from_json(r) for r in row["notified_to"]),
        escalation_path=tuple(row["escalation_path"]),
    )


def _alert_values(alert: Alert) -> dict[str, Any]:
    return {
        "account_id": alert.account_id,
        "rule": alert.rule,
        "motion": alert.motion,
        "severity": alert.severity,
        "state": alert.state,
        "summary": alert.summary,
        "delivery": alert.delivery,
        "send_resolved": alert.send_resolved,
        "route": alert.route.to_json(),
        "started_at": alert.started_at,
        "updated_at": alert.updated_at,
        "pending_since": alert.pending_since,
        "notified_at": alert.notified_at,
        "notified_severity": alert.notified_severity,
        "first_notified_at": alert.first_notified_at,
        "notified_to": [r.to_json() for r in alert.notified_to],
        "snoozed_until": alert.snoozed_until,
        "acknowledged_at": alert.acknowledged_at,
        "acknowledged_by": alert.acknowledged_by,
        "resolved_at": alert.resolved_at,
        "resolved_by": alert.resolved_by,
        "resolve_notice_due": alert.resolve_notice_due,
        "escalated_at": alert.escalated_at,
        "escalation_path": list(alert.escalation_path),
        "muted": alert.muted,
        "resolves_at": alert.resolves_at,
        "wake_at": alert.wake_at,
    }


async def save_alerts(conn: AsyncConnection, changed: Sequence[Alert]) -> list[Alert]:
    """Insert the new alerts (one statement) and update the others (one prepared statement,
    executed for each); returns the alerts with their ids."""
    new = [a for a in changed if a.id is None]
    old = [a for a in changed if a.id is not None]
    saved: list[Alert] = []
    if new:
        result = await conn.execute(
            insert(alerts).returning(alerts.c.id, sort_by_parameter_order=True),
            [_alert_values(a) for a in new],
        )
        ids = [r[0] for r in result]
        saved += [_with_id(a, i) for a, i in zip(new, ids, strict=True)]
    if old:
        columns: dict[str, Any] = {
            c: bindparam(f"v_{c}") for c in _alert_values(old[0]) if c != "account_id"
        }
        await conn.execute(
            update(alerts).where(alerts.c.id == bindparam("v_id")).values(columns),
            [{"v_id": a.id, **{f"v_{k}": v for k, v in _alert_values(a).items()}} for a in old],
        )
        saved += old
    return saved


def _with_id(alert: Alert, alert_id: int) -> Alert:
    return replace(alert, id=alert_id)


async def due_accounts(conn: AsyncConnection, now: datetime, limit: int) -> list[str]:
    """The accounts with an open alert due (``wake_at`` ≤ now), the longest due first."""
    rows = await conn.execute(
        select(alerts.c.account_id)
        .where(alerts.c.state != "resolved", alerts.c.wake_at <= now)
        .group_by(alerts.c.account_id)
        .order_by(func.min(alerts.c.wake_at))
        .limit(limit)
    )
    return [r[0] for r in rows]


async def wake(conn: AsyncConnection, *, silence_id: int | None, now: datetime) -> None:
    """Ask the scheduler to look again at the alerts a silence muted (it ended early)."""
    await conn.execute(
        update(alerts)
        .where(alerts.c.state != "resolved", alerts.c.muted == f"silenced:{silence_id}")
        .values(wake_at=now)
    )


async def mark_notified(conn: AsyncConnection, alert_ids: Sequence[int], now: datetime) -> None:
    """The alerts were shown to their recipients (in a digest) at ``now``."""
    if alert_ids:
        await conn.execute(
            text(
                "UPDATE alerts.alerts SET notified_at = :now, notified_severity = severity, "
                "first_notified_at = coalesce(first_notified_at, :now) WHERE id = ANY(:ids)"
            ),
            {"now": now, "ids": list(alert_ids)},
        )


async def open_counts(conn: AsyncConnection) -> list[tuple[str, str, str, int]]:
    """(rule, severity, state, count) of the open alerts."""
    rows = await conn.execute(
        text(
            "SELECT rule, severity, state, count(*) FROM alerts.alerts "
            "WHERE state <> 'resolved' GROUP BY 1, 2, 3"
        )
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


@dataclass(frozen=True)
class AlertQuery:
    """A listing's filters (all optional), newest first, ``limit`` at most."""

    state: Sequence[str] | None = None
    account_id: Sequence[str] | str | None = None  # one, or any of these
    rule: str | None = None
    severity: Sequence[str] | None = None
    motion: str | None = None
    owner: str | None = None
    open_only: bool = False
    limit: int = 100
    before_id: int | None = None


async def list_alerts(conn: AsyncConnection, q: AlertQuery) -> list[Alert]:
    t = alerts
    query = select(t).order_by(t.c.id.desc()).limit(q.limit)
    if q.state:
        query = query.where(t.c.state.in_(q.state))
    if q.open_only:
        query = query.where(t.c.state != "resolved")
    if q.account_id:
        ids = [q.account_id] if isinstance(q.account_id, str) else list(q.account_id)
        query = query.where(t.c.account_id.in_(ids))
    if q.rule:
        query = query.where(t.c.rule == q.rule)
    if q.severity:
        query = query.where(t.c.severity.in_(q.severity))
    if q.motion:
        query = query.where(t.c.motion == q.motion)
    if q.owner:
        query = query.where(t.c.route["recipients"].contains([{"person_id": q.owner}]))
    if q.before_id is not None:
        query = query.where(t.c.id < q.before_id)
    rows = await conn.execute(query)
    return [alert_from_row(r) for r in rows.mappings()]


# ---------------------------------------------------------------------------------------------
# Silences


async def active_silences(conn: AsyncConnection, now: datetime) -> list[Silence]:
    rows = await conn.execute(
        select(silences).where(silences.c.ends_at > now).order_by(silences.c.id)
    )
    return [silence_from_row(r) for r in rows.mappings()]


async def list_silences(
    conn: AsyncConnection, now: datetime, *, include_expired: bool, limit: int = 500
) -> list[Silence]:
    """Silences, newest first: the active ones, or all."""
    query = select(silences).order_by(silences.c.id.desc()).limit(limit)
    if not include_expired:
        query = query.where(silences.c.ends_at > now)
    rows = await conn.execute(query)
    return [silence_from_row(r) for r in rows.mappings()]


async def create_silence(
    conn: AsyncConnection,
    matchers: Sequence[Matcher],
    *,
    starts_at: datetime,
    ends_at: datetime,
    created_by: str,
    comment: str,
    now: datetime,
) -> Silence:
    values: dict[str, Any] = {
        "matchers": [matcher_json(m) for m in matchers],
        "starts_at": starts_at,
        "ends_at": ends_at,
        "created_by": created_by,
        "comment": comment,
        "created_at": now,
    }
    row = (await conn.execute(insert(silences).values(values).returning(silences))).mappings()
    return silence_from_row(row.one())


async def expire_silence(conn: AsyncConnection, silence_id: int, now: datetime) -> Silence | None:
    """End an active silence now; None when there is no such active silence."""
    result = await conn.execute(
        update(silences)
        .where(silences.c.id == silence_id, silences.c.ends_at > now)
        .values(ends_at=now)
        .returning(silences)
    )
    row = result.mappings().one_or_none()
    return None if row is None else silence_from_row(row)


def matcher_json(matcher: Matcher) -> dict[str, str]:
    return {"label": matcher.label, "op": matcher.op, "value": matcher.value}


def silence_from_row(row: RowMapping) -> Silence:
    matchers = tuple(Matcher(m["label"], m["op"], m["value"]) for m in row["matchers"])
    return from_row(Silence, row, matchers=matchers)


# ---------------------------------------------------------------------------------------------
# One-click links


async def use_link(
    conn: AsyncConnection, digest: bytes, expires_at: datetime, now: datetime
) -> bool:
    """Record that a link acts now; False when it already acted. (Expired ones are purged by
    ``retention``: an expired link is refused before it gets here.)"""
    first = await conn.execute(
        insert(used_links)
        .values(digest=digest, used_at=now, expires_at=expires_at)
        .on_conflict_do_nothing()
        .returning(used_links.c.digest)
    )
    return first.first() is not None
