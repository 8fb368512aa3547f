"""The live facts query: what the model needs about a set of accounts, from the tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services.scoring import aggregate
from services.scoring.health import SENTIMENT_TREND_DAYS, SENTIMENT_WINDOW_DAYS, Facts

FACTS_SQL = f"""
WITH ids AS (SELECT DISTINCT unnest($1::text[]) AS account_id),
d AS (
    SELECT account_id,
        sum(usage_events) FILTER (WHERE day > $2::date - 7) AS usage_events_7d,
        sum(usage_events) FILTER (WHERE day <= $2::date - 7) AS usage_events_prior_4w,
        count(*) FILTER (WHERE day > $2::date - 7 AND usage_events > 0) AS active_days_7d,
        count(*) FILTER (WHERE day <= $2::date - 7 AND usage_events > 0) AS active_days_prior_4w,
        sum(tickets_opened) FILTER (WHERE day > $2::date - 7) AS tickets_opened_7d,
        sum(tickets_opened) FILTER (WHERE day <= $2::date - 7) AS tickets_opened_prior_4w,
        sum(high_urgent_opened) FILTER (WHERE day > $2::date - 7) AS high_urgent_opened_7d,
        sum(escalations) FILTER (WHERE day > $2::date - 30) AS escalations_30d,
        sum(reopens) FILTER (WHERE day > $2::date - 30) AS reopens_30d
    FROM scoring.account_days
    WHERE account_id BETWEEN $4 AND $5 AND account_id = ANY($1::text[])
        AND day > $2::date - 35 AND day <= $2::date
    GROUP BY account_id),
u AS (
    SELECT account_id,
        count(*) FILTER (WHERE scoring.active_in(anchor_day, days, $3::int, 0, 6))
            AS active_users_7d,
        count(*) FILTER (WHERE scoring.active_in(anchor_day, days, $3::int, 7, 13))
        + count(*) FILTER (WHERE scoring.active_in(anchor_day, days, $3::int, 14, 20))
        + count(*) FILTER (WHERE scoring.active_in(anchor_day, days, $3::int, 21, 27))
        + count(*) FILTER (WHERE scoring.active_in(anchor_day, days, $3::int, 28, 34))
            AS active_users_prior_4w,
        count(*) FILTER (WHERE scoring.active_in(anchor_day, days, $3::int, 0, 29))
            AS active_users_30d,
        count(*) FILTER (WHERE scoring.active_in(anchor_day, days, $3::int, 30, 59))
            AS active_users_prior_30d
    FROM scoring.account_users
    WHERE account_id BETWEEN $4 AND $5 AND account_id = ANY($1::text[])
    GROUP BY account_id),
f AS (
    SELECT account_id,
        count(*) FILTER (WHERE scoring.active_in(anchor_day, days, $3::int, 0, 29)) AS features_30d,
        count(*) FILTER (WHERE scoring.active_in(anchor_day, days, $3::int, 30, 59))
            AS features_prior_30d
    FROM scoring.account_features
    WHERE account_id BETWEEN $4 AND $5 AND account_id = ANY($1::text[])
    GROUP BY account_id),
t AS (
    SELECT account_id,
        count(*) AS open_tickets,
        count(*) FILTER (WHERE priority IN ('high', 'urgent')) AS open_high_urgent,
        min(updated_at) FILTER (WHERE priority IN ('high', 'urgent'))
            AS oldest_open_high_urgent_update
    FROM scoring.tickets
    WHERE account_id BETWEEN $4 AND $5 AND account_id = ANY($1::text[])
        AND status NOT IN ('solved', 'closed')
    GROUP BY account_id),
s AS (
    SELECT account_id,
        sum(nps_answers) AS nps_answers,
        sum(nps_promoters) AS nps_promoters,
        sum(nps_detractors) AS nps_detractors,
        sum(nps_sum) FILTER (WHERE day > $2::date - {SENTIMENT_TREND_DAYS}) AS nps_recent_sum,
        sum(nps_answers) FILTER (WHERE day > $2::date - {SENTIMENT_TREND_DAYS})
            AS nps_recent_answers,
        sum(nps_sum) FILTER (WHERE day <= $2::date - {SENTIMENT_TREND_DAYS}) AS nps_prior_sum,
        sum(nps_answers) FILTER (WHERE day <= $2::date - {SENTIMENT_TREND_DAYS})
            AS nps_prior_answers,
        sum(csat_sum) AS csat_sum,
        sum(csat_answers) AS csat_answers
    FROM scoring.survey_days
    WHERE account_id BETWEEN $4 AND $5 AND account_id = ANY($1::text[])
        AND day > $2::date - {SENTIMENT_WINDOW_DAYS} AND day <= $2::date
    GROUP BY account_id)
SELECT ids.account_id,
    a.known_since,
    r.tier, r.lifecycle_stage, r.seats, r.renewal_date,
    a.first_usage_at, a.first_feature_at,
    coalesce(lu.last_usage_at, a.last_usage_day::timestamp AT TIME ZONE 'UTC') AS last_usage_at,
    coalesce(lf.last_feature_at, a.last_feature_day::timestamp AT TIME ZONE 'UTC')
        AS last_feature_at,
    a.last_survey_at, a.nps_latest,
    d.usage_events_7d, d.usage_events_prior_4w, d.active_days_7d, d.active_days_prior_4w,
    d.tickets_opened_7d, d.tickets_opened_prior_4w, d.high_urgent_opened_7d,
    d.escalations_30d, d.reopens_30d,
    u.active_users_7d, u.active_users_prior_4w, u.active_users_30d, u.active_users_prior_30d,
    f.features_30d, f.features_prior_30d,
    t.open_tickets, t.open_high_urgent, t.oldest_open_high_urgent_update,
    s.nps_answers, s.nps_promoters, s.nps_detractors, s.nps_recent_sum, s.nps_recent_answers,
    s.nps_prior_sum, s.nps_prior_answers, s.csat_sum, s.csat_answers
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
"""  # noqa: S608 - the interpolated values are integer constants

_COUNTS = (
    "usage_events_7d",
    "usage_events_prior_4w",
    "active_days_7d",
    "active_days_prior_4w",
    "tickets_opened_7d",
    "tickets_opened_prior_4w",
    "high_urgent_opened_7d",
    "escalations_30d",
    "reopens_30d",
    "active_users_7d",
    "active_users_prior_4w",
    "active_users_30d",
    "active_users_prior_30d",
    "features_30d",
    "features_prior_30d",
    "open_tickets",
    "open_high_urgent",
    "nps_answers",
    "nps_promoters",
    "nps_detractors",
    "nps_recent_sum",
    "nps_recent_answers",
    "nps_prior_sum",
    "nps_prior_answers",
    "csat_sum",
    "csat_answers",
)
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
    return Facts(account_id=row["account_id"], **values)
