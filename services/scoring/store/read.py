"""The read API's queries: an account's health and history, a portfolio, the brief's data."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import asyncpg


async def account_exists(conn: asyncpg.Connection, account_id: str) -> bool:
    found: bool = await conn.fetchval(
        """
        SELECT EXISTS (SELECT 1 FROM scoring.health WHERE account_id = $1)
            OR EXISTS (SELECT 1 FROM scoring.accounts WHERE account_id = $1)
            OR EXISTS (SELECT 1 FROM scoring.activity WHERE account_id = $1)
        """,
        account_id,
    )
    return found


async def current_health(conn: asyncpg.Connection, account_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        """
        SELECT h.account_id, h.model_version, h.profile, h.as_of, h.band_since,
            h.snapshot::text AS snapshot, a.name
        FROM scoring.health h LEFT JOIN scoring.accounts a USING (account_id)
        WHERE h.account_id = $1
        """,
        account_id,
    )
    return row


async def history(
    conn: asyncpg.Connection, account_id: str, start: datetime, end: datetime
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT as_of, model_version, score, band, triggers, change_id,
            snapshot::text AS snapshot, moved_by::text AS moved_by
        FROM scoring.health_history
        WHERE account_id = $1 AND as_of >= $2 AND as_of <= $3
        ORDER BY as_of
        """,
        account_id,
        start,
        end,
    )
    return rows


async def person(conn: asyncpg.Connection, person_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT person_id, name, email, active FROM scoring.people WHERE person_id = $1",
        person_id,
    )
    return row


async def portfolio(
    conn: asyncpg.Connection, owner: str, trend_since: datetime
) -> list[asyncpg.Record]:
    """The owner's accounts (any role) with their score, band and the score at ``trend_since``."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT a.account_id, a.name, a.tier, a.arr, a.renewal_date,
            array_remove(ARRAY[
                CASE WHEN a.csm = $1 THEN 'csm' END,
                CASE WHEN a.account_executive = $1 THEN 'account_executive' END,
                CASE WHEN a.renewal_owner = $1 THEN 'renewal_owner' END], NULL) AS roles,
            h.score, h.band, h.band_since, h.as_of, h.top_reason, h.partial, h.stale,
            (SELECT hh.score FROM scoring.health_history hh
             WHERE hh.account_id = a.account_id AND hh.as_of <= $2
             ORDER BY hh.as_of DESC LIMIT 1) AS score_before
        FROM scoring.accounts a
        LEFT JOIN scoring.health h USING (account_id)
        WHERE a.csm = $1 OR a.account_executive = $1 OR a.renewal_owner = $1
        """,
        owner,
        trend_since,
    )
    return rows


async def account_record(conn: asyncpg.Connection, account_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        """
        SELECT a.*, csm.name AS csm_name, ae.name AS account_executive_name,
            ro.name AS renewal_owner_name
        FROM scoring.accounts a
        LEFT JOIN scoring.people csm ON csm.person_id = a.csm
        LEFT JOIN scoring.people ae ON ae.person_id = a.account_executive
        LEFT JOIN scoring.people ro ON ro.person_id = a.renewal_owner
        WHERE a.account_id = $1
        """,
        account_id,
    )
    return row


async def weekly_usage(
    conn: asyncpg.Connection, account_id: str, last_day: date, weeks: int
) -> list[tuple[date, int, int]]:
    """(week start, usage events, active days) for the ``weeks`` weeks ending on ``last_day``."""
    rows = await conn.fetch(
        """
        SELECT w.n, coalesce(sum(d.usage_events), 0) AS events,
            count(d.day) FILTER (WHERE d.usage_events > 0) AS active_days
        FROM generate_series(0, $3 - 1) AS w(n)
        LEFT JOIN scoring.account_days d
            ON d.account_id = $1 AND d.day <= $2::date - 7 * w.n
            AND d.day > $2::date - 7 * (w.n + 1)
        GROUP BY w.n ORDER BY w.n DESC
        """,
        account_id,
        last_day,
        weeks,
    )
    return [
        (last_day - timedelta(days=7 * r["n"] + 6), int(r["events"]), int(r["active_days"]))
        for r in rows
    ]


async def open_tickets(conn: asyncpg.Connection, account_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT ticket_id, priority, status, last_action, updated_at FROM scoring.tickets
        WHERE account_id = $1 AND status NOT IN ('solved', 'closed')
        ORDER BY CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2
            ELSE 3 END, updated_at DESC
        LIMIT 50
        """,
        account_id,
    )
    return rows
