"""Retention: old rows deleted in bounded batches (each a short statement, so a purge never
holds locks for long nor bloats one transaction).

What goes, and after which horizon (``ALERTS_RETAIN_*``, see docs/alerts.md):

- ``alerts``             resolved alerts, by ``resolved_at`` (clock time)
- ``outbox``             finished rows (sent, failed, fallen back), by ``created_at`` (real time)
- ``used_links``         one-click links, by ``expires_at`` (an expired link is refused anyway)
- ``processed_changes``  the dedup set of health changes, by ``processed_at`` (real time)
- ``score_history``      scores, by ``as_of`` (clock time)
- ``digest_items``       diverted alerts no digest showed (the person had no destination)
- ``alert_budget``       per-day counts, by ``day``
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class Purge:
    """One table's purge: the condition that makes a row old (``:cutoff`` bound)."""

    table: str
    old: str


PURGES: tuple[Purge, ...] = (
    Purge("alerts", "state = 'resolved' AND resolved_at < :cutoff"),
    Purge("outbox", "state IN ('sent', 'failed', 'fallen_back') AND created_at < :cutoff"),
    Purge("used_links", "expires_at < :cutoff"),
    Purge("processed_changes", "processed_at < :cutoff"),
    Purge("score_history", "as_of < :cutoff"),
    Purge("digest_items", "created_at < :cutoff"),
    Purge("alert_budget", "day < CAST(:cutoff AS date)"),
)
BY_TABLE = {p.table: p for p in PURGES}


async def purge_batch(conn: AsyncConnection, table: str, cutoff: datetime, limit: int) -> int:
    """Delete at most ``limit`` old rows of ``table``; returns how many went."""
    purge = BY_TABLE[table]
    result = await conn.execute(
        text(
            f"DELETE FROM alerts.{purge.table} WHERE ctid = ANY(ARRAY("  # noqa: S608 (constants)
            f"SELECT ctid FROM alerts.{purge.table} WHERE {purge.old} LIMIT :limit "
            "FOR UPDATE SKIP LOCKED))"
        ),
        {"cutoff": cutoff, "limit": limit},
    )
    return int(result.rowcount)
