"""The scoring service's tables (schema ``scoring``) and every query it runs.

Tables are declared here with SQLAlchemy Core (the migrations in ``migrations/versions``
create them); queries go straight through asyncpg: every write is one set-based statement per
table (``INSERT … SELECT FROM unnest(…) ON CONFLICT …``) over rows already coalesced per key.

What each table holds:

- ``processed_events``: the dedup horizon — a 16-byte digest of every event id taken, kept
  while its ``occurred_at`` is inside the horizon (the events older than that are refused);
- ``account_days`` / ``survey_days``: counters per account and day of ``occurred_at``;
- ``account_users`` / ``account_features``: per account and user (feature), a 62-day bitmask
  of the days it was active (see ``aggregate.DayMask``) — distinct counts stay exact;
- ``tickets``: each ticket's latest state; ``activity``: per account, when it was first seen
  and the day it was last active (the exact time is that day's ``account_days`` row);
- ``accounts`` / ``people``: the latest account and person records (compacted topics);
- ``dirty_accounts``: accounts whose aggregates changed and wait to be rescored;
- ``health``: the current score per account; ``health_history``: every published change and
  the first score of each day; ``outbox``: health changes committed but not yet on Kafka;
- ``sweeps``: when the time-driven sweep last ran (so several instances share one schedule).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from hashlib import blake2b
from typing import Any

import asyncpg
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSON

from services.scoring import aggregate
from services.scoring.health import SENTIMENT_TREND_DAYS, SENTIMENT_WINDOW_DAYS, Facts
from shared.events import AccountRecord, PersonRecord

metadata = MetaData(schema="scoring")

TZ = DateTime(timezone=True)
KEY = Text(collation="C")  # keys compare byte-wise, like Python sorts them

processed_events = Table(
    "processed_events",
    metadata,
    Column("event_hash", LargeBinary, primary_key=True),
    Column("occurred_at", TZ, nullable=False),
)
account_days = Table(
    "account_days",
    metadata,
    Column("account_id", KEY, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("usage_events", Integer, nullable=False),
    Column("usage_quantity", Float, nullable=False),
    Column("tickets_opened", Integer, nullable=False),
    Column("high_urgent_opened", Integer, nullable=False),
    Column("escalations", Integer, nullable=False),
    Column("reopens", Integer, nullable=False),
    Column("last_usage_at", TZ),
    Column("last_feature_at", TZ),
)
survey_days = Table(
    "survey_days",
    metadata,
    Column("account_id", KEY, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("nps_sum", Integer, nullable=False),
    Column("nps_answers", Integer, nullable=False),
    Column("nps_promoters", Integer, nullable=False),
    Column("nps_detractors", Integer, nullable=False),
    Column("csat_sum", Integer, nullable=False),
    Column("csat_answers", Integer, nullable=False),
)
account_users = Table(
    "account_users",
    metadata,
    Column("account_id", KEY, primary_key=True),
    Column("user_id", KEY, primary_key=True),
    Column("anchor_day", Integer, nullable=False),
    Column("days", BigInteger, nullable=False),
)
account_features = Table(
    "account_features",
    metadata,
    Column("account_id", KEY, primary_key=True),
    Column("feature", KEY, primary_key=True),
    Column("anchor_day", Integer, nullable=False),
    Column("days", BigInteger, nullable=False),
)
tickets = Table(
    "tickets",
    metadata,
    Column("account_id", KEY, primary_key=True),
    Column("ticket_id", KEY, primary_key=True),
    Column("priority", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("last_action", Text, nullable=False),
    Column("updated_at", TZ, nullable=False),
    Column("event_id", Text, nullable=False),
)
activity = Table(
    "activity",
    metadata,
    Column("account_id", KEY, primary_key=True),
    Column("known_since", TZ, nullable=False),
    Column("first_usage_at", TZ),
    Column("last_usage_day", Date),
    Column("first_feature_at", TZ),
    Column("last_feature_day", Date),
    Column("last_ticket_at", TZ),
    Column("last_survey_at", TZ),
    Column("nps_latest", SmallInteger),
    Column("nps_latest_at", TZ),
    Column("nps_latest_event_id", Text),
)
accounts = Table(
    "accounts",
    metadata,
    Column("account_id", KEY, primary_key=True),
    Column("name", Text, nullable=False),
    Column("tier", Text),
    Column("seats", Integer),
    Column("arr", Float),
    Column("renewal_date", Date),
    Column("lifecycle_stage", Text),
    Column("csm", Text, index=True),
    Column("account_executive", Text, index=True),
    Column("renewal_owner", Text, index=True),
    Column("updated_at", TZ, nullable=False),
)
people = Table(
    "people",
    metadata,
    Column("person_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("email", Text),
    Column("manager_id", Text),
    Column("time_zone", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("updated_at", TZ, nullable=False),
)
dirty_accounts = Table(
    "dirty_accounts",
    metadata,
    Column("account_id", KEY, primary_key=True),
    Column("marked_at", TZ, nullable=False, server_default=func.now()),
)
health = Table(
    "health",
    metadata,
    Column("account_id", KEY, primary_key=True),
    Column("model_version", Text, nullable=False),
    Column("profile", Text, nullable=False),
    Column("as_of", TZ, nullable=False),
    Column("score", Float, nullable=False),
    Column("band", Text, nullable=False),
    Column("band_since", TZ, nullable=False),
    Column("partial", Boolean, nullable=False),
    Column("stale", Boolean, nullable=False),
    Column("top_reason", Text),
    Column("snapshot", JSON, nullable=False),
    postgresql_with={"fillfactor": 50},
)
health_history = Table(
    "health_history",
    metadata,
    Column("account_id", KEY, primary_key=True),
    Column("as_of", TZ, primary_key=True),
    Column("model_version", Text, nullable=False),
    Column("score", Float, nullable=False),
    Column("band", Text, nullable=False),
    Column("triggers", ARRAY(Text), nullable=False),
    Column("change_id", Text),
    Column("snapshot", JSON, nullable=False),
    Column("moved_by", JSON),
)
outbox = Table(
    "outbox",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("change_id", Text, nullable=False, unique=True),
    Column("account_id", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", TZ, nullable=False, server_default=func.now()),
)
sweeps = Table(
    "sweeps",
    metadata,
    Column("name", Text, primary_key=True),
    Column("started_at", TZ, nullable=False),
    Column("finished_at", TZ),
    Column("as_of", TZ, nullable=False),
    Column("accounts", Integer, nullable=False),
    Column("seconds", Float),
)

# Keys of the advisory locks that make one instance at a time relay or sweep.
RELAY_LOCK = 0x5C0_0001
SWEEP_LOCK = 0x5C0_0002


def asyncpg_dsn(url: str) -> str:
    """``postgresql+asyncpg://…`` (SQLAlchemy's form, used in DATABASE_URL) → asyncpg's."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def create_pool(url: str, *, size: int, application_name: str) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        asyncpg_dsn(url),
        min_size=1,
        max_size=size,
        server_settings={"application_name": application_name},
        command_timeout=120,
    )
    return pool


# ---------------------------------------------------------------------------------------------
# Consuming: dedup, aggregates, records, the rescoring queue


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


# Per-connection staging tables: a batch's rows go in with one binary COPY each (cheap to
# encode, cheap for the server to read) and are merged into the real table by one statement.
_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS stage_days (LIKE scoring.account_days) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_users (LIKE scoring.account_users) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_features (LIKE scoring.account_features)
    ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_activity (LIKE scoring.activity) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_accounts (account_id text COLLATE "C" NOT NULL)
    ON COMMIT DELETE ROWS;
"""

_MERGE_DAYS = """
INSERT INTO scoring.account_days AS d SELECT * FROM stage_days ORDER BY account_id, day
ON CONFLICT (account_id, day) DO UPDATE SET
    usage_events = d.usage_events + excluded.usage_events,
    usage_quantity = d.usage_quantity + excluded.usage_quantity,
    tickets_opened = d.tickets_opened + excluded.tickets_opened,
    high_urgent_opened = d.high_urgent_opened + excluded.high_urgent_opened,
    escalations = d.escalations + excluded.escalations,
    reopens = d.reopens + excluded.reopens,
    last_usage_at = greatest(d.last_usage_at, excluded.last_usage_at),
    last_feature_at = greatest(d.last_feature_at, excluded.last_feature_at)
"""

# Union of day masks; a row whose days are already all set is left alone (no new tuple).
_MERGE_MASKS = """
INSERT INTO scoring.{table} AS m SELECT * FROM {stage} ORDER BY account_id, {key}
ON CONFLICT (account_id, {key}) DO UPDATE SET
    anchor_day = greatest(m.anchor_day, excluded.anchor_day),
    days = scoring.shift_days(m.days, greatest(m.anchor_day, excluded.anchor_day) - m.anchor_day)
         | scoring.shift_days(excluded.days,
               greatest(m.anchor_day, excluded.anchor_day) - excluded.anchor_day)
WHERE excluded.anchor_day > m.anchor_day
   OR scoring.shift_days(excluded.days, m.anchor_day - excluded.anchor_day) & ~m.days <> 0
"""

_MERGE_ACTIVITY = """
INSERT INTO scoring.activity AS a SELECT * FROM stage_activity ORDER BY account_id
ON CONFLICT (account_id) DO UPDATE SET
    known_since = least(a.known_since, excluded.known_since),
    first_usage_at = least(a.first_usage_at, excluded.first_usage_at),
    last_usage_day = greatest(a.last_usage_day, excluded.last_usage_day),
    first_feature_at = least(a.first_feature_at, excluded.first_feature_at),
    last_feature_day = greatest(a.last_feature_day, excluded.last_feature_day),
    last_ticket_at = greatest(a.last_ticket_at, excluded.last_ticket_at),
    last_survey_at = greatest(a.last_survey_at, excluded.last_survey_at),
    nps_latest = CASE WHEN scoring.newer(excluded.nps_latest_at,
        excluded.nps_latest_event_id, a.nps_latest_at, a.nps_latest_event_id)
        THEN excluded.nps_latest ELSE a.nps_latest END,
    nps_latest_event_id = CASE WHEN scoring.newer(excluded.nps_latest_at,
        excluded.nps_latest_event_id, a.nps_latest_at, a.nps_latest_event_id)
        THEN excluded.nps_latest_event_id ELSE a.nps_latest_event_id END,
    nps_latest_at = greatest(a.nps_latest_at, excluded.nps_latest_at)
"""


async def apply_aggregates(
    conn: asyncpg.Connection,
    batch: aggregate.Coalesced,
    *,
    masks: tuple[
        Mapping[tuple[str, str], aggregate.DayMask], Mapping[tuple[str, str], aggregate.DayMask]
    ]
    | None = None,
    activity: Mapping[str, aggregate.Activity] | None = None,
) -> int:
    """Write one batch's coalesced effects: one merge per table, rows in key order.

    ``masks`` (users, features) and ``activity`` replace the batch's own when given: the rows
    left after dropping those that would change nothing (see ``known``). Returns the number of
    rows written.
    """
    users, features = masks if masks is not None else (batch.users, batch.features)
    touched = batch.activity if activity is None else activity
    await conn.execute(_STAGING)
    written = 0
    if batch.days:
        keys = sorted(batch.days)
        rows = [
            (
                k[0],
                k[1],
                (c := batch.days[k]).usage_events,
                c.usage_quantity,
                c.tickets_opened,
                c.high_urgent_opened,
                c.escalations,
                c.reopens,
                c.last_usage_at,
                c.last_feature_at,
            )
            for k in keys
        ]
        await conn.copy_records_to_table("stage_days", records=rows)
        await conn.execute(_MERGE_DAYS)
        written += len(rows)
    if batch.surveys:
        keys = sorted(batch.surveys)
        s = [batch.surveys[k] for k in keys]
        await conn.execute(
            """
            INSERT INTO scoring.survey_days AS d (account_id, day, nps_sum, nps_answers,
                nps_promoters, nps_detractors, csat_sum, csat_answers)
            SELECT * FROM unnest($1::text[], $2::date[], $3::int[], $4::int[], $5::int[],
                $6::int[], $7::int[], $8::int[])
            ON CONFLICT (account_id, day) DO UPDATE SET
                nps_sum = d.nps_sum + excluded.nps_sum,
                nps_answers = d.nps_answers + excluded.nps_answers,
                nps_promoters = d.nps_promoters + excluded.nps_promoters,
                nps_detractors = d.nps_detractors + excluded.nps_detractors,
                csat_sum = d.csat_sum + excluded.csat_sum,
                csat_answers = d.csat_answers + excluded.csat_answers
            """,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [x.nps_sum for x in s],
            [x.nps_answers for x in s],
            [x.nps_promoters for x in s],
            [x.nps_detractors for x in s],
            [x.csat_sum for x in s],
            [x.csat_answers for x in s],
        )
        written += len(keys)
    written += await _merge_masks(conn, "account_users", "user_id", "stage_users", users)
    written += await _merge_masks(conn, "account_features", "feature", "stage_features", features)
    if batch.tickets:
        ticket_keys = sorted(batch.tickets)
        t = [batch.tickets[k] for k in ticket_keys]
        await conn.execute(
            """
            INSERT INTO scoring.tickets AS t (account_id, ticket_id, priority, status,
                last_action, updated_at, event_id)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                $6::timestamptz[], $7::text[])
            ON CONFLICT (account_id, ticket_id) DO UPDATE SET
                priority = excluded.priority, status = excluded.status,
                last_action = excluded.last_action, updated_at = excluded.updated_at,
                event_id = excluded.event_id
            WHERE (excluded.updated_at, excluded.event_id) > (t.updated_at, t.event_id)
            """,
            [k[0] for k in ticket_keys],
            [k[1] for k in ticket_keys],
            [x.priority for x in t],
            [x.status for x in t],
            [x.action for x in t],
            [x.updated_at for x in t],
            [x.event_id for x in t],
        )
        written += len(ticket_keys)
    if touched:
        activity_rows = [
            (
                k,
                (a := touched[k]).known_since,
                a.first_usage_at,
                a.last_usage_day,
                a.first_feature_at,
                a.last_feature_day,
                a.last_ticket_at,
                a.last_survey_at,
                a.nps_latest[2] if a.nps_latest else None,
                a.nps_latest[0] if a.nps_latest else None,
                a.nps_latest[1] if a.nps_latest else None,
            )
            for k in sorted(touched)
        ]
        await conn.copy_records_to_table("stage_activity", records=activity_rows)
        await conn.execute(_MERGE_ACTIVITY)
        written += len(activity_rows)
    return written


async def _merge_masks(
    conn: asyncpg.Connection,
    table: str,
    key: str,
    stage: str,
    masks: Mapping[tuple[str, str], aggregate.DayMask],
) -> int:
    if not masks:
        return 0
    rows = [(k[0], k[1], (m := masks[k]).anchor, m.bits) for k in sorted(masks)]
    await conn.copy_records_to_table(stage, records=rows)
    await conn.execute(_MERGE_MASKS.format(table=table, key=key, stage=stage))
    return len(rows)


async def apply_accounts(
    conn: asyncpg.Connection, latest: Mapping[str, AccountRecord | None]
) -> None:
    """Latest account records (last writer wins by ``updated_at``); None deletes (tombstone)."""
    gone = sorted(k for k, v in latest.items() if v is None)
    kept = [latest[k] for k in sorted(latest) if latest[k] is not None]
    records = [r for r in kept if r is not None]
    if gone:
        await conn.execute("DELETE FROM scoring.accounts WHERE account_id = ANY($1::text[])", gone)
    if not records:
        return
    await conn.execute(
        """
        INSERT INTO scoring.accounts AS a (account_id, name, tier, seats, arr, renewal_date,
            lifecycle_stage, csm, account_executive, renewal_owner, updated_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::float8[],
            $6::date[], $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[])
        ON CONFLICT (account_id) DO UPDATE SET
            name = excluded.name, tier = excluded.tier, seats = excluded.seats,
            arr = excluded.arr, renewal_date = excluded.renewal_date,
            lifecycle_stage = excluded.lifecycle_stage, csm = excluded.csm,
            account_executive = excluded.account_executive,
            renewal_owner = excluded.renewal_owner, updated_at = excluded.updated_at
        WHERE excluded.updated_at >= a.updated_at
        """,
        [r.account_id for r in records],
        [r.name for r in records],
        [r.tier for r in records],
        [r.seats for r in records],
        [r.arr for r in records],
        [r.renewal_date for r in records],
        [r.lifecycle_stage for r in records],
        [r.team.csm for r in records],
        [r.team.account_executive for r in records],
        [r.team.renewal_owner for r in records],
        [r.updated_at for r in records],
    )


async def apply_people(conn: asyncpg.Connection, latest: Mapping[str, PersonRecord | None]) -> None:
    gone = sorted(k for k, v in latest.items() if v is None)
    records = [r for k in sorted(latest) if (r := latest[k]) is not None]
    if gone:
        await conn.execute("DELETE FROM scoring.people WHERE person_id = ANY($1::text[])", gone)
    if not records:
        return
    await conn.execute(
        """
        INSERT INTO scoring.people AS p (person_id, name, email, manager_id, time_zone, active,
            updated_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
            $6::bool[], $7::timestamptz[])
        ON CONFLICT (person_id) DO UPDATE SET
            name = excluded.name, email = excluded.email, manager_id = excluded.manager_id,
            time_zone = excluded.time_zone, active = excluded.active,
            updated_at = excluded.updated_at
        WHERE excluded.updated_at >= p.updated_at
        """,
        [r.person_id for r in records],
        [r.name for r in records],
        [r.email for r in records],
        [r.manager_id for r in records],
        [r.time_zone for r in records],
        [r.active for r in records],
        [r.updated_at for r in records],
    )


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


# ---------------------------------------------------------------------------------------------
# Rescoring: lock, gather facts, write the results


@dataclass(frozen=True, slots=True)
class StoredHealth:
    account_id: str
    model_version: str
    as_of: datetime
    band_since: datetime
    snapshot: bytes


async def lock_health(
    conn: asyncpg.Connection, account_ids: Sequence[str]
) -> dict[str, StoredHealth]:
    """Lock the accounts' current scores (in key order) and return them."""
    rows = await conn.fetch(
        """
        SELECT account_id, model_version, as_of, band_since, snapshot::text AS snapshot
        FROM scoring.health WHERE account_id = ANY($1::text[])
        ORDER BY account_id FOR UPDATE
        """,
        list(account_ids),
    )
    return {
        r["account_id"]: StoredHealth(
            r["account_id"], r["model_version"], r["as_of"], r["band_since"], r["snapshot"].encode()
        )
        for r in rows
    }


FACTS_SQL = f"""
WITH ids AS (SELECT DISTINCT unnest($1::text[]) AS account_id),
d AS (
    SELECT account_id,
        sum(usage_events) FILTER (WHERE day > $2::date - 7) AS usage_events_7d,
        sum(usage_events) FILTER (WHERE day <= $2::date - 7) AS usage_events_prior_4w,
        count(*) FILTER (WHERE day > $2::date - 7 AND usage_events > 0) AS active_days_7d,
        count(*) FILTER (WHERE day <= $2::date - 7 AND usage_events > 0) AS active_days_prior_4w,
        sum(tickets_opened) FILTER (WHERE day > $2::date - 7) AS tickets_opened_7d,
        sum(tickets_opened) FILTER (WHERE day <= $2::date - 7) AS tickets_opened_prior_4w,
        sum(high_urgent_opened) FILTER (WHERE day > $2::date - 7) AS high_urgent_opened_7d,
        sum(escalations) FILTER (WHERE day > $2::date - 30) AS escalations_30d,
        sum(reopens) FILTER (WHERE day > $2::date - 30) AS reopens_30d
    FROM scoring.account_days
    WHERE account_id BETWEEN $4 AND $5 AND account_id = ANY($1::text[])
        AND day > $2::date - 35 AND day <= $2::date
    GROUP BY account_id),
u AS (
    SELECT account_id,
        count(*) FILTER (WHERE scoring.active_in(anchor_day, days, $3::int, 0, 6))
            AS active_users_7d,
        count(*) FILTER (WHERE scoring.active_in(anchor_day, days, $3::int, 7, 13))
        + count(*) FILTER (WHERE scoring.active_in(anchor_day, days, $3::int, 14, 20))
        + count(*) FILTER (WHERE scoring.active_in(anchor_day, days, $3::int, 21, 27))
        + count(*) FILTER (WHERE scoring.active_in(anchor_day, days, $3::int, 28, 34))
            AS active_users_prior_4w,
        count(*) FILTER (WHERE scoring.active_in(anchor_day, days, $3::int, 0, 29))
            AS active_users_30d,
        count(*) FILTER (WHERE scoring.active_in(anchor_day, days, $3::int, 30, 59))
            AS active_users_prior_30d
    FROM scoring.account_users
    WHERE account_id BETWEEN $4 AND $5 AND account_id = ANY($1::text[])
    GROUP BY account_id),
f AS (
    SELECT account_id,
        count(*) FILTER (WHERE scoring.active_in(anchor_day, days, $3::int, 0, 29)) AS features_30d,
        count(*) FILTER (WHERE scoring.active_in(anchor_day, days, $3::int, 30, 59))
            AS features_prior_30d
    FROM scoring.account_features
    WHERE account_id BETWEEN $4 AND $5 AND account_id = ANY($1::text[])
    GROUP BY account_id),
t AS (
    SELECT account_id,
        count(*) AS open_tickets,
        count(*) FILTER (WHERE priority IN ('high', 'urgent')) AS open_high_urgent,
        min(updated_at) FILTER (WHERE priority IN ('high', 'urgent'))
            AS oldest_open_high_urgent_update
    FROM scoring.tickets
    WHERE account_id BETWEEN $4 AND $5 AND account_id = ANY($1::text[])
        AND status NOT IN ('solved', 'closed')
    GROUP BY account_id),
s AS (
    SELECT account_id,
        sum(nps_answers) AS nps_answers,
        sum(nps_promoters) AS nps_promoters,
        sum(nps_detractors) AS nps_detractors,
        sum(nps_sum) FILTER (WHERE day > $2::date - {SENTIMENT_TREND_DAYS}) AS nps_recent_sum,
        sum(nps_answers) FILTER (WHERE day > $2::date - {SENTIMENT_TREND_DAYS})
            AS nps_recent_answers,
        sum(nps_sum) FILTER (WHERE day <= $2::date - {SENTIMENT_TREND_DAYS}) AS nps_prior_sum,
        sum(nps_answers) FILTER (WHERE day <= $2::date - {SENTIMENT_TREND_DAYS})
            AS nps_prior_answers,
        sum(csat_sum) AS csat_sum,
        sum(csat_answers) AS csat_answers
    FROM scoring.survey_days
    WHERE account_id BETWEEN $4 AND $5 AND account_id = ANY($1::text[])
        AND day > $2::date - {SENTIMENT_WINDOW_DAYS} AND day <= $2::date
    GROUP BY account_id)
SELECT ids.account_id,
    a.known_since,
    r.tier, r.lifecycle_stage, r.seats, r.renewal_date,
    a.first_usage_at, a.first_feature_at,
    coalesce(lu.last_usage_at, a.last_usage_day::timestamp AT TIME ZONE 'UTC') AS last_usage_at,
    coalesce(lf.last_feature_at, a.last_feature_day::timestamp AT TIME ZONE 'UTC')
        AS last_feature_at,
    a.last_survey_at, a.nps_latest,
    d.usage_events_7d, d.usage_events_prior_4w, d.active_days_7d, d.active_days_prior_4w,
    d.tickets_opened_7d, d.tickets_opened_prior_4w, d.high_urgent_opened_7d,
    d.escalations_30d, d.reopens_30d,
    u.active_users_7d, u.active_users_prior_4w, u.active_users_30d, u.active_users_prior_30d,
    f.features_30d, f.features_prior_30d,
    t.open_tickets, t.open_high_urgent, t.oldest_open_high_urgent_update,
    s.nps_answers, s.nps_promoters, s.nps_detractors, s.nps_recent_sum, s.nps_recent_answers,
    s.nps_prior_sum, s.nps_prior_answers, s.csat_sum, s.csat_answers
FROM ids
LEFT JOIN (SELECT * FROM scoring.activity WHERE account_id BETWEEN $4 AND $5) a
    USING (account_id)
LEFT JOIN (SELECT * FROM scoring.accounts WHERE account_id BETWEEN $4 AND $5) r
    USING (account_id)
LEFT JOIN d USING (account_id)
LEFT JOIN u USING (account_id)
LEFT JOIN f USING (account_id)
LEFT JOIN t USING (account_id)
LEFT JOIN s USING (account_id)
-- the exact newest usage / feature use: the row of the day activity names (when it was purged,
-- the start of that day: older, so never healthier)
LEFT JOIN scoring.account_days lu
    ON lu.account_id = ids.account_id AND lu.day = a.last_usage_day
LEFT JOIN scoring.account_days lf
    ON lf.account_id = ids.account_id AND lf.day = a.last_feature_day
"""  # noqa: S608 - the interpolated values are integer constants

_COUNTS = (
    "usage_events_7d",
    "usage_events_prior_4w",
    "active_days_7d",
    "active_days_prior_4w",
    "tickets_opened_7d",
    "tickets_opened_prior_4w",
    "high_urgent_opened_7d",
    "escalations_30d",
    "reopens_30d",
    "active_users_7d",
    "active_users_prior_4w",
    "active_users_30d",
    "active_users_prior_30d",
    "features_30d",
    "features_prior_30d",
    "open_tickets",
    "open_high_urgent",
    "nps_answers",
    "nps_promoters",
    "nps_detractors",
    "nps_recent_sum",
    "nps_recent_answers",
    "nps_prior_sum",
    "nps_prior_answers",
    "csat_sum",
    "csat_answers",
)
_AS_IS = (
    "known_since",
    "tier",
    "lifecycle_stage",
    "seats",
    "renewal_date",
    "first_usage_at",
    "last_usage_at",
    "first_feature_at",
    "last_feature_at",
    "last_survey_at",
    "nps_latest",
    "oldest_open_high_urgent_update",
)


async def gather_facts(
    conn: asyncpg.Connection, account_ids: Sequence[str], as_of: datetime
) -> list[Facts]:
    """Everything the model needs about these accounts, as of ``as_of`` (windows end that day)."""
    day = as_of.date()
    ids = sorted(account_ids)
    # The range lets PostgreSQL scan each table's primary key over one interval (the sweep
    # goes through accounts in key order); ANY then picks the accounts asked for.
    rows = await conn.fetch(FACTS_SQL, ids, day, aggregate.day_number(day), ids[0], ids[-1])
    return [facts_from_row(row) for row in rows]


def facts_from_row(row: Mapping[str, Any]) -> Facts:
    values: dict[str, Any] = {name: int(row[name] or 0) for name in _COUNTS}
    values |= {name: row[name] for name in _AS_IS}
    return Facts(account_id=row["account_id"], **values)


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
                band, band_since, partial, stale, top_reason, snapshot)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[],
                $5::float8[], $6::text[], $7::timestamptz[], $8::bool[], $9::bool[],
                $10::text[], $11::json[])
            ON CONFLICT (account_id) DO UPDATE SET
                model_version = excluded.model_version, profile = excluded.profile,
                as_of = excluded.as_of, score = excluded.score, band = excluded.band,
                band_since = excluded.band_since, partial = excluded.partial,
                stale = excluded.stale, top_reason = excluded.top_reason,
                snapshot = excluded.snapshot
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


# ---------------------------------------------------------------------------------------------
# The outbox relay


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


# ---------------------------------------------------------------------------------------------
# The sweep


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


async def scored_accounts_after(conn: asyncpg.Connection, after: str, limit: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT account_id FROM scoring.health WHERE account_id > $1 ORDER BY account_id LIMIT $2",
        after,
        limit,
    )
    return [r[0] for r in rows]


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


# ---------------------------------------------------------------------------------------------
# The read API


async def account_exists(conn: asyncpg.Connection, account_id: str) -> bool:
    found: bool = await conn.fetchval(
        """
        SELECT EXISTS (SELECT 1 FROM scoring.health WHERE account_id = $1)
            OR EXISTS (SELECT 1 FROM scoring.accounts WHERE account_id = $1)
            OR EXISTS (SELECT 1 FROM scoring.activity WHERE account_id = $1)
        """,
        account_id,
    )
    return found


async def current_health(conn: asyncpg.Connection, account_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        """
        SELECT h.account_id, h.model_version, h.profile, h.as_of, h.band_since,
            h.snapshot::text AS snapshot, a.name
        FROM scoring.health h LEFT JOIN scoring.accounts a USING (account_id)
        WHERE h.account_id = $1
        """,
        account_id,
    )
    return row


async def history(
    conn: asyncpg.Connection, account_id: str, start: datetime, end: datetime
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT as_of, model_version, score, band, triggers, change_id,
            snapshot::text AS snapshot, moved_by::text AS moved_by
        FROM scoring.health_history
        WHERE account_id = $1 AND as_of >= $2 AND as_of <= $3
        ORDER BY as_of
        """,
        account_id,
        start,
        end,
    )
    return rows


async def person(conn: asyncpg.Connection, person_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT person_id, name, email, active FROM scoring.people WHERE person_id = $1",
        person_id,
    )
    return row


async def portfolio(
    conn: asyncpg.Connection, owner: str, trend_since: datetime
) -> list[asyncpg.Record]:
    """The owner's accounts (any role) with their score, band and the score at ``trend_since``."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT a.account_id, a.name, a.tier, a.arr, a.renewal_date,
            array_remove(ARRAY[
                CASE WHEN a.csm = $1 THEN 'csm' END,
                CASE WHEN a.account_executive = $1 THEN 'account_executive' END,
                CASE WHEN a.renewal_owner = $1 THEN 'renewal_owner' END], NULL) AS roles,
            h.score, h.band, h.band_since, h.as_of, h.top_reason, h.partial, h.stale,
            (SELECT hh.score FROM scoring.health_history hh
             WHERE hh.account_id = a.account_id AND hh.as_of <= $2
             ORDER BY hh.as_of DESC LIMIT 1) AS score_before
        FROM scoring.accounts a
        LEFT JOIN scoring.health h USING (account_id)
        WHERE a.csm = $1 OR a.account_executive = $1 OR a.renewal_owner = $1
        """,
        owner,
        trend_since,
    )
    return rows


async def account_record(conn: asyncpg.Connection, account_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        """
        SELECT a.*, csm.name AS csm_name, ae.name AS account_executive_name,
            ro.name AS renewal_owner_name
        FROM scoring.accounts a
        LEFT JOIN scoring.people csm ON csm.person_id = a.csm
        LEFT JOIN scoring.people ae ON ae.person_id = a.account_executive
        LEFT JOIN scoring.people ro ON ro.person_id = a.renewal_owner
        WHERE a.account_id = $1
        """,
        account_id,
    )
    return row


async def weekly_usage(
    conn: asyncpg.Connection, account_id: str, last_day: date, weeks: int
) -> list[tuple[date, int, int]]:
    """(week start, usage events, active days) for the ``weeks`` weeks ending on ``last_day``."""
    rows = await conn.fetch(
        """
        SELECT w.n, coalesce(sum(d.usage_events), 0) AS events,
            count(d.day) FILTER (WHERE d.usage_events > 0) AS active_days
        FROM generate_series(0, $3 - 1) AS w(n)
        LEFT JOIN scoring.account_days d
            ON d.account_id = $1 AND d.day <= $2::date - 7 * w.n
            AND d.day > $2::date - 7 * (w.n + 1)
        GROUP BY w.n ORDER BY w.n DESC
        """,
        account_id,
        last_day,
        weeks,
    )
    return [
        (last_day - timedelta(days=7 * r["n"] + 6), int(r["events"]), int(r["active_days"]))
        for r in rows
    ]


async def open_tickets(conn: asyncpg.Connection, account_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """
        SELECT ticket_id, priority, status, last_action, updated_at FROM scoring.tickets
        WHERE account_id = $1 AND status NOT IN ('solved', 'closed')
        ORDER BY CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2
            ELSE 3 END, updated_at DESC
        LIMIT 50
        """,
        account_id,
    )
    return rows
