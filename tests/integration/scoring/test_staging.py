"""The per-connection staging tables against the real PostgreSQL: a merge empties what it
read, a rolled-back batch stages nothing, and the space of merged rows is given back once it
passes the limit — not before, and not at every commit."""

from __future__ import annotations

import asyncpg
import pytest

from services.scoring import aggregate
from services.scoring.store import dirty, staging, writes
from tests.unit.scoring.builders import usage

COUNT_STAGED = "SELECT " + " + ".join(f"(SELECT count(*) FROM {t})" for t in staging.TABLES)  # noqa: S608
SIZE = "SELECT sum(pg_relation_size(t::regclass)) FROM unnest($1::text[]) AS t"


async def test_a_merge_empties_its_staging_table_and_a_rollback_stages_nothing(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        async with conn.transaction():
            batch = aggregate.coalesce([usage("acme", event_id="e1"), usage("zeta")])
            assert await writes.apply_aggregates(conn, batch) > 0
            await dirty.mark_dirty(conn, ["acme", "zeta"])
            assert await conn.fetchval(COUNT_STAGED) == 0
        with pytest.raises(RuntimeError):
            await _marks_then_fails(conn)
        assert await conn.fetchval(COUNT_STAGED) == 0, "the tables outlive a commit, empty"
        queued = await conn.fetch("SELECT account_id FROM scoring.dirty_accounts")
        days = await conn.fetchval("SELECT count(DISTINCT account_id) FROM scoring.account_days")
    assert sorted(r[0] for r in queued) == ["acme", "zeta"]
    assert days == 2


async def _marks_then_fails(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        await dirty.mark_dirty(conn, ["rolled-back"])
        raise RuntimeError("the batch fails after its marks")


async def test_the_space_of_merged_rows_is_given_back_past_the_limit_not_before(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with pool.acquire() as conn:
        for round_ in range(3):  # each merge leaves its rows' space behind
            async with conn.transaction():
                await dirty.mark_dirty(conn, [f"a{round_}-{n:04}" for n in range(500)])
        used = await conn.fetchval(SIZE, list(staging.TABLES))
        assert used > 0
        monkeypatch.setattr(staging, "RECLAIM_BYTES", used)  # at the limit: kept
        async with conn.transaction():
            await staging.prepare(conn)
        assert await conn.fetchval(SIZE, list(staging.TABLES)) == used
        monkeypatch.setattr(staging, "RECLAIM_BYTES", used - 1)  # past it: given back
        async with conn.transaction():
            await staging.prepare(conn)
        assert await conn.fetchval(SIZE, list(staging.TABLES)) == 0
        async with conn.transaction():  # and the tables still work
            assert await dirty.mark_dirty(conn, ["after"]) == 1
        assert await conn.fetchval(
            "SELECT count(*) FROM scoring.dirty_accounts WHERE account_id = 'after'"
        )
