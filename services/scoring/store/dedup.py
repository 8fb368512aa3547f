"""Exactly-once consumption: the dedup key of an event and claiming it in ``processed_events``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from hashlib import blake2b

import asyncpg


def event_hash(event_id: str) -> bytes:
    """The dedup key of an event id: 16 bytes of BLAKE2b (collisions: ~n²/2¹²⁹, never)."""
    return blake2b(event_id.encode(), digest_size=16).digest()


async def claim_events(
    conn: asyncpg.Connection, events: Sequence[tuple[bytes, datetime]]
) -> set[bytes] | None:
    """Record event ids (:func:`event_hash`) as processed; call inside a transaction.

    Returns ``None`` when every one was new — the common case, taken with one ``COPY`` into
    the table, which the unique index refuses as a whole if any id is already there — or else
    the set of the new ones (a second, slower statement that skips the known ids). A concurrent
    transaction claiming the same id makes the other wait for it, then see it: exact either way.
    """
    if not events:
        return None
    ordered = sorted(events)
    try:
        async with conn.transaction():  # a savepoint: a refused COPY leaves the rest intact
            await conn.copy_records_to_table(
                "processed_events", schema_name="scoring", records=ordered
            )
        return None
    except asyncpg.UniqueViolationError:
        pass
    rows = await conn.fetch(
        """
        INSERT INTO scoring.processed_events (event_hash, occurred_at)
        SELECT * FROM unnest($1::bytea[], $2::timestamptz[])
        ON CONFLICT (event_hash) DO NOTHING
        RETURNING event_hash
        """,
        [h for h, _ in ordered],
        [at for _, at in ordered],
    )
    return {row[0] for row in rows}
