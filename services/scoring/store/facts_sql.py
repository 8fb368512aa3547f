"""The live facts query: what the model needs about a set of accounts, from the tables.

Its windowed counts are generated from ``services.scoring.facts.COUNTS``, the one definition
the offline :class:`~services.scoring.facts.Ledger` counts from too: one ``FILTER`` clause per
count over its table's rows (``account_days``, ``survey_days``) or day masks
(``account_users``, ``account_features``). ``print(FACTS_SQL)`` shows the statement.

Parameters: ``$1`` the account ids, ``$2`` the day of ``as_of``, ``$3`` its day number (for the
masks), ``$4`` / ``$5`` the smallest and largest id (a range each table's key can scan).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services.scoring import aggregate
from services.scoring.facts import CLOSED, COUNTS, HIGH_URGENT, Count, Table, Window, span
from services.scoring.health import Facts
from shared.events import MAX_TICKET_IDS


def _days(window: Window) -> str:
    return f"day BETWEEN $2::date - {window.oldest} AND $2::date - {window.newest}"


def _active(window: Window) -> str:
    return f"scoring.active_in(anchor_day, days, $3::int, {window.newest}, {window.oldest})"


def _expression(count: Count) -> str:
    """The aggregate that computes one count over its table's rows."""
    w = count.window
    if count.how == "sum":
        return f"sum({count.column}) FILTER (WHERE {_days(w)})"
    if count.how == "days":
        return f"count(*) FILTER (WHERE {_days(w)} AND {count.column} > 0)"
    weeks = w.weeks() if count.how == "weekly" else [w]
    return "\n        + ".join(f"count(*) FILTER (WHERE {_active(week)})" for week in weeks)


def _counts(table: Table) -> str:
    return ",\n".join(
        f"        {_expression(c)}\n            AS {c.fact}" for c in COUNTS if c.table == table
    )


def _quoted(values: frozenset[str]) -> str:
    return ", ".join(f"'{v}'" for v in sorted(values))


# The CTE of each table's counts.
_CTE: dict[Table, str] = {
    "account_days": "d",
    "account_users": "u",
    "account_features": "f",
    "survey_days": "s",
}
_IN_RANGE = "account_id BETWEEN $4 AND $5 AND account_id = ANY($1::text[])"

FACTS_SQL = f"""
WITH ids AS (SELECT DISTINCT unnest($1::text[]) AS account_id),
d AS (
    SELECT account_id,
{_counts("account_days")}
    FROM scoring.account_days
    WHERE {_IN_RANGE} AND {_days(span("account_days"))}
    GROUP BY account_id),
u AS (
    SELECT account_id,
{_counts("account_users")}
    FROM scoring.account_users
    WHERE {_IN_RANGE}
    GROUP BY account_id),
f AS (
    SELECT account_id,
{_counts("account_features")}
    FROM scoring.account_features
    WHERE {_IN_RANGE}
    GROUP BY account_id),
t AS (
    SELECT account_id,
        count(*) AS open_tickets,
        count(*) FILTER (WHERE priority IN ({_quoted(HIGH_URGENT)})) AS open_high_urgent,
        min(updated_at) FILTER (WHERE priority IN ({_quoted(HIGH_URGENT)}))
            AS oldest_open_high_urgent_update,
        (array_agg(ticket_id ORDER BY updated_at, ticket_id)
            FILTER (WHERE priority IN ({_quoted(HIGH_URGENT)})))[1:{MAX_TICKET_IDS}]
            AS open_high_urgent_ids
    FROM scoring.tickets
    WHERE {_IN_RANGE} AND status NOT IN ({_quoted(CLOSED)})
    GROUP BY account_id),
s AS (
    SELECT account_id,
{_counts("survey_days")}
    FROM scoring.survey_days
    WHERE {_IN_RANGE} AND {_days(span("survey_days"))}
    GROUP BY account_id)
SELECT ids.account_id,
    a.known_since,
    r.tier, r.lifecycle_stage, r.seats, r.renewal_date,
    a.first_usage_at, a.first_feature_at,
    coalesce(lu.last_usage_at, a.last_usage_day::timestamp AT TIME ZONE 'UTC') AS last_usage_at,
    coalesce(lf.last_feature_at, a.last_feature_day::timestamp AT TIME ZONE 'UTC')
        AS last_feature_at,
    a.last_survey_at, a.nps_latest,
    t.open_tickets, t.open_high_urgent, t.oldest_open_high_urgent_update,
    t.open_high_urgent_ids,
    {", ".join(f"{_CTE[c.table]}.{c.fact}" for c in COUNTS)}
FROM ids
LEFT JOIN (SELECT * FROM scoring.activity WHERE account_id BETWEEN $4 AND $5) a
    USING (account_id)
LEFT JOIN (SELECT * FROM scoring.accounts WHERE account_id BETWEEN $4 AND $5) r
    USING (account_id)
LEFT JOIN d USING (account_id)
LEFT JOIN u USING (account_id)
LEFT JOIN f USING (account_id)
LEFT JOIN t USING (account_id)
LEFT JOIN s USING (account_id)
-- the exact newest usage / feature use: the row of the day activity names (when it was purged,
-- the start of that day: older, so never healthier)
LEFT JOIN scoring.account_days lu
    ON lu.account_id = ids.account_id AND lu.day = a.last_usage_day
LEFT JOIN scoring.account_days lf
    ON lf.account_id = ids.account_id AND lf.day = a.last_feature_day
"""  # noqa: S608 - built from the constant definitions in services.scoring.facts, no input

_COUNTS = (*(c.fact for c in COUNTS), "open_tickets", "open_high_urgent")
_AS_IS = (
    "known_since",
    "tier",
    "lifecycle_stage",
    "seats",
    "renewal_date",
    "first_usage_at",
    "last_usage_at",
    "first_feature_at",
    "last_feature_at",
    "last_survey_at",
    "nps_latest",
    "oldest_open_high_urgent_update",
)


async def gather_facts(
    conn: asyncpg.Connection, account_ids: Sequence[str], as_of: datetime
) -> list[Facts]:
    """Everything the model needs about these accounts, as of ``as_of`` (windows end that day)."""
    day = as_of.date()
    ids = sorted(account_ids)
    # The range lets PostgreSQL scan each table's primary key over one interval (the sweep
    # goes through accounts in key order); ANY then picks the accounts asked for.
    rows = await conn.fetch(FACTS_SQL, ids, day, aggregate.day_number(day), ids[0], ids[-1])
    return [facts_from_row(row) for row in rows]


def facts_from_row(row: Mapping[str, Any]) -> Facts:
    values: dict[str, Any] = {name: int(row[name] or 0) for name in _COUNTS}
    values |= {name: row[name] for name in _AS_IS}
    values["open_high_urgent_ids"] = tuple(row["open_high_urgent_ids"] or ())
    return Facts(account_id=row["account_id"], **values)
