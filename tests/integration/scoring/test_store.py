"""The handler and the store against the real PostgreSQL: aggregates, dedup, rescoring."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from services.scoring.handler import BatchHandler
from services.scoring.scorer import Scorer
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
