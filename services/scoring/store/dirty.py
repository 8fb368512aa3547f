"""The rescoring queue: accounts whose aggregates changed and wait to be rescored."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

# A per-connection staging table: the ids go in with one binary COPY, then one merge.
_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS stage_accounts (account_id text COLLATE "C" NOT NULL)
    ON COMMIT DELETE ROWS
"""


async def mark_dirty(conn: asyncpg.Connection, account_ids: Iterable[str]) -> int:
    """Queue accounts for rescoring (durable, in the batch's transaction); returns how many."""
    ids = sorted(set(account_ids))
    if not ids:
        return 0
    await conn.execute(_STAGING)
    await conn.copy_records_to_table("stage_accounts", records=[(i,) for i in ids])
    await conn.execute(
        """
        INSERT INTO scoring.dirty_accounts (account_id)
        SELECT account_id FROM stage_accounts ORDER BY account_id
        ON CONFLICT (account_id) DO NOTHING
        """
    )
    return len(ids)


async def take_dirty(conn: asyncpg.Connection, limit: int) -> list[str]:
    """Take up to ``limit`` queued accounts (inside a transaction: put back on rollback)."""
    rows = await conn.fetch(
        """
        DELETE FROM scoring.dirty_accounts WHERE account_id IN (
            SELECT account_id FROM scoring.dirty_accounts
            ORDER BY marked_at, account_id LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING account_id
        """,
        limit,
    )
    return sorted(row[0] for row in rows)


async def dirty_count(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM scoring.dirty_accounts")
    return count
