"""The outbox relay's queries: health changes committed but not yet on Kafka."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from services.scoring.store.tables import RELAY_LOCK


@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    account_id: str
    payload: bytes


async def try_relay_lock(conn: asyncpg.Connection) -> bool:
    """One relay at a time across instances (held until the transaction ends)."""
    locked: bool = await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK)
    return locked


async def pending_changes(conn: asyncpg.Connection, limit: int) -> list[Pending]:
    rows = await conn.fetch(
        "SELECT seq, account_id, payload FROM scoring.outbox ORDER BY seq LIMIT $1", limit
    )
    return [Pending(r["seq"], r["account_id"], r["payload"]) for r in rows]


async def forget_published(conn: asyncpg.Connection, seqs: Sequence[int]) -> None:
    await conn.execute("DELETE FROM scoring.outbox WHERE seq = ANY($1::bigint[])", list(seqs))


async def outbox_size(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM scoring.outbox")
    return count
