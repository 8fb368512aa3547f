"""Health: the ``processed_changes`` dedup set, the latest health per account and a short
score history; when each account is next due a time-driven evaluation (``next_eval_at``);
the model rollouts counted from re-baselined changes (old rows go in ``store.retention``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.decide import Health, Rebaseline
from services.alerts.messages import Move
from services.alerts.rules import BAND_RANK
from services.alerts.store.tables import (
    account_health,
    from_row,
    grouped,
    model_rollouts,
    processed_changes,
    score_history,
)
from shared.events import Signals


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
            signals=msgspec.convert(r["signals"], Signals),
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
                "signals": msgspec.to_builtins(h.signals),
                "warming_up": h.warming_up,
                "model_version": h.model_version,
            }
            for account_id, h in healths
        ]
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[account_health.c.account_id],
            set_={
                c.name: stmt.excluded[c.name]
                for c in account_health.c
                if c.name not in ("account_id", "next_eval_at")  # set_next_evaluations
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
    if not ids:
        return {}
    rows = await conn.execute(
        select(score_history.c.account_id, score_history.c.as_of, score_history.c.score).where(
            score_history.c.account_id.in_(ids), score_history.c.as_of >= since
        )
    )
    return grouped(rows.mappings(), "account_id", lambda r: (r["as_of"], r["score"]), keys=ids)


# ---------------------------------------------------------------------------------------------
# Time-driven evaluation


async def set_next_evaluations(
    conn: AsyncConnection, next_at: Sequence[tuple[str, datetime | None]]
) -> None:
    """Set each account's ``next_eval_at`` (None: no time-driven evaluation until new data)."""
    if next_at:
        await conn.execute(
            update(account_health)
            .where(account_health.c.account_id == bindparam("a"))
            .values(next_eval_at=bindparam("at")),
            [{"a": a, "at": at} for a, at in next_at],
        )


async def evaluate_soon(conn: AsyncConnection, account_ids: Iterable[str], now: datetime) -> None:
    """Make these accounts due a time-driven evaluation now (their record changed: a renewal
    date or a lifecycle stage)."""
    ids = sorted(set(account_ids))
    if ids:
        await conn.execute(
            update(account_health)
            .where(account_health.c.account_id.in_(ids))
            .values(next_eval_at=now)
        )


async def due_evaluations(conn: AsyncConnection, now: datetime, limit: int) -> list[str]:
    """Up to ``limit`` accounts due a time-driven evaluation, the longest due first."""
    rows = await conn.execute(
        select(account_health.c.account_id)
        .where(account_health.c.next_eval_at <= now)
        .order_by(account_health.c.next_eval_at, account_health.c.account_id)
        .limit(limit)
    )
    return [r[0] for r in rows]


async def still_due(conn: AsyncConnection, account_ids: Sequence[str], now: datetime) -> list[str]:
    """Those of ``account_ids`` still due (read under their locks: another replica may have
    evaluated them since they were listed)."""
    if not account_ids:
        return []
    rows = await conn.execute(
        select(account_health.c.account_id).where(
            account_health.c.account_id.in_(account_ids), account_health.c.next_eval_at <= now
        )
    )
    return sorted(r[0] for r in rows)


async def reset_history(conn: AsyncConnection, resets: Sequence[tuple[str, datetime]]) -> None:
    """Forget each account's score history before the moment given (a model re-baseline)."""
    if resets:
        await conn.execute(
            delete(score_history).where(
                score_history.c.account_id == bindparam("a"), score_history.c.as_of < bindparam("t")
            ),
            [{"a": a, "t": t} for a, t in resets],
        )


# ---------------------------------------------------------------------------------------------
# Model rollouts


@dataclass(frozen=True)
class Rollout:
    model_version: str
    previous_version: str
    first_seen_at: datetime
    accounts: int
    worse: int
    better: int


async def count_rollouts(
    conn: AsyncConnection, rebaselines: Sequence[Rebaseline], now: datetime, wait: timedelta
) -> None:
    """Count re-baselined accounts per model version; a version seen for the first time is
    due its summary ``wait`` from now."""
    counts: Counter[tuple[str, str]] = Counter()
    worse: Counter[str] = Counter()
    better: Counter[str] = Counter()
    for r in rebaselines:
        counts[(r.model_version, r.previous_version)] += 1
        step = BAND_RANK.get(r.after_band, 0) - BAND_RANK.get(r.before_band, 0)
        worse[r.model_version] += step > 0
        better[r.model_version] += step < 0
    if not counts:
        return
    values: dict[str, dict[str, Any]] = {}
    for (version, previous), n in counts.items():  # one row per version (its first previous)
        values.setdefault(
            version,
            {
                "model_version": version,
                "previous_version": previous,
                "first_seen_at": now,
                "summary_due_at": now + wait,
                "accounts": 0,
                "worse": worse[version],
                "better": better[version],
            },
        )["accounts"] += n
    stmt = insert(model_rollouts).values(sorted(values.values(), key=lambda v: v["model_version"]))
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[model_rollouts.c.model_version],
            set_={
                "accounts": model_rollouts.c.accounts + stmt.excluded.accounts,
                "worse": model_rollouts.c.worse + stmt.excluded.worse,
                "better": model_rollouts.c.better + stmt.excluded.better,
            },
        )
    )


async def claim_due_rollouts(conn: AsyncConnection, now: datetime) -> list[Rollout]:
    """Mark the rollouts due a summary as summarised and return them: a rollout is claimed
    once, whichever replica asks first (the row lock and ``summarized_at IS NULL``)."""
    rows = await conn.execute(
        update(model_rollouts)
        .where(model_rollouts.c.summarized_at.is_(None), model_rollouts.c.summary_due_at <= now)
        .values(summarized_at=now)
        .returning(*[model_rollouts.c[f] for f in Rollout.__dataclass_fields__])
    )
    return [from_row(Rollout, r) for r in rows.mappings()]
