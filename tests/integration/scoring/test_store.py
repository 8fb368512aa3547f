"""The handler and the store against the real PostgreSQL: aggregates, dedup, rescoring."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from services.scoring.handler import BatchHandler
from services.scoring.scorer import Scorer
from services.scoring.store import scores
from shared.clock import FixedClock
from tests.unit.scoring.builders import NOW, account, records, steady_usage, ticket, usage


async def test_a_steady_account_is_scored_green_with_every_component_explained(
    pool: asyncpg.Pool, handler: BatchHandler, scorer: Scorer, clock: FixedClock
) -> None:
    await handler(records(account("acme", seats=6), *steady_usage("acme")))
    done = await scorer.drain_queue(pool, clock.now())
    assert done.accounts == 1
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT score, band, snapshot::text FROM scoring.health")
    assert row["band"] == "green", row["snapshot"]


async def test_duplicate_event_ids_count_once(pool: asyncpg.Pool, handler: BatchHandler) -> None:
    first = usage("acme", event_id="same", at=NOW - timedelta(hours=2))
    again = usage("acme", event_id="same", at=NOW - timedelta(hours=2))
    await handler(records(first, again))
    await handler(records(again))
    async with pool.acquire() as conn:
        total = await conn.fetchval("SELECT sum(usage_events) FROM scoring.account_days")
    assert total == 1


async def test_a_ticket_keeps_its_latest_state_whatever_the_arrival_order(
    pool: asyncpg.Pool, handler: BatchHandler
) -> None:
    solved = ticket("acme", ticket_id="t9", action="solved", status="solved", at=NOW)
    opened = ticket("acme", ticket_id="t9", at=NOW - timedelta(days=1))
    await handler(records(solved))
    await handler(records(opened))
    async with pool.acquire() as conn:
        status = await conn.fetchval("SELECT status FROM scoring.tickets WHERE ticket_id = 't9'")
    assert status == "solved"


async def test_the_last_published_change_is_read_through_its_index_past_daily_points(
    pool: asyncpg.Pool, handler: BatchHandler, scorer: Scorer, clock: FixedClock
) -> None:
    await handler(records(account("acme", seats=6), *steady_usage("acme")))
    await scorer.drain_queue(pool, clock.now())  # the first score: a published change
    async with pool.acquire() as conn:
        published = await conn.fetchval("SELECT score FROM scoring.health_history")
        # 60 later daily points, none of them a change (a steady account)
        await conn.execute(
            """
            INSERT INTO scoring.health_history (account_id, as_of, model_version, score, band,
                triggers, change_id, snapshot, moved_by)
            SELECT account_id, as_of + d * interval '1 day', model_version, score - 1, band,
                '{}', NULL, snapshot, NULL
            FROM scoring.health_history, generate_series(1, 60) AS d
            """
        )
        async with conn.transaction():
            stored = await scores.lock_health(conn, ["acme"])
            await conn.execute("SET LOCAL enable_seqscan = off")  # a 61-row table otherwise
            plan = "\n".join(
                r[0] for r in await conn.fetch("EXPLAIN " + scores.LOCK_HEALTH_SQL, ["acme"], None)
            )
    assert stored["acme"].published_score == published
    assert "health_history_changes" in plan, plan
