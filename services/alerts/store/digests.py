"""Daily digests: the people due one (claimed ``FOR UPDATE SKIP LOCKED``), their portfolio,
the alerts held for the digest, and when each is due next."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.digest import AccountLine, HeldAlert
from services.alerts.store.ownership import PersonRow
from services.alerts.store.tables import from_row, grouped


async def claim_due_people(conn: AsyncConnection, now: datetime, limit: int) -> list[PersonRow]:
    """The people whose digest is due, locked until commit (another replica skips them)."""
    rows = await conn.execute(
        text(
            "SELECT * FROM alerts.people WHERE next_digest_at <= :now "
            "ORDER BY next_digest_at LIMIT :limit FOR UPDATE SKIP LOCKED"
        ),
        {"now": now, "limit": limit},
    )
    return [from_row(PersonRow, r) for r in rows.mappings()]


async def set_next_digests(conn: AsyncConnection, next_at: Mapping[str, datetime]) -> None:
    """When each person's next digest is due."""
    await conn.execute(
        text(
            "UPDATE alerts.people SET next_digest_at = t.next "
            "FROM unnest(CAST(:ids AS text[]), CAST(:nexts AS timestamptz[])) "
            "AS t(person_id, next) WHERE people.person_id = t.person_id"
        ),
        {"ids": list(next_at), "nexts": list(next_at.values())},
    )


async def portfolios(
    conn: AsyncConnection, person_ids: Sequence[str]
) -> Mapping[str, list[AccountLine]]:
    """Per person, a line for each account they own that has a health."""
    rows = await conn.execute(
        text(
            "SELECT p.person_id, a.account_id, a.name, h.score, h.band, h.as_of, "
            "h.days_since_activity, h.reasons, a.tier, a.arr, a.renewal_date, h.moved_by, "
            "(SELECT s.score FROM alerts.score_history s WHERE s.account_id = a.account_id "
            " AND s.as_of <= h.as_of - interval '7 days' ORDER BY s.as_of DESC LIMIT 1) "
            "AS score_week_ago "
            "FROM unnest(CAST(:ids AS text[])) AS p(person_id) "
            "JOIN alerts.accounts a ON p.person_id IN (a.csm, a.account_executive, "
            "a.renewal_owner) "
            "JOIN alerts.account_health h ON h.account_id = a.account_id"
        ),
        {"ids": list(person_ids)},
    )
    return grouped(
        rows.mappings(),
        "person_id",
        lambda r: from_row(
            AccountLine, r, reasons=tuple(r["reasons"]), moved_by=tuple(r["moved_by"])
        ),
    )


async def held_alerts(
    conn: AsyncConnection, person_ids: Sequence[str]
) -> Mapping[str, list[HeldAlert]]:
    """Per person, the firing alerts routed to them that wait for the digest, and those
    diverted to their digest (``digest_items``: over their budget, or digest-only)."""
    rows = await conn.execute(
        text(
            "SELECT p.person_id, al.id, al.account_id, coalesce(a.name, al.account_id) AS name, "
            "al.rule, al.severity, al.summary, al.notified_at IS NULL AS new "
            "FROM unnest(CAST(:ids AS text[])) AS p(person_id) "
            "JOIN alerts.alerts al ON al.route -> 'recipients' @> "
            "jsonb_build_array(jsonb_build_object('person_id', p.person_id)) "
            "LEFT JOIN alerts.accounts a ON a.account_id = al.account_id "
            "WHERE al.delivery = 'digest' AND al.state = 'firing' "
            # and those diverted to the person's digest (over budget, digest-only)
            "UNION SELECT d.person_id, al.id, al.account_id, "
            "coalesce(a.name, al.account_id), al.rule, al.severity, al.summary, true "
            "FROM alerts.digest_items d JOIN alerts.alerts al ON al.id = d.alert_id "
            "LEFT JOIN alerts.accounts a ON a.account_id = al.account_id "
            "WHERE d.person_id = ANY(CAST(:ids AS text[])) AND al.state = 'firing'"
        ),
        {"ids": list(person_ids)},
    )
    return grouped(
        rows.mappings(),
        "person_id",
        lambda r: from_row(HeldAlert, r, alert_id=r["id"], account_name=r["name"]),
    )
