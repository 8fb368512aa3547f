"""Health: the ``processed_changes`` dedup set, the latest health per account and a short
score history; and the purge of old rows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.decide import Health
from services.alerts.messages import Move
from services.alerts.store.tables import (
    account_health,
    from_row,
    outbox,
    processed_changes,
    score_history,
)


async def claim_changes(conn: AsyncConnection, changes: Sequence[tuple[str, str]]) -> set[str]:
    """Record (change_id, account_id) pairs; returns the ids not seen before."""
    if not changes:
        return set()
    stmt = (
        insert(processed_changes)
        .values([{"change_id": c, "account_id": a} for c, a in changes])
        .on_conflict_do_nothing(index_elements=[processed_changes.c.change_id])
        .returning(processed_changes.c.change_id)
    )
    return {r[0] for r in await conn.execute(stmt)}


async def load_health(conn: AsyncConnection, account_ids: Iterable[str]) -> dict[str, Health]:
    """The latest health known per account (accounts without one are left out)."""
    ids = list(set(account_ids))
    if not ids:
        return {}
    rows = await conn.execute(select(account_health).where(account_health.c.account_id.in_(ids)))
    return {
        r["account_id"]: from_row(
            Health,
            r,
            reasons=tuple(r["reasons"]),
            moved_by=tuple(Move.from_json(m) for m in r["moved_by"]),
        )
        for r in rows.mappings()
    }


_HEALTH_COLUMNS = [c.name for c in account_health.c if c.name != "account_id"]


async def upsert_health(conn: AsyncConnection, healths: Sequence[tuple[str, Health]]) -> None:
    """Keep, per account, the health with the latest ``as_of``."""
    if not healths:
        return
    stmt = insert(account_health).values(
        [
            {
                "account_id": account_id,
                "as_of": h.as_of,
                "score": h.score,
                "band": h.band,
                "before_score": h.before_score,
                "before_band": h.before_band,
                "reasons": list(h.reasons),
                "days_since_activity": h.days_since_activity,
                "change_id": h.change_id,
                "moved_by": [m.to_json() for m in h.moved_by],
            }
            for account_id, h in healths
        ]
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[account_health.c.account_id],
            set_={
                c.name: stmt.excluded[c.name] for c in account_health.c if c.name != "account_id"
            },
            where=account_health.c.as_of <= stmt.excluded.as_of,
        )
    )


async def insert_history(
    conn: AsyncConnection, points: Sequence[tuple[str, datetime, float]]
) -> None:
    """Add (account_id, as_of, score) points; a point already there is kept."""
    if points:
        await conn.execute(
            insert(score_history)
            .values([{"account_id": a, "as_of": at, "score": s} for a, at, s in points])
            .on_conflict_do_nothing()
        )


async def load_history(
    conn: AsyncConnection, account_ids: Iterable[str], since: datetime
) -> dict[str, list[tuple[datetime, float]]]:
    ids = list(set(account_ids))
    found: dict[str, list[tuple[datetime, float]]] = {a: [] for a in ids}
    if not ids:
        return found
    rows = await conn.execute(
        select(score_history.c.account_id, score_history.c.as_of, score_history.c.score).where(
            score_history.c.account_id.in_(ids), score_history.c.as_of >= since
        )
    )
    for account_id, as_of, score in rows:
        found[account_id].append((as_of, score))
    return found


async def purge(conn: AsyncConnection, now: datetime, *, keep: timedelta) -> None:
    """Forget dedup ids, score history and finished outbox rows older than ``keep``.

    Alerts themselves (resolved ones included) are kept: the API lists them."""
    cutoff = now - keep
    await conn.execute(delete(processed_changes).where(processed_changes.c.processed_at < cutoff))
    await conn.execute(delete(score_history).where(score_history.c.as_of < cutoff))
    await conn.execute(
        delete(outbox).where(
            outbox.c.state.in_(["sent", "failed", "fallen_back"]), outbox.c.created_at < cutoff
        )
    )
