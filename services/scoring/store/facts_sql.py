"""The live facts query: what the model needs about a set of accounts, from the tables.

Its windowed counts are generated from ``services.scoring.facts.COUNTS``, the one definition
the offline :class:`~services.scoring.facts.Ledger` counts from too: one ``FILTER`` clause per
count over its table's rows (``account_days``, ``survey_days``) or day masks
(``account_users``, ``account_features``). ``print(FACTS_SQL)`` shows the statement.

Parameters: ``$1`` the account ids, ``$2`` the day of ``as_of``, ``$3`` its day number (for the
masks). One row per account, in key order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
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


# The alias of each table's counts (a LATERAL sub-select per account).
_ALIAS: dict[Table, str] = {
    "account_days": "d",
    "account_users": "u",
    "account_features": "f",
    "survey_days": "s",
}
_OF_ACCOUNT = "account_id = ids.account_id"
_HIGH_URGENT_IDS = "open_high_urgent_ids"

# What each field of Facts is selected as; the statement selects them in the order of the
# fields, so that a row is the arguments of Facts (see facts_from_row).
_SELECTED: dict[str, str] = {
    "account_id": "ids.account_id",
    "known_since": "a.known_since",
    "tier": "r.tier",
    "lifecycle_stage": "r.lifecycle_stage",
    "seats": "r.seats",
    "renewal_date": "r.renewal_date",
    "first_usage_at": "a.first_usage_at",
    "last_usage_at": "coalesce(lu.last_usage_at, a.last_usage_day::timestamp AT TIME ZONE 'UTC')",
    "first_feature_at": "a.first_feature_at",
    "last_feature_at": (
        "coalesce(lf.last_feature_at, a.last_feature_day::timestamp AT TIME ZONE 'UTC')"
    ),
    "last_survey_at": "a.last_survey_at",
    "nps_latest": "a.nps_latest",
    "open_tickets": "t.open_tickets",
    "open_high_urgent": "t.open_high_urgent",
    "oldest_open_high_urgent_update": "t.oldest_open_high_urgent_update",
    _HIGH_URGENT_IDS: f"t.{_HIGH_URGENT_IDS}",
    **{c.fact: f"coalesce({_ALIAS[c.table]}.{c.fact}, 0)" for c in COUNTS},
}
_FIELDS = [f.name for f in dataclasses.fields(Facts)]
if sorted(_SELECTED) != sorted(_FIELDS):
    raise RuntimeError(f"the facts query selects {sorted(_SELECTED)}, Facts has {_FIELDS}")
_IDS_AT = _FIELDS.index(_HIGH_URGENT_IDS)
_SELECT_LIST = ",\n    ".join(f"{_SELECTED[name]} AS {name}" for name in _FIELDS)

# One row per account asked for, each table read through its key for that account alone
# (LATERAL): the plan stays a loop of index scans whatever the number of accounts, also in
# the generic plan PostgreSQL settles on for a prepared statement (joins of whole CTEs
# turned into nested loops over every pair of accounts there). The ids are read through a
# sub-select, so that the planner does not count them: planned for 2,000 ids, the estimate
# passed jit_above_cost (45 ms of JIT compilation per chunk) and the newest-day lookups
# turned into hash joins over all of account_days; every plan is now the generic one.
FACTS_SQL = f"""
SELECT {_SELECT_LIST}
FROM (SELECT DISTINCT unnest((SELECT $1::text[])) AS account_id) ids
LEFT JOIN scoring.activity a ON a.{_OF_ACCOUNT}
LEFT JOIN scoring.accounts r ON r.{_OF_ACCOUNT}
CROSS JOIN LATERAL (
    SELECT
{_counts("account_days")}
    FROM scoring.account_days
    WHERE {_OF_ACCOUNT} AND {_days(span("account_days"))}) d
CROSS JOIN LATERAL (
    SELECT
{_counts("account_users")}
    FROM scoring.account_users
    WHERE {_OF_ACCOUNT}) u
CROSS JOIN LATERAL (
    SELECT
{_counts("account_features")}
    FROM scoring.account_features
    WHERE {_OF_ACCOUNT}) f
CROSS JOIN LATERAL (
    SELECT
        count(*) AS open_tickets,
        count(*) FILTER (WHERE priority IN ({_quoted(HIGH_URGENT)})) AS open_high_urgent,
        min(updated_at) FILTER (WHERE priority IN ({_quoted(HIGH_URGENT)}))
            AS oldest_open_high_urgent_update,
        (array_agg(ticket_id ORDER BY updated_at, ticket_id)
            FILTER (WHERE priority IN ({_quoted(HIGH_URGENT)})))[1:{MAX_TICKET_IDS}]
            AS open_high_urgent_ids
    FROM scoring.tickets
    WHERE {_OF_ACCOUNT} AND status NOT IN ({_quoted(CLOSED)})) t
CROSS JOIN LATERAL (
    SELECT
{_counts("survey_days")}
    FROM scoring.survey_days
    WHERE {_OF_ACCOUNT} AND {_days(span("survey_days"))}) s
-- the exact newest usage / feature use: the row of the day activity names (when it was purged,
-- the start of that day: older, so never healthier)
LEFT JOIN scoring.account_days lu
    ON lu.account_id = ids.account_id AND lu.day = a.last_usage_day
LEFT JOIN scoring.account_days lf
    ON lf.account_id = ids.account_id AND lf.day = a.last_feature_day
ORDER BY ids.account_id COLLATE "C"
"""  # noqa: S608 - built from the constant definitions in services.scoring.facts, no input


async def gather_facts(
    conn: asyncpg.Connection, account_ids: Sequence[str], as_of: datetime
) -> list[Facts]:
    """Everything the model needs about these accounts, as of ``as_of`` (windows end that day)."""
    day = as_of.date()
    rows = await conn.fetch(FACTS_SQL, list(account_ids), day, aggregate.day_number(day))
    return [facts_from_row(row) for row in rows]


def facts_from_row(row: Sequence[Any]) -> Facts:
    """A row of the facts query (its columns are the fields of Facts, in order) as Facts."""
    values = list(row)
    values[_IDS_AT] = tuple(values[_IDS_AT] or ())
    return Facts(*values)
