"""The scoring side of S4 and S5, run as its own process (its CPU and memory are measured alone).

    python -m bench.sweeper seed  --database-url URL --accounts N
    python -m bench.sweeper sweep --database-url URL --later-minutes M
    python -m bench.sweeper raw   --database-url URL --later-minutes M

``seed`` fills a migrated database with N realistic accounts — 35 days of daily rows (silent
stretches of 0–20 days), users and features as day masks, tickets, survey answers, account
records — and scores every account once (the sweep rescores *scored* accounts that are due).
``sweep`` times the service's own ``Sweeper.sweep`` M minutes after the seed: the accounts
due by then (5 minutes: nearly none; past the next UTC midnight: all of them).
``raw`` times one SQL statement reading the same rows over the same windows (those of the day
M minutes after the seed) and aggregating them per account (no scoring, no writes): the
floor of any pass over every account. Each prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from services.scoring import model as health_model
from services.scoring.health import SENTIMENT_WINDOW_DAYS
from services.scoring.scorer import Scorer
from services.scoring.store import connect
from services.scoring.sweep import Horizons, Sweeper
from shared.clock import FixedClock

SEED = """
INSERT INTO scoring.accounts (account_id, name, tier, seats, arr, renewal_date,
    lifecycle_stage, csm, updated_at)
SELECT 'acct-' || lpad(i::text, 7, '0'), 'Account ' || i,
    CASE WHEN i % 10 = 0 THEN 'enterprise' ELSE 'pro' END, 10 + i % 40, 10000 + i % 90000,
    {today} + 120 + (i % 240), CASE WHEN i % 25 = 0 THEN 'onboarding' ELSE 'mature' END,
    'csm-' || (i % 500), {now}
FROM generate_series(1, {accounts}) AS i;

INSERT INTO scoring.account_days (account_id, day, usage_events, usage_quantity,
    tickets_opened, high_urgent_opened, escalations, reopens, last_usage_at, last_feature_at)
SELECT 'acct-' || lpad(i::text, 7, '0'), {today} - d, 5 + (i + d) % 40, 5 + (i + d) % 40,
    CASE WHEN (i + d) % 29 = 0 THEN 1 ELSE 0 END, CASE WHEN (i + d) % 97 = 0 THEN 1 ELSE 0 END,
    0, 0, ({today} - d) + time '17:00' AT TIME ZONE 'UTC',
    ({today} - d) + time '16:00' AT TIME ZONE 'UTC'
FROM generate_series(1, {accounts}) AS i, generate_series(i % 21, 34) AS d
WHERE (i + d) % 7 <> 0;

INSERT INTO scoring.activity (account_id, known_since, first_usage_at, last_usage_day,
    first_feature_at, last_feature_day, last_ticket_at, last_survey_at, nps_latest)
SELECT d.account_id, {now} - interval '120 days', {now} - interval '120 days', max(d.day),
    {now} - interval '120 days', max(d.day),
    CASE WHEN right(d.account_id, 1)::int % 5 = 0 THEN {now} - interval '3 days' END,
    CASE WHEN right(d.account_id, 1)::int % 3 = 0 THEN {now} - interval '20 days' END,
    CASE WHEN right(d.account_id, 1)::int % 3 = 0 THEN right(d.account_id, 1)::int END
FROM scoring.account_days d GROUP BY d.account_id;

INSERT INTO scoring.account_users (account_id, user_id, anchor_day, days)
SELECT 'acct-' || lpad(i::text, 7, '0'), 'user-' || u, {anchor} - i % 21,
    (4611686018427387903 # (i * 2654435761 + u * 40503)) & 4611686018427387903
FROM generate_series(1, {accounts}) AS i, generate_series(1, 4 + i % 9) AS u;

INSERT INTO scoring.account_features (account_id, feature, anchor_day, days)
SELECT 'acct-' || lpad(i::text, 7, '0'), 'feature-' || f, {anchor} - i % 21,
    (i::bigint * 7919 + f * 104729) & 4611686018427387903
FROM generate_series(1, {accounts}) AS i, generate_series(1, 2 + i % 6) AS f;

INSERT INTO scoring.tickets (account_id, ticket_id, priority, status, last_action,
    updated_at, event_id)
SELECT 'acct-' || lpad(i::text, 7, '0'), 'ticket-' || t,
    CASE WHEN t = 1 THEN 'urgent' ELSE 'normal' END,
    CASE WHEN t % 2 = 0 THEN 'solved' ELSE 'open' END,
    'opened', {now} - interval '3 days', 'e-' || i || '-' || t
FROM generate_series(1, {accounts}, 5) AS i, generate_series(1, 3) AS t;

INSERT INTO scoring.survey_days (account_id, day, nps_sum, nps_answers, nps_promoters,
    nps_detractors, csat_sum, csat_answers)
SELECT 'acct-' || lpad(i::text, 7, '0'), {today} - 20, i % 11, 1,
    CASE WHEN i % 11 >= 9 THEN 1 ELSE 0 END, CASE WHEN i % 11 <= 6 THEN 1 ELSE 0 END, 0, 0
FROM generate_series(1, {accounts}, 3) AS i;
"""

# Every row a sweep reads, over the same windows, aggregated per account in one statement.
RAW_PASS = f"""
SELECT count(*), sum(coalesce(d.n, 0) + coalesce(d.usage, 0) + coalesce(d.tickets, 0)
        + coalesce(u.users_7d, 0) + coalesce(u.users_30d, 0) + coalesce(f.features_30d, 0)
        + coalesce(t.open_tickets, 0) + coalesce(s.answers, 0)
        + coalesce(extract(epoch FROM act.first_usage_at)::bigint, 0) + coalesce(r.seats, 0))
    FROM scoring.health a
    LEFT JOIN scoring.activity act USING (account_id)
    LEFT JOIN scoring.accounts r USING (account_id)
    LEFT JOIN (SELECT account_id, count(*) AS n, sum(usage_events) AS usage,
            sum(tickets_opened) FILTER (WHERE day > $1::date - 7) AS tickets
        FROM scoring.account_days WHERE day > $1::date - 35 GROUP BY account_id) d
        USING (account_id)
    LEFT JOIN (SELECT account_id,
            count(*) FILTER (WHERE anchor_day > $2 - 7) AS users_7d,
            count(*) FILTER (WHERE anchor_day > $2 - 60) AS users_30d
        FROM scoring.account_users GROUP BY account_id) u USING (account_id)
    LEFT JOIN (SELECT account_id, count(*) FILTER (WHERE anchor_day > $2 - 60) AS features_30d
        FROM scoring.account_features GROUP BY account_id) f USING (account_id)
    LEFT JOIN (SELECT account_id, count(*) AS open_tickets FROM scoring.tickets
        WHERE status NOT IN ('solved', 'closed') GROUP BY account_id) t USING (account_id)
    LEFT JOIN (SELECT account_id, sum(nps_answers) AS answers FROM scoring.survey_days
        WHERE day > $1::date - {SENTIMENT_WINDOW_DAYS} GROUP BY account_id) s
        USING (account_id)
"""  # noqa: S608 - the interpolated value is a constant


def _sweeper(pool: Any, clock: FixedClock) -> tuple[Scorer, Sweeper]:
    scorer = Scorer(health_model.load(health_model.DEFAULT_MODEL_FILE), score_delta=10)
    sweeper = Sweeper(
        scorer,
        pool,
        clock,
        interval_seconds=300,
        chunk=2000,
        horizons=Horizons(timedelta(days=8), timedelta(days=400), timedelta(days=730)),
        concurrency=2,
    )
    return scorer, sweeper


async def seed(url: str, accounts: int, now: datetime) -> dict[str, Any]:
    pool = await connect.create_pool(url, size=4, application_name="bench-sweeper")
    try:
        started = time.perf_counter()
        async with pool.acquire() as conn:
            await conn.execute(
                SEED.format(
                    now=f"timestamptz '{now.isoformat()}'",
                    today=f"date '{now.date().isoformat()}'",
                    accounts=int(accounts),
                    anchor=now.date().toordinal(),
                )
            )
            await conn.execute(
                "INSERT INTO scoring.dirty_accounts (account_id) "
                "SELECT account_id FROM scoring.accounts"
            )
            await conn.execute("ANALYZE")
            rows = await conn.fetchval("SELECT count(*) FROM scoring.account_days")
        seeded = time.perf_counter() - started
        scorer, _ = _sweeper(pool, FixedClock(now))
        started = time.perf_counter()
        first = await scorer.drain_queue(pool, now, chunk=2000)
        async with pool.acquire() as conn:
            await conn.execute("TRUNCATE scoring.outbox")
            await conn.execute("VACUUM ANALYZE")
        return {
            "accounts": first.accounts,
            "daily_rows": rows,
            "seed_seconds": seeded,
            "first_scoring_seconds": time.perf_counter() - started,
        }
    finally:
        await pool.close()


async def sweep(url: str, as_of: datetime) -> dict[str, Any]:
    pool = await connect.create_pool(url, size=4, application_name="bench-sweeper")
    try:
        _, sweeper = _sweeper(pool, FixedClock(as_of))
        cpu = time.process_time()
        result = await sweeper.sweep(as_of)
        return {
            "due": result.due,
            "accounts": result.accounts,
            "seconds": result.seconds,
            "changes": result.changes,
            "cpu_seconds": time.process_time() - cpu,
        }
    finally:
        await pool.close()


async def raw(url: str, as_of: datetime) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(connect.asyncpg_dsn(url))
    try:
        await conn.execute("SET max_parallel_workers_per_gather = 0")  # one pass, one core
        started = time.perf_counter()
        row = await conn.fetchrow(RAW_PASS, as_of.date(), as_of.date().toordinal())
        return {"accounts": row[0], "seconds": time.perf_counter() - started}
    finally:
        await conn.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sweeper")
    parser.add_argument("command", choices=["seed", "sweep", "raw"])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--now", default=None, help="ISO time of the seed (default: now)")
    parser.add_argument(
        "--later-minutes", type=float, default=5.0, help="sweep / raw pass this long after --now"
    )
    args = parser.parse_args(argv)
    now = datetime.fromisoformat(args.now) if args.now else datetime.now(UTC).replace(microsecond=0)
    later = now + timedelta(minutes=args.later_minutes)
    if args.command == "seed":
        result = asyncio.run(seed(args.database_url, args.accounts, now))
    elif args.command == "sweep":
        result = asyncio.run(sweep(args.database_url, later))
    else:
        result = asyncio.run(raw(args.database_url, later))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
