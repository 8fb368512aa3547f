"""Rescoring's reads and writes: lock the current scores; write scores, history and outbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class StoredHealth:
    account_id: str
    model_version: str
    as_of: datetime
    band_since: datetime
    snapshot: bytes
    published_score: float | None = None  # the score of the last health change published
    published_silence: float | None = None  # and its days since activity
    due: bool = True  # its next_eval_at is at or before the ``due_by`` asked for


# The accounts' current scores, locked in key order, each with its last published change: its
# newest history point with a change_id, found through the partial index
# health_history_changes (migration 0006), not by walking back through the daily points.
LOCK_HEALTH_SQL = """
    SELECT h.account_id, h.model_version, h.as_of, h.band_since, h.snapshot::text AS snapshot,
        p.score AS published_score,
        (p.snapshot -> 'signals' ->> 'days_since_activity')::float8 AS published_silence,
        $2::timestamptz IS NULL OR h.next_eval_at <= $2 AS due
    FROM scoring.health h
    LEFT JOIN LATERAL (
        SELECT score, snapshot FROM scoring.health_history
        WHERE account_id = h.account_id AND change_id IS NOT NULL
        ORDER BY as_of DESC LIMIT 1
    ) p ON true
    WHERE h.account_id = ANY($1::text[])
    ORDER BY h.account_id FOR UPDATE OF h
    """


async def lock_health(
    conn: asyncpg.Connection, account_ids: Sequence[str], due_by: datetime | None = None
) -> dict[str, StoredHealth]:
    """Lock the accounts' current scores (in key order) and return them, each with the score
    of its last published change (its newest history point with a ``change_id``) and whether
    it is due by ``due_by`` (always, without one)."""
    rows = await conn.fetch(LOCK_HEALTH_SQL, list(account_ids), due_by)
    return {
        r["account_id"]: StoredHealth(
            r["account_id"],
            r["model_version"],
            r["as_of"],
            r["band_since"],
            r["snapshot"].encode(),
            r["published_score"],
            r["published_silence"],
            r["due"],
        )
        for r in rows
    }


@dataclass(frozen=True, slots=True)
class HealthRow:
    account_id: str
    model_version: str
    profile: str
    as_of: datetime
    score: float
    band: str
    band_since: datetime
    partial: bool
    stale: bool
    top_reason: str | None
    snapshot: str
    # when time alone can next change the score (services.scoring.due); None: due at once
    next_eval_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class HistoryRow:
    account_id: str
    as_of: datetime
    model_version: str
    score: float
    band: str
    triggers: list[str]
    change_id: str | None
    snapshot: str
    moved_by: str | None


async def write_health(
    conn: asyncpg.Connection,
    current: Sequence[HealthRow],
    history: Sequence[HistoryRow],
    changes: Sequence[tuple[str, str, bytes]],
) -> None:
    """Current scores, history points and outbox entries: one statement each."""
    if current:
        await conn.execute(
            """
            INSERT INTO scoring.health AS h (account_id, model_version, profile, as_of, score,
                band, band_since, partial, stale, top_reason, snapshot, next_eval_at)
            SELECT a, m, p, o, s, b, bs, pa, st, t, sn, coalesce(n, '-infinity')
            FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[],
                $5::float8[], $6::text[], $7::timestamptz[], $8::bool[], $9::bool[],
                $10::text[], $11::json[], $12::timestamptz[])
                AS u(a, m, p, o, s, b, bs, pa, st, t, sn, n)
            ON CONFLICT (account_id) DO UPDATE SET
                model_version = excluded.model_version, profile = excluded.profile,
                as_of = excluded.as_of, score = excluded.score, band = excluded.band,
                band_since = excluded.band_since, partial = excluded.partial,
                stale = excluded.stale, top_reason = excluded.top_reason,
                snapshot = excluded.snapshot, next_eval_at = excluded.next_eval_at
            WHERE h.as_of <= excluded.as_of
            """,
            [h.account_id for h in current],
            [h.model_version for h in current],
            [h.profile for h in current],
            [h.as_of for h in current],
            [h.score for h in current],
            [h.band for h in current],
            [h.band_since for h in current],
            [h.partial for h in current],
            [h.stale for h in current],
            [h.top_reason for h in current],
            [h.snapshot for h in current],
            [h.next_eval_at for h in current],
        )
    if history:
        await conn.execute(
            """
            INSERT INTO scoring.health_history (account_id, as_of, model_version, score, band,
                triggers, change_id, snapshot, moved_by)
            SELECT h.account_id, h.as_of, h.model_version, h.score, h.band,
                string_to_array(h.triggers, ','), h.change_id, h.snapshot, h.moved_by
            FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::float8[], $5::text[],
                $6::text[], $7::text[], $8::json[], $9::json[])
                AS h(account_id, as_of, model_version, score, band, triggers, change_id,
                     snapshot, moved_by)
            ON CONFLICT (account_id, as_of) DO UPDATE SET
                model_version = excluded.model_version, score = excluded.score,
                band = excluded.band, triggers = excluded.triggers,
                change_id = coalesce(excluded.change_id, health_history.change_id),
                snapshot = excluded.snapshot,
                moved_by = coalesce(excluded.moved_by, health_history.moved_by)
            """,
            [h.account_id for h in history],
            [h.as_of for h in history],
            [h.model_version for h in history],
            [h.score for h in history],
            [h.band for h in history],
            [",".join(h.triggers) for h in history],
            [h.change_id for h in history],
            [h.snapshot for h in history],
            [h.moved_by for h in history],
        )
    if changes:
        await conn.execute(
            """
            INSERT INTO scoring.outbox (change_id, account_id, payload)
            SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])
            ON CONFLICT (change_id) DO NOTHING
            """,
            [c[0] for c in changes],
            [c[1] for c in changes],
            [c[2] for c in changes],
        )
