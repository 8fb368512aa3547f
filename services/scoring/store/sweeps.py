"""The time-driven sweep's queries: its lock and schedule, the accounts due, the purge."""

from __future__ import annotations

from datetime import date, datetime

import asyncpg

from services.scoring.store.tables import SWEEP_LOCK


async def try_sweep_lock(conn: asyncpg.Connection) -> bool:
    """Session lock: one sweep at a time across instances; release with :func:`sweep_unlock`."""
    locked: bool = await conn.fetchval("SELECT pg_try_advisory_lock($1)", SWEEP_LOCK)
    return locked


async def sweep_unlock(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1)", SWEEP_LOCK)


async def last_sweep(conn: asyncpg.Connection) -> datetime | None:
    started: datetime | None = await conn.fetchval(
        "SELECT as_of FROM scoring.sweeps WHERE name = 'health'"
    )
    return started


async def record_sweep(
    conn: asyncpg.Connection,
    *,
    as_of: datetime,
    started_at: datetime,
    accounts: int,
    seconds: float,
) -> None:
    await conn.execute(
        """
        INSERT INTO scoring.sweeps (name, started_at, finished_at, as_of, accounts, seconds)
        VALUES ('health', $1, now(), $2, $3, $4)
        ON CONFLICT (name) DO UPDATE SET started_at = excluded.started_at,
            finished_at = excluded.finished_at, as_of = excluded.as_of,
            accounts = excluded.accounts, seconds = excluded.seconds
        """,
        started_at,
        as_of,
        accounts,
        seconds,
    )


DueKey = tuple[datetime, str]  # (next_eval_at, account_id): the sweep's keyset position


async def due_accounts_after(
    conn: asyncpg.Connection, as_of: datetime, after: DueKey | None, limit: int
) -> list[DueKey]:
    """The next ``limit`` accounts due by ``as_of`` (``next_eval_at <= as_of``) after ``after``
    in (next_eval_at, account_id) order: a range scan of the ``health_due`` index."""
    if after is None:
        rows = await conn.fetch(
            """
            SELECT next_eval_at, account_id FROM scoring.health WHERE next_eval_at <= $1
            ORDER BY next_eval_at, account_id LIMIT $2
            """,
            as_of,
            limit,
        )
    else:
        rows = await conn.fetch(
            """
            SELECT next_eval_at, account_id FROM scoring.health
            WHERE next_eval_at <= $1 AND (next_eval_at, account_id) > ($2, $3)
            ORDER BY next_eval_at, account_id LIMIT $4
            """,
            as_of,
            after[0],
            after[1],
            limit,
        )
    return [(r[0], r[1]) for r in rows]


async def accounts_per_band(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT band, count(*) FROM scoring.health GROUP BY band")
    return {r[0]: r[1] for r in rows}


async def purge(
    conn: asyncpg.Connection, *, dedup_before: datetime, days_before: date, history_before: datetime
) -> dict[str, int]:
    """Drop what is past every horizon: event ids, old daily rows, old history."""
    deleted: dict[str, int] = {}
    for name, sql, arg in (
        (
            "processed_events",
            "DELETE FROM scoring.processed_events WHERE occurred_at < $1",
            dedup_before,
        ),
        ("account_days", "DELETE FROM scoring.account_days WHERE day < $1", days_before),
        ("survey_days", "DELETE FROM scoring.survey_days WHERE day < $1", days_before),
        ("health_history", "DELETE FROM scoring.health_history WHERE as_of < $1", history_before),
    ):
        status = await conn.execute(sql, arg)
        deleted[name] = int(status.split()[-1])
    return deleted
