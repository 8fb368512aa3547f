"""Ownership: the service's own copy of accounts and people (fed by the compacted topics), and
the per-account advisory locks that serialise work on one account."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Table, delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts import hours
from services.alerts.routing import Person, Team
from services.alerts.store.tables import accounts, alerts, from_row, one_of, people


@dataclass(frozen=True)
class PersonRow:
    person_id: str
    name: str
    email: str | None
    slack_user_id: str | None
    manager_id: str | None
    time_zone: str
    active: bool
    updated_at: datetime
    next_digest_at: datetime | None
    working_hours: str | None = None  # hours.parse_working's text; None: the default
    quiet_hours: str | None = None  # hours.parse_quiet's text
    alert_channel: str | None = None  # slack, email, digest
    daily_alert_budget: int | None = None


@dataclass(frozen=True)
class OwnedAccount:
    """An account as the accounts topic describes it."""

    account_id: str
    name: str
    tier: str | None
    seats: int | None
    renewal_date: date | None
    csm: str | None
    account_executive: str | None
    renewal_owner: str | None
    updated_at: datetime
    arr: float | None = None
    lifecycle_stage: str | None = None

    @property
    def team(self) -> Team:
        return Team(self.csm, self.account_executive, self.renewal_owner)


@dataclass(frozen=True)
class AccountRow:
    """What deciding needs of an account: its name, team, renewal and seats (and what
    messages show: tier and ARR)."""

    account_id: str
    name: str
    team: Team
    renewal_date: date | None
    seats: int | None
    tier: str | None = None
    arr: float | None = None
    lifecycle_stage: str | None = None

    @classmethod
    def from_row(cls, row: RowMapping) -> AccountRow:
        team = Team(row["csm"], row["account_executive"], row["renewal_owner"])
        return from_row(cls, row, team=team)


# ---------------------------------------------------------------------------------------------
# Locks


async def lock_accounts(conn: AsyncConnection, account_ids: Iterable[str]) -> None:
    """Wait for, then hold until commit, the lock of each account (in a stable order)."""
    ids = sorted(set(account_ids))
    if ids:
        await conn.execute(
            text(
                "SELECT pg_advisory_xact_lock(hashtextextended(a, 7)) "
                "FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS t(a, n) ORDER BY n"
            ),
            {"ids": ids},
        )


async def try_lock_accounts(conn: AsyncConnection, account_ids: Iterable[str]) -> list[str]:
    """Lock the accounts no one else holds; returns those locked (held until commit)."""
    ids = sorted(set(account_ids))
    if not ids:
        return []
    rows = await conn.execute(
        text(
            "SELECT a FROM unnest(CAST(:ids AS text[])) AS t(a) "
            "WHERE pg_try_advisory_xact_lock(hashtextextended(a, 7))"
        ),
        {"ids": ids},
    )
    return [r[0] for r in rows]


# ---------------------------------------------------------------------------------------------
# People and accounts


async def _upsert(conn: AsyncConnection, table: Table, key: str, rows: Sequence[Any]) -> None:
    """Insert or replace whole rows (dataclasses of the table's columns) by primary key."""
    if not rows:
        return
    values = [asdict(r) for r in rows]
    stmt = insert(table).values(values)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[table.c[key]],
            set_={c: stmt.excluded[c] for c in values[0] if c != key},
        )
    )


async def upsert_people(conn: AsyncConnection, rows: Sequence[PersonRow]) -> None:
    await _upsert(conn, people, "person_id", rows)


async def delete_people(conn: AsyncConnection, ids: Sequence[str]) -> None:
    if ids:
        await conn.execute(delete(people).where(people.c.person_id.in_(ids)))


async def load_people(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, Person]:
    """The people with ``ids`` and their managers."""
    wanted = set(ids)
    found: dict[str, Person] = {}
    for _ in range(2):  # the people, then their managers
        missing = wanted - set(found)
        if not missing:
            break
        rows = await conn.execute(select(people).where(one_of(people.c.person_id, missing)))
        for row in rows.mappings():
            found[row["person_id"]] = _person(row)
        wanted = {p.manager_id for p in found.values() if p.manager_id} | set(found)
    return found


def _person(row: RowMapping) -> Person:
    working, quiet = row["working_hours"], row["quiet_hours"]
    return from_row(
        Person,
        row,
        working_hours=hours.parse_working(working) if working else None,
        quiet_hours=hours.parse_quiet(quiet) if quiet else None,
    )


async def load_teams(
    conn: AsyncConnection, account_ids: Iterable[str], *, for_update: bool = False
) -> dict[str, AccountRow]:
    ids = list(set(account_ids))
    if not ids:
        return {}
    query = select(accounts).where(one_of(accounts.c.account_id, ids))
    rows = await conn.execute(query.with_for_update() if for_update else query)
    return {r["account_id"]: AccountRow.from_row(r) for r in rows.mappings()}


async def upsert_accounts(conn: AsyncConnection, rows: Sequence[OwnedAccount]) -> None:
    await _upsert(conn, accounts, "account_id", rows)


async def delete_accounts(conn: AsyncConnection, ids: Sequence[str]) -> None:
    if ids:
        await conn.execute(delete(accounts).where(accounts.c.account_id.in_(ids)))


async def accounts_owned_by(conn: AsyncConnection, person_ids: Iterable[str]) -> list[str]:
    ids = list(set(person_ids))
    if not ids:
        return []
    rows = await conn.execute(
        select(accounts.c.account_id).where(
            accounts.c.csm.in_(ids)
            | accounts.c.account_executive.in_(ids)
            | accounts.c.renewal_owner.in_(ids)
        )
    )
    return [r[0] for r in rows]


async def with_open_alerts(conn: AsyncConnection, account_ids: Iterable[str]) -> set[str]:
    """Those of ``account_ids`` that have an open (not resolved) alert."""
    ids = list(set(account_ids))
    if not ids:
        return set()
    rows = await conn.execute(
        select(alerts.c.account_id)
        .where(one_of(alerts.c.account_id, ids), alerts.c.state != "resolved")
        .distinct()
    )
    return {r[0] for r in rows}
