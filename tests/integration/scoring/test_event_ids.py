"""Event ids scoped by source and account, and the cut-over from the unscoped keys
(migration 0002), on the real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import msgspec
from alembic import command

from services.scoring.handler import BatchHandler
from services.scoring.store import connect, dedup
from shared import migrations
from shared.clock import FixedClock
from tests.unit.scoring.builders import NOW, records, usage


async def usage_events(pool: asyncpg.Pool) -> dict[str, int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT account_id, sum(usage_events)::int FROM scoring.account_days GROUP BY 1"
        )
    return {r[0]: r[1] for r in rows}


async def claimed(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        count: int = await conn.fetchval("SELECT count(*) FROM scoring.processed_events")
    return count


def test_the_key_tells_apart_what_a_separator_could_not() -> None:
    assert dedup.event_hash("a", "b|c", "d") != dedup.event_hash("a|b", "c", "d")
    assert dedup.event_hash("ab", "c", "d") != dedup.event_hash("a", "bc", "d")
    assert dedup.event_hash("s", "acme", "e1") == dedup.event_hash("s", "acme", "e1")
    assert dedup.event_hash("s", "acme", "e1") != dedup.legacy_hash("e1")
    assert len(dedup.event_hash("s", "acme", "e1")) == 16


async def test_two_sources_or_two_accounts_reusing_an_id_are_both_counted(
    pool: asyncpg.Pool, handler: BatchHandler
) -> None:
    at = NOW - timedelta(hours=1)
    native = usage("acme", at=at, event_id="42")
    segment = msgspec.structs.replace(native, source="segment")
    other_account = usage("globex", at=at, event_id="42")
    await handler(records(native, segment))  # one batch
    await handler(records(other_account))  # another
    assert await usage_events(pool) == {"acme": 2, "globex": 1}
    assert await claimed(pool) == 3


async def test_the_same_source_account_and_id_counts_once(
    pool: asyncpg.Pool, handler: BatchHandler
) -> None:
    event = usage("acme", at=NOW - timedelta(hours=1), event_id="42")
    await handler(records(event, event))
    await handler(records(event))
    assert await usage_events(pool) == {"acme": 1}
    assert await claimed(pool) == 1


async def test_a_fresh_database_has_no_cut_over(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await dedup.legacy_until(conn) is None


async def test_an_event_claimed_before_the_migration_still_dedups_its_redelivery(
    database_url: str,
) -> None:
    config = migrations.config("scoring", database_url)
    await asyncio.to_thread(command.upgrade, config, "0001")
    old = usage("acme", at=NOW - timedelta(days=2), event_id="legacy-1")
    pool = await connect.create_pool(database_url, size=2, application_name="scoring-test")
    try:
        async with pool.acquire() as conn:  # what the previous version wrote for it
            await conn.execute(
                "INSERT INTO scoring.processed_events VALUES ($1, $2)",
                dedup.legacy_hash("legacy-1"),
                old.occurred_at,
            )
        await asyncio.to_thread(command.upgrade, config, "head")
        async with pool.acquire() as conn:
            until = await dedup.legacy_until(conn)
        assert until is not None
        assert until >= old.occurred_at

        clock = FixedClock(NOW)
        handler = BatchHandler(
            pool, clock, max_event_age=timedelta(days=30), future_tolerance=timedelta(hours=1)
        )
        await handler(records(old))  # the redelivery: a duplicate, and not claimed again
        assert await usage_events(pool) == {}
        assert await claimed(pool) == 1

        # After the cut-over the key is scoped: the same id again is a new event.
        clock.current = until + timedelta(hours=2)
        later = usage("acme", at=until + timedelta(hours=1), event_id="legacy-1")
        await handler(records(later, old))
        assert await usage_events(pool) == {"acme": 1}
        # Before it, the legacy key cannot tell sources apart: any event with that id that
        # occurred before the cut-over is taken for the one claimed then (as before the change).
        other_source = msgspec.structs.replace(old, source="segment")
        await handler(records(other_source))
        assert await usage_events(pool) == {"acme": 1}
        assert await claimed(pool) == 2
    finally:
        await pool.close()
