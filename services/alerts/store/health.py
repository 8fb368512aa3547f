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
from sqlalchemy import bindparam, delete, select, text, update
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
    one_of,
    score_history,
)
from shared.events import Signals

# The batch writes of a consumed batch bind one array per column and ``unnest`` them: the SQL
# text is the same whatever the batch's size, so it is compiled and prepared once. (A
# multi-row VALUES is a new statement per size: compiling its thousands of bound parameters
# took a third of the service's CPU at S3's 600 health changes a second.)

_CLAIM_CHANGES = text(
    "INSERT INTO alerts.processed_changes (change_id, account_id) "
    "SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:accounts AS text[])) "
    "ON CONFLICT (change_id) DO NOTHING RETURNING change_id"
)


async def claim_changes(conn: AsyncConnection, changes: Sequence[tuple[str, str]]) -> set[str]:
    """Record (change_id, account_id) pairs; returns the ids not seen before."""
    if not changes:
        return set()
    result = await conn.execute(
        _CLAIM_CHANGES, {"ids": [c for c, _ in changes], "accounts": [a for _, a in changes]}
    )
    return {r[0] for r in result}


async def load_health(conn: AsyncConnection, account_ids: Iterable[str]) -> dict[str, Health]:
    """The latest health known per account (accounts without one are left out)."""
    ids = list(set(account_ids))
    if not ids:
        return {}
    rows = await conn.execute(
        select(account_health).where(one_of(account_health.c.account_id, ids))
    )
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


_UPSERT_HEALTH = text(
    "INSERT INTO alerts.account_health AS h (account_id, as_of, score, band, before_score, "
    "before_band, reasons, days_since_activity, change_id, moved_by, signals, warming_up, "
    "model_version) "
    "SELECT u.account_id, u.as_of, u.score, u.band, u.before_score, u.before_band, "
    "CAST(u.reasons AS jsonb), u.days_since_activity, u.change_id, CAST(u.moved_by AS jsonb), "
    "CAST(u.signals AS jsonb), u.warming_up, u.model_version FROM unnest("
    "CAST(:account_id AS text[]), CAST(:as_of AS timestamptz[]), CAST(:score AS float8[]), "
    "CAST(:band AS text[]), CAST(:before_score AS float8[]), CAST(:before_band AS text[]), "
    "CAST(:reasons AS text[]), CAST(:days_since_activity AS float8[]), "
    "CAST(:change_id AS text[]), CAST(:moved_by AS text[]), CAST(:signals AS text[]), "
    "CAST(:warming_up AS boolean[]), CAST(:model_version AS text[])) AS u(account_id, as_of, "
    "score, band, before_score, before_band, reasons, days_since_activity, change_id, "
    "moved_by, signals, warming_up, model_version) "
    "ON CONFLICT (account_id) DO UPDATE SET as_of = EXCLUDED.as_of, score = EXCLUDED.score, "
    "band = EXCLUDED.band, before_score = EXCLUDED.before_score, "
    "before_band = EXCLUDED.before_band, reasons = EXCLUDED.reasons, "
    "days_since_activity = EXCLUDED.days_since_activity, change_id = EXCLUDED.change_id, "
    "moved_by = EXCLUDED.moved_by, signals = EXCLUDED.signals, "
    "warming_up = EXCLUDED.warming_up, model_version = EXCLUDED.model_version "
    "WHERE h.as_of <= EXCLUDED.as_of"  # next_eval_at: set_next_evaluations
)


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def upsert_health(conn: AsyncConnection, healths: Sequence[tuple[str, Health]]) -> None:
    """Keep, per account, the health with the latest ``as_of``."""
    if not healths:
        return
    latest: dict[str, Health] = {}  # one row per account: ON CONFLICT touches a row once
    for account_id, h in healths:
        if account_id not in latest or latest[account_id].as_of <= h.as_of:
            latest[account_id] = h
    rows = list(latest.values())
    await conn.execute(
        _UPSERT_HEALTH,
        {
            "account_id": list(latest),
            "as_of": [h.as_of for h in rows],
            "score": [h.score for h in rows],
            "band": [h.band for h in rows],
            "before_score": [h.before_score for h in rows],
            "before_band": [h.before_band for h in rows],
            "reasons": [_json(list(h.reasons)) for h in rows],
            "days_since_activity": [h.days_since_activity for h in rows],
            "change_id": [h.change_id for h in rows],
            "moved_by": [_json([m.to_json() for m in h.moved_by]) for h in rows],
            "signals": [_json(h.signals) for h in rows],
            "warming_up": [h.warming_up for h in rows],
            "model_version": [h.model_version for h in rows],
        },
    )


_INSERT_HISTORY = text(
    "INSERT INTO alerts.score_history (account_id, as_of, score) "
    "SELECT * FROM unnest(CAST(:accounts AS text[]), CAST(:as_of AS timestamptz[]), "
    "CAST(:scores AS float8[])) ON CONFLICT DO NOTHING"
)


async def insert_history(
    conn: AsyncConnection, points: Sequence[tuple[str, datetime, float]]
) -> None:
    """Add (account_id, as_of, score) points; a point already there is kept."""
    if points:
        await conn.execute(
            _INSERT_HISTORY,
            {
                "accounts": [a for a, _, _ in points],
                "as_of": [at for _, at, _ in points],
                "scores": [s for _, _, s in points],
            },
        )


async def load_history(
    conn: AsyncConnection, account_ids: Iterable[str], since: datetime
) -> dict[str, list[tuple[datetime, float]]]:
    ids = list(set(account_ids))
    if not ids:
        return {}
    rows = await conn.execute(
        select(score_history.c.account_id, score_history.c.as_of, score_history.c.score).where(
            one_of(score_history.c.account_id, ids), score_history.c.as_of >= since
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
