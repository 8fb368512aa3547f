"""People's attention: each person's daily count of new risk alerts (the budget), and the
alerts that go to their next digest instead of a direct message."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.store.tables import digest_items


@dataclass(frozen=True)
class DigestItem:
    """An alert a person gets in their digest, and why (``over_budget``, ``digest_only``)."""

    person_id: str
    alert_id: int
    reason: str
    day: date  # the person's local date when it was diverted
    created_at: datetime


async def count_budget(
    conn: AsyncConnection, uses: Mapping[tuple[str, date], int]
) -> dict[tuple[str, date], int]:
    """Add each (person, local day)'s new risk alerts to its count; returns the counts after.

    The rows stay locked until commit, so deciders of other accounts count in turn."""
    if not uses:
        return {}
    keys = sorted(uses)
    rows = await conn.execute(
        text(
            "INSERT INTO alerts.alert_budget AS b (person_id, day, used) "
            "SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:days AS date[]), "
            "CAST(:counts AS int[])) "
            "ON CONFLICT (person_id, day) DO UPDATE SET used = b.used + EXCLUDED.used "
            "RETURNING person_id, day, used"
        ),
        {
            "ids": [k[0] for k in keys],
            "days": [k[1] for k in keys],
            "counts": [uses[k] for k in keys],
        },
    )
    return {(r[0], r[1]): r[2] for r in rows}


async def add_digest_items(conn: AsyncConnection, items: Sequence[DigestItem]) -> None:
    if items:
        await conn.execute(
            insert(digest_items).values([asdict(i) for i in items]).on_conflict_do_nothing()
        )


async def over_budget_counts(conn: AsyncConnection, person_ids: Sequence[str]) -> dict[str, int]:
    """Per person, the alerts over their budget waiting for their digest."""
    rows = await conn.execute(
        text(
            "SELECT person_id, count(*) FROM alerts.digest_items "
            "WHERE person_id = ANY(:ids) AND reason = 'over_budget' GROUP BY person_id"
        ),
        {"ids": list(person_ids)},
    )
    return {r[0]: r[1] for r in rows}


async def clear_digest_items(
    conn: AsyncConnection, person_ids: Sequence[str], up_to: datetime
) -> None:
    """The people's digests showed their items diverted up to ``up_to``."""
    if person_ids:
        await conn.execute(
            text(
                "DELETE FROM alerts.digest_items "
                "WHERE person_id = ANY(:ids) AND created_at <= :up_to"
            ),
            {"ids": list(person_ids), "up_to": up_to},
        )
