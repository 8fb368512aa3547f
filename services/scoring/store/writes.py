"""Applying a consumed batch: the coalesced aggregates and the latest account / person records.

Every write is set-based over rows already coalesced per key: each aggregate table's rows go
in with one binary ``COPY`` into a staging table and one merge (:func:`_copy_merge`); the
records with one ``INSERT … SELECT FROM unnest(…)`` upsert each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from operator import attrgetter
from typing import Any

import asyncpg

from services.scoring import aggregate
from services.scoring.store import staging
from shared.events import AccountRecord, PersonRecord

Getter = Callable[[Any], tuple[Any, ...]]


def _getter(names: str) -> Getter:
    """The values of a row's fields, in the order the table's columns take them
    (``team.csm``: a nested field)."""
    split = names.split()
    assert len(split) > 1, "attrgetter of one name gives a value, not a tuple"
    getter: Getter = attrgetter(*split)
    return getter


def _getter_of(kind: type) -> Getter:
    """Every field of a dataclass, in declaration order (the table's columns follow it)."""
    return _getter(" ".join(f.name for f in fields(kind)))


_DAY_COUNTS = _getter_of(aggregate.DayCounts)
_SURVEY_COUNTS = _getter_of(aggregate.SurveyCounts)
_TICKET = _getter("priority status action updated_at event_id")
_ACTIVITY = _getter(
    "known_since first_usage_at last_usage_day first_feature_at last_feature_day last_ticket_at"
    " last_survey_at"
)
_ACCOUNT = _getter(
    "account_id name tier seats arr renewal_date lifecycle_stage team.csm team.account_executive"
    " team.renewal_owner updated_at"
)
_PERSON = _getter("person_id name email manager_id time_zone active updated_at")


def _arrays(rows: Iterable[Sequence[Any]]) -> list[list[Any]]:
    """``unnest``'s arguments: the rows' columns, one array each."""
    return [list(column) for column in zip(*rows, strict=True)]


def _adding(alias: str, counters: Iterable[str]) -> str:
    """``SET`` items of an upsert: each counter adds what the batch brings."""
    return ",\n    ".join(f"{c} = {alias}.{c} + excluded.{c}" for c in counters)


_MERGE_DAYS = f"""{staging.emptying("stage_days")}
INSERT INTO scoring.account_days AS d SELECT * FROM staged ORDER BY account_id, day
ON CONFLICT (account_id, day) DO UPDATE SET
    {_adding("d", aggregate.DAY_COUNTERS)},
    last_usage_at = greatest(d.last_usage_at, excluded.last_usage_at),
    last_feature_at = greatest(d.last_feature_at, excluded.last_feature_at)
"""  # noqa: S608 - the interpolated text is built from constant names

_MERGE_SURVEYS = f"""{staging.emptying("stage_surveys")}
INSERT INTO scoring.survey_days AS d SELECT * FROM staged ORDER BY account_id, day
ON CONFLICT (account_id, day) DO UPDATE SET
    {_adding("d", aggregate.SURVEY_COUNTERS)}
"""  # noqa: S608 - the interpolated text is built from constant names

# The newest ticket state wins by the order aggregate.TicketState.newer_than uses.
_MERGE_TICKETS = f"""{staging.emptying("stage_tickets")}
INSERT INTO scoring.tickets AS t SELECT * FROM staged ORDER BY account_id, ticket_id
ON CONFLICT (account_id, ticket_id) DO UPDATE SET
    priority = excluded.priority, status = excluded.status,
    last_action = excluded.last_action, updated_at = excluded.updated_at,
    event_id = excluded.event_id
WHERE (excluded.updated_at, excluded.event_id COLLATE "C",
       excluded.status COLLATE "C", excluded.priority COLLATE "C",
       excluded.last_action COLLATE "C")
    > (t.updated_at, t.event_id COLLATE "C", t.status COLLATE "C",
       t.priority COLLATE "C", t.last_action COLLATE "C")
"""  # noqa: S608 - the interpolated text is a constant

# Union of day masks; a row whose days are already all set is left alone (no new tuple).
_MERGE_MASKS = """{emptying}
INSERT INTO scoring.{table} AS m SELECT * FROM staged ORDER BY account_id, {key}
ON CONFLICT (account_id, {key}) DO UPDATE SET
    anchor_day = greatest(m.anchor_day, excluded.anchor_day),
    days = scoring.shift_days(m.days, greatest(m.anchor_day, excluded.anchor_day) - m.anchor_day)
         | scoring.shift_days(excluded.days,
               greatest(m.anchor_day, excluded.anchor_day) - excluded.anchor_day)
WHERE excluded.anchor_day > m.anchor_day
   OR scoring.shift_days(excluded.days, m.anchor_day - excluded.anchor_day) & ~m.days <> 0
"""

# The latest NPS answer: last writer wins by (time, event id, score), as Python compares the
# tuple (ids byte-wise, whatever the database's collation): a total order, so the winner does
# not depend on arrival order even when two sources send one id at the same moment.
_NPS_NEWER = """excluded.nps_latest_at IS NOT NULL AND (a.nps_latest_at IS NULL
        OR (excluded.nps_latest_at, excluded.nps_latest_event_id COLLATE "C", excluded.nps_latest)
         > (a.nps_latest_at, a.nps_latest_event_id COLLATE "C", a.nps_latest))"""

_MERGE_ACTIVITY = f"""{staging.emptying("stage_activity")}
INSERT INTO scoring.activity AS a SELECT * FROM staged ORDER BY account_id
ON CONFLICT (account_id) DO UPDATE SET
    known_since = least(a.known_since, excluded.known_since),
    first_usage_at = least(a.first_usage_at, excluded.first_usage_at),
    last_usage_day = greatest(a.last_usage_day, excluded.last_usage_day),
    first_feature_at = least(a.first_feature_at, excluded.first_feature_at),
    last_feature_day = greatest(a.last_feature_day, excluded.last_feature_day),
    last_ticket_at = greatest(a.last_ticket_at, excluded.last_ticket_at),
    last_survey_at = greatest(a.last_survey_at, excluded.last_survey_at),
    nps_latest = CASE WHEN {_NPS_NEWER}
        THEN excluded.nps_latest ELSE a.nps_latest END,
    nps_latest_event_id = CASE WHEN {_NPS_NEWER}
        THEN excluded.nps_latest_event_id ELSE a.nps_latest_event_id END,
    nps_latest_at = greatest(a.nps_latest_at, excluded.nps_latest_at)
"""  # noqa: S608 - the interpolated text is the constant above


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
    await staging.prepare(conn)
    mask = attrgetter("anchor", "bits")
    users_merge = _MERGE_MASKS.format(
        table="account_users", key="user_id", emptying=staging.emptying("stage_users")
    )
    features_merge = _MERGE_MASKS.format(
        table="account_features", key="feature", emptying=staging.emptying("stage_features")
    )
    staged = [
        ("stage_days", _keyed(batch.days, _DAY_COUNTS), _MERGE_DAYS),
        ("stage_surveys", _keyed(batch.surveys, _SURVEY_COUNTS), _MERGE_SURVEYS),
        ("stage_users", _keyed(users, mask), users_merge),
        ("stage_features", _keyed(features, mask), features_merge),
        ("stage_tickets", _keyed(batch.tickets, _TICKET), _MERGE_TICKETS),
        ("stage_activity", _activity_rows(touched), _MERGE_ACTIVITY),
    ]
    written = 0
    for stage, rows, merge in staged:
        written += await _copy_merge(conn, stage, rows, merge)
    return written


async def _copy_merge(
    conn: asyncpg.Connection, stage: str, rows: Sequence[Sequence[Any]], merge: str
) -> int:
    """One table's rows of a batch: one binary ``COPY`` into its staging table, one merge
    (which empties the staging table: see ``staging``)."""
    if not rows:
        return 0
    await conn.copy_records_to_table(stage, records=rows)
    await conn.execute(merge)
    return len(rows)


def _keyed(rows: Mapping[tuple[str, Any], Any], values: Getter) -> list[tuple[Any, ...]]:
    """Rows keyed by (account, …), in key order, as the staging table's columns."""
    return [(*key, *values(rows[key])) for key in sorted(rows)]


def _nps_columns(latest: tuple[datetime, str, int] | None) -> tuple[Any, ...]:
    """(nps_latest, nps_latest_at, nps_latest_event_id) of ``(occurred_at, event_id, score)``."""
    if latest is None:
        return (None, None, None)
    at, event_id, score = latest
    return (score, at, event_id)


def _activity_rows(touched: Mapping[str, aggregate.Activity]) -> list[tuple[Any, ...]]:
    return [(k, *_ACTIVITY(a := touched[k]), *_nps_columns(a.nps_latest)) for k in sorted(touched)]


_UPSERT_ACCOUNTS = """
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
"""
_DELETE_ACCOUNTS = "DELETE FROM scoring.accounts WHERE account_id = ANY($1::text[])"

_UPSERT_PEOPLE = """
INSERT INTO scoring.people AS p (person_id, name, email, manager_id, time_zone, active,
    updated_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
    $6::bool[], $7::timestamptz[])
ON CONFLICT (person_id) DO UPDATE SET
    name = excluded.name, email = excluded.email, manager_id = excluded.manager_id,
    time_zone = excluded.time_zone, active = excluded.active,
    updated_at = excluded.updated_at
WHERE excluded.updated_at >= p.updated_at
"""
_DELETE_PEOPLE = "DELETE FROM scoring.people WHERE person_id = ANY($1::text[])"


async def apply_accounts(
    conn: asyncpg.Connection, latest: Mapping[str, AccountRecord | None]
) -> None:
    """Latest account records (last writer wins by ``updated_at``); None deletes (tombstone)."""
    await _apply_records(conn, latest, _ACCOUNT, _UPSERT_ACCOUNTS, _DELETE_ACCOUNTS)


async def apply_people(conn: asyncpg.Connection, latest: Mapping[str, PersonRecord | None]) -> None:
    """Latest person records, as :func:`apply_accounts`."""
    await _apply_records(conn, latest, _PERSON, _UPSERT_PEOPLE, _DELETE_PEOPLE)


async def _apply_records(
    conn: asyncpg.Connection,
    latest: Mapping[str, Any],
    columns: Getter,
    upsert: str,
    delete: str,
) -> None:
    """The latest record per key of a compacted topic: deleted when it is a tombstone (None),
    else upserted (one ``unnest`` statement) unless the stored one is newer."""
    gone = sorted(k for k, v in latest.items() if v is None)
    records = [r for k in sorted(latest) if (r := latest[k]) is not None]
    if gone:
        await conn.execute(delete, gone)
    if records:
        await conn.execute(upsert, *_arrays(map(columns, records)))
