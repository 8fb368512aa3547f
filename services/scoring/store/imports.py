"""The bulk path of ``churnwatch import-history``: past events straight into the aggregates.

A chunk of input (tens of thousands of events) is one transaction:

1. :func:`begin_chunk` records the chunk's marker (a digest of its events' dedup keys); a
   chunk already committed by an earlier run is skipped whole;
2. :func:`claim` records every event's digest in ``imported_events`` (one ``COPY`` when all are
   new) — an event that an earlier import counted, in any chunk of any file, is dropped; the
   events inside the live dedup horizon are also claimed in ``processed_events``
   (``dedup.claim_events``), so the live consumer drops them when it sees them later, and the
   import drops the ones the live consumer already counted;
3. the new events, coalesced per account and day (``aggregate.coalesce``), are merged with the
   live path's own set-based merges (``writes.apply_aggregates``: one binary ``COPY`` into a
   staging table and one merge per table).

The tables (``imported_events``, ``import_chunks``) are declared in ``tables``. History points
computed offline go in with ``scores.write_health`` (history only: nothing is
written to the outbox, so an import notifies nobody).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from operator import itemgetter

import asyncpg

from services.scoring.store.tables import SWEEP_LOCK

# The moment of an imported day's history point: the last microsecond of the day (UTC). The
# service never scores at that instant, so these points are told apart from live ones.
DAY_END = "23:59:59.999999"


async def begin_chunk(conn: asyncpg.Connection, chunk_hash: bytes, events: int) -> bool:
    """Mark the chunk as imported (inside its transaction); False when it already was."""
    inserted = await conn.fetchval(
        """
        INSERT INTO scoring.import_chunks (chunk_hash, events, counted) VALUES ($1, $2, 0)
        ON CONFLICT (chunk_hash) DO NOTHING RETURNING true
        """,
        chunk_hash,
        events,
    )
    return bool(inserted)


async def finish_chunk(conn: asyncpg.Connection, chunk_hash: bytes, counted: int) -> None:
    await conn.execute(
        "UPDATE scoring.import_chunks SET counted = $2 WHERE chunk_hash = $1", chunk_hash, counted
    )


async def claim(
    conn: asyncpg.Connection, events: Sequence[tuple[bytes, datetime]]
) -> set[bytes] | None:
    """Record imported event digests; ``None`` when all were new, else the set of the new ones.

    The same two steps as ``dedup.claim_events``: one ``COPY`` (refused as a whole by the
    primary key when any digest is already there), else an insert that skips the known ones.
    """
    if not events:
        return None
    ordered = sorted(events, key=itemgetter(0))  # index order (keys are unique)
    try:
        async with conn.transaction():  # a savepoint: a refused COPY leaves the rest intact
            await conn.copy_records_to_table(
                "imported_events", schema_name="scoring", records=ordered
            )
        return None
    except asyncpg.UniqueViolationError:
        pass
    rows = await conn.fetch(
        """
        INSERT INTO scoring.imported_events (event_hash, occurred_at)
        SELECT * FROM unnest($1::bytea[], $2::timestamptz[])
        ON CONFLICT (event_hash) DO NOTHING
        RETURNING event_hash
        """,
        [h for h, _ in ordered],
        [at for _, at in ordered],
    )
    return {row[0] for row in rows}


async def forget_before(conn: asyncpg.Connection, before: datetime) -> int:
    """Drop the digests of imported events older than ``before`` (past the daily rows'
    retention: the rows they were counted in are purged by the sweep too)."""
    status = await conn.execute(
        "DELETE FROM scoring.imported_events WHERE occurred_at < $1", before
    )
    return int(status.split()[-1])


async def live_history_since(
    conn: asyncpg.Connection, account_ids: Sequence[str]
) -> dict[str, datetime]:
    """Per account, its first history point that the service itself scored (not an imported
    day-end point): imported history stops before that day."""
    rows = await conn.fetch(
        f"""
        SELECT account_id, min(as_of) FROM scoring.health_history
        WHERE account_id = ANY($1::text[])
            AND (as_of AT TIME ZONE 'UTC')::time <> time '{DAY_END}'
        GROUP BY account_id
        """,  # noqa: S608 - DAY_END is a constant
        list(account_ids),
    )
    return {row[0]: row[1] for row in rows}


async def hold_sweep(conn: asyncpg.Connection) -> bool:
    """Take the sweep's session lock (so no sweep rescores half-imported accounts); release it
    with ``sweeps.sweep_unlock``. False when a sweep holds it now."""
    locked: bool = await conn.fetchval("SELECT pg_try_advisory_lock($1)", SWEEP_LOCK)
    return locked


async def counts(conn: asyncpg.Connection) -> dict[str, int]:
    """What imports have recorded so far (for logs and tests)."""
    row = await conn.fetchrow(
        """
        SELECT (SELECT count(*) FROM scoring.import_chunks) AS chunks,
            (SELECT coalesce(sum(counted), 0) FROM scoring.import_chunks) AS counted,
            (SELECT count(*) FROM scoring.imported_events) AS events
        """
    )
    return {
        "chunks": int(row["chunks"]),
        "counted": int(row["counted"]),
        "events": int(row["events"]),
    }
