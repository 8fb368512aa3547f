"""The directory queries of the read API: people by email, a manager's reports, and account
summaries (team, health and a daily score line) for a set of team members — what the console
needs to decide who sees what and to draw a portfolio in one round trip."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

MAX_REPORT_DEPTH = 10  # a management chain deeper than this is cut (and cycles end)


async def people_by_email(conn: asyncpg.Connection, email: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT person_id, name, email, manager_id, active FROM scoring.people
        WHERE lower(email) = lower($1) ORDER BY person_id
        """,
        email,
    )
    return rows


async def reports(conn: asyncpg.Connection, manager_id: str) -> list[asyncpg.Record]:
    """Everyone under ``manager_id`` (direct and indirect), at most ``MAX_REPORT_DEPTH`` deep."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        WITH RECURSIVE under(person_id, depth) AS (
            SELECT person_id, 1 FROM scoring.people WHERE manager_id = $1 AND person_id <> $1
            UNION
            SELECT p.person_id, u.depth + 1 FROM scoring.people p
            JOIN under u ON p.manager_id = u.person_id
            WHERE u.depth < $2 AND p.person_id <> $1
        )
        SELECT p.person_id, p.name, p.email, p.manager_id, p.active, min(u.depth) AS depth
        FROM under u JOIN scoring.people p USING (person_id)
        GROUP BY p.person_id, p.name, p.email, p.manager_id, p.active
        ORDER BY p.name, p.person_id
        """,
        manager_id,
        MAX_REPORT_DEPTH,
    )
    return rows


async def account_summaries(
    conn: asyncpg.Connection,
    members: Sequence[str] | None,
    account_ids: Sequence[str] | None,
    line_since: datetime,
    limit: int,
) -> list[asyncpg.Record]:
    """Accounts whose team (CSM, AE, renewal owner) includes one of ``members`` (None: any),
    restricted to ``account_ids`` when given, riskiest first (band, score), with their health
    and the last score of each day (UTC) since ``line_since`` (``line``: JSON
    ``[[day, score], …]``)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT a.account_id, a.name, a.tier, a.arr, a.seats, a.renewal_date,
            a.lifecycle_stage, a.csm, a.account_executive, a.renewal_owner,
            csm.name AS csm_name, ae.name AS account_executive_name,
            ro.name AS renewal_owner_name,
            h.score, h.band, h.band_since, h.as_of, h.top_reason, h.partial, h.stale,
            (SELECT json_agg(json_build_array(d.day, d.score) ORDER BY d.day)::text FROM (
                SELECT DISTINCT ON (1) (hh.as_of AT TIME ZONE 'UTC')::date AS day, hh.score
                FROM scoring.health_history hh
                WHERE hh.account_id = a.account_id AND hh.as_of >= $3
                ORDER BY 1, hh.as_of DESC) d) AS line
        FROM scoring.accounts a
        LEFT JOIN scoring.health h USING (account_id)
        LEFT JOIN scoring.people csm ON csm.person_id = a.csm
        LEFT JOIN scoring.people ae ON ae.person_id = a.account_executive
        LEFT JOIN scoring.people ro ON ro.person_id = a.renewal_owner
        WHERE ($1::text[] IS NULL OR a.csm = ANY($1) OR a.account_executive = ANY($1)
               OR a.renewal_owner = ANY($1))
          AND ($2::text[] IS NULL OR a.account_id = ANY($2))
        ORDER BY CASE h.band WHEN 'red' THEN 0 WHEN 'yellow' THEN 1 WHEN 'green' THEN 2
            ELSE 3 END, h.score NULLS LAST, a.account_id
        LIMIT $4
        """,
        list(members) if members is not None else None,
        list(account_ids) if account_ids is not None else None,
        line_since,
        limit,
    )
    return rows
