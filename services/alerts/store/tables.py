"""The alerts service's tables (schema ``alerts``) and its queries.

Tables: the service's own view of ownership (``accounts``, ``people``, fed by the compacted
topics), the latest health and a short score history per account, the ``processed_changes``
dedup set, ``alerts`` (one open alert per account and rule, enforced by a partial unique
index), ``silences``, and the delivery side: the ``outbox`` (one row per message to one
destination), per-channel Slack ``pacing`` and per-account ``threads``.

Writes are set-based: one statement per table per batch (multi-row INSERT … ON CONFLICT, or an
executemany of one prepared UPDATE). Work on one account is serialised by a transaction-scoped
advisory lock on the account id (:func:`lock_accounts`, :func:`try_lock_accounts`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.lifecycle import Alert, Matcher, Silence
from services.alerts.routing import Person, Recipient, Route, Team

metadata = MetaData(schema="alerts")

TS = DateTime(timezone=True)

processed_changes = Table(
    "processed_changes",
    metadata,
    Column("change_id", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("processed_at", TS, nullable=False, server_default=func.now()),
)

accounts = Table(
    "accounts",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("tier", Text),
    Column("seats", Integer),
    Column("renewal_date", Date),
    Column("csm", Text),
    Column("account_executive", Text),
    Column("renewal_owner", Text),
    Column("updated_at", TS, nullable=False),
    Index("accounts_csm", "csm"),
    Index("accounts_account_executive", "account_executive"),
    Index("accounts_renewal_owner", "renewal_owner"),
)

people = Table(
    "people",
    metadata,
    Column("person_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("email", Text),
    Column("slack_user_id", Text),
    Column("manager_id", Text),
    Column("time_zone", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("next_digest_at", TS),
    Index("people_next_digest_at", "next_digest_at"),
)

account_health = Table(
    "account_health",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("as_of", TS, nullable=False),
    Column("score", Float, nullable=False),
    Column("band", Text, nullable=False),
    Column("before_score", Float),
    Column("before_band", Text),
    Column("reasons", JSONB, nullable=False),
    Column("days_since_activity", Float),
    Column("change_id", Text, nullable=False),
)

score_history = Table(
    "score_history",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("as_of", TS, primary_key=True),
    Column("score", Float, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("account_id", Text, nullable=False),
    Column("rule", Text, nullable=False),
    Column("motion", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("delivery", Text, nullable=False),
    Column("send_resolved", Boolean, nullable=False),
    Column("route", JSONB, nullable=False),
    Column("started_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("pending_since", TS),
    Column("notified_at", TS),
    Column("notified_severity", Text),
    Column("first_notified_at", TS),
    Column("notified_to", JSONB, nullable=False),
    Column("snoozed_until", TS),
    Column("acknowledged_at", TS),
    Column("acknowledged_by", Text),
    Column("resolved_at", TS),
    Column("resolved_by", Text),
    Column("resolve_notice_due", Boolean, nullable=False),
    Column("escalated_at", TS),
    Column("escalation_path", JSONB, nullable=False),
    Column("muted", Text),
    Column("resolves_at", TS),
    Column("wake_at", TS),
    Index(
        "alerts_one_open_per_rule",
        "account_id",
        "rule",
        unique=True,
        postgresql_where=text("state <> 'resolved'"),
    ),
    Index("alerts_wake_at", "wake_at", postgresql_where=text("state <> 'resolved'")),
    Index("alerts_account_state", "account_id", "state"),
    Index("alerts_updated_at", "updated_at"),
)

silences = Table(
    "silences",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("matchers", JSONB, nullable=False),
    Column("starts_at", TS, nullable=False),
    Column("ends_at", TS, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("comment", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    Index("silences_ends_at", "ends_at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("key", Text, nullable=False, unique=True),
    Column("kind", Text, nullable=False),
    Column("account_id", Text),
    Column("channel", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("mention", Text),
    Column("fallbacks", JSONB, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("message_id", Text, nullable=False),
    Column("thread_key", Text),
    Column("depends_on", BigInteger),
    Column("state", Text, nullable=False),  # pending, sending, sent, failed, fallen_back
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", TS, nullable=False),
    Column("claimed_by", Text),
    Column("claimed_until", TS),
    Column("created_at", TS, nullable=False),
    Column("sent_at", TS),
    Column("last_error", Text),
    Column("provider_ref", Text),
    Index("outbox_due", "next_attempt_at", postgresql_where=text("state = 'pending'")),
    Index("outbox_leased", "claimed_until", postgresql_where=text("state = 'sending'")),
    Index("outbox_created_at", "created_at"),
)

pacing = Table(
    "pacing",
    metadata,
    Column("address", Text, primary_key=True),
    Column("next_at", TS, nullable=False),
)

threads = Table(
    "threads",
    metadata,
    Column("thread_key", Text, primary_key=True),
    Column("ref", Text, nullable=False),
    Column("updated_at", TS, nullable=False),
)

# One-click links already acted on (a SHA-256 of the token), until they expire: a link acts
# once, so a captured link cannot be replayed (e.g. to keep an alert snoozed).
used_links = Table(
    "used_links",
    metadata,
    Column("digest", LargeBinary, primary_key=True),
    Column("used_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Index("used_links_expires_at", "expires_at"),
)

OUTBOX_CHANNEL = "alerts_outbox"  # NOTIFY channel that wakes the delivery workers


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
# Ownership


async def upsert_people(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        return
    stmt = insert(people).values(list(rows))
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[people.c.person_id],
            set_={c: stmt.excluded[c] for c in rows[0] if c != "person_id"},
        )
    )


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
        rows = await conn.execute(select(people).where(people.c.person_id.in_(missing)))
        for row in rows.mappings():
            found[row["person_id"]] = _person(row)
        wanted = {p.manager_id for p in found.values() if p.manager_id} | set(found)
    return found


def _person(row: Mapping[Any, Any]) -> Person:
    return Person(
        person_id=row["person_id"],
        name=row["name"],
        email=row["email"],
        slack_user_id=row["slack_user_id"],
        manager_id=row["manager_id"],
        time_zone=row["time_zone"],
        active=row["active"],
    )


async def load_teams(
    conn: AsyncConnection, account_ids: Iterable[str], *, for_update: bool = False
) -> dict[str, AccountRow]:
    ids = list(set(account_ids))
    if not ids:
        return {}
    query = select(accounts).where(accounts.c.account_id.in_(ids))
    rows = await conn.execute(query.with_for_update() if for_update else query)
    return {r["account_id"]: AccountRow.from_row(r) for r in rows.mappings()}


class AccountRow:
    def __init__(
        self, account_id: str, name: str, team: Team, renewal_date: date | None, seats: int | None
    ) -> None:
        self.account_id = account_id
        self.name = name
        self.team = team
        self.renewal_date = renewal_date
        self.seats = seats

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> AccountRow:
        return cls(
            row["account_id"],
            row["name"],
            Team(row["csm"], row["account_executive"], row["renewal_owner"]),
            row["renewal_date"],
            row["seats"],
        )


async def upsert_accounts(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        return
    stmt = insert(accounts).values(list(rows))
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[accounts.c.account_id],
            set_={c: stmt.excluded[c] for c in rows[0] if c != "account_id"},
        )
    )


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


# ---------------------------------------------------------------------------------------------
# Health changes


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


async def load_health(conn: AsyncConnection, account_ids: Iterable[str]) -> dict[str, datetime]:
    """The ``as_of`` of the latest health known per account."""
    ids = list(set(account_ids))
    if not ids:
        return {}
    rows = await conn.execute(
        select(account_health.c.account_id, account_health.c.as_of).where(
            account_health.c.account_id.in_(ids)
        )
    )
    return {r[0]: r[1] for r in rows}


async def upsert_health(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        return
    stmt = insert(account_health).values(list(rows))
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[account_health.c.account_id],
            set_={c: stmt.excluded[c] for c in rows[0] if c != "account_id"},
            where=account_health.c.as_of <= stmt.excluded.as_of,
        )
    )


async def insert_history(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(score_history).values(list(rows)).on_conflict_do_nothing())


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
    """Forget dedup ids, score history, resolved alerts and finished outbox rows older than
    ``keep``."""
    cutoff = now - keep
    await conn.execute(delete(processed_changes).where(processed_changes.c.processed_at < cutoff))
    await conn.execute(delete(score_history).where(score_history.c.as_of < cutoff))
    await conn.execute(
        delete(outbox).where(
            outbox.c.state.in_(["sent", "failed", "fallen_back"]), outbox.c.created_at < cutoff
        )
    )


# ---------------------------------------------------------------------------------------------
# Alerts


async def load_open_alerts(
    conn: AsyncConnection, account_ids: Iterable[str]
) -> dict[str, list[Alert]]:
    ids = list(set(account_ids))
    found: dict[str, list[Alert]] = {a: [] for a in ids}
    if not ids:
        return found
    rows = await conn.execute(
        select(alerts)
        .where(alerts.c.account_id.in_(ids), alerts.c.state != "resolved")
        .order_by(alerts.c.id)
    )
    for row in rows.mappings():
        found[row["account_id"]].append(alert_from_row(row))
    return found


async def load_alerts(conn: AsyncConnection, ids: Iterable[int]) -> list[Alert]:
    rows = await conn.execute(select(alerts).where(alerts.c.id.in_(list(ids))))
    return [alert_from_row(r) for r in rows.mappings()]


def alert_from_row(row: Mapping[Any, Any]) -> Alert:
    return Alert(
        id=row["id"],
        account_id=row["account_id"],
        rule=row["rule"],
        motion=row["motion"],
        severity=row["severity"],
        state=row["state"],
        summary=row["summary"],
        delivery=row["delivery"],
        send_resolved=row["send_resolved"],
        route=Route.from_json(row["route"]),
        started_at=row["started_at"],
        updated_at=row["updated_at"],
        pending_since=row["pending_since"],
        notified_at=row["notified_at"],
        notified_severity=row["notified_severity"],
        first_notified_at=row["first_notified_at"],
        notified_to=tuple(Recipient.from_json(r) for r in row["notified_to"]),
        snoozed_until=row["snoozed_until"],
        acknowledged_at=row["acknowledged_at"],
        acknowledged_by=row["acknowledged_by"],
        resolved_at=row["resolved_at"],
        resolved_by=row["resolved_by"],
        resolve_notice_due=row["resolve_notice_due"],
        escalated_at=row["escalated_at"],
        escalation_path=tuple(row["escalation_path"]),
        muted=row["muted"],
        resolves_at=row["resolves_at"],
        wake_at=row["wake_at"],
    )


def _alert_values(alert: Alert) -> dict[str, Any]:
    return {
        "account_id": alert.account_id,
        "rule": alert.rule,
        "motion": alert.motion,
        "severity": alert.severity,
        "state": alert.state,
        "summary": alert.summary,
        "delivery": alert.delivery,
        "send_resolved": alert.send_resolved,
        "route": alert.route.to_json(),
        "started_at": alert.started_at,
        "updated_at": alert.updated_at,
        "pending_since": alert.pending_since,
        "notified_at": alert.notified_at,
        "notified_severity": alert.notified_severity,
        "first_notified_at": alert.first_notified_at,
        "notified_to": [r.to_json() for r in alert.notified_to],
        "snoozed_until": alert.snoozed_until,
        "acknowledged_at": alert.acknowledged_at,
        "acknowledged_by": alert.acknowledged_by,
        "resolved_at": alert.resolved_at,
        "resolved_by": alert.resolved_by,
        "resolve_notice_due": alert.resolve_notice_due,
        "escalated_at": alert.escalated_at,
        "escalation_path": list(alert.escalation_path),
        "muted": alert.muted,
        "resolves_at": alert.resolves_at,
        "wake_at": alert.wake_at,
    }


async def save_alerts(conn: AsyncConnection, changed: Sequence[Alert]) -> list[Alert]:
    """Insert the new alerts (one statement) and update the others (one prepared statement,
    executed for each); returns the alerts with their ids."""
    new = [a for a in changed if a.id is None]
    old = [a for a in changed if a.id is not None]
    saved: list[Alert] = []
    if new:
        result = await conn.execute(
            insert(alerts).returning(alerts.c.id, sort_by_parameter_order=True),
            [_alert_values(a) for a in new],
        )
        ids = [r[0] for r in result]
        saved += [_with_id(a, i) for a, i in zip(new, ids, strict=True)]
    if old:
        columns: dict[str, Any] = {
            c: bindparam(f"v_{c}") for c in _alert_values(old[0]) if c != "account_id"
        }
        await conn.execute(
            update(alerts).where(alerts.c.id == bindparam("v_id")).values(columns),
            [{"v_id": a.id, **{f"v_{k}": v for k, v in _alert_values(a).items()}} for a in old],
        )
        saved += old
    return saved


def _with_id(alert: Alert, alert_id: int) -> Alert:
    from dataclasses import replace

    return replace(alert, id=alert_id)


async def due_accounts(conn: AsyncConnection, now: datetime, limit: int) -> list[str]:
    rows = await conn.execute(
        select(alerts.c.account_id)
        .where(alerts.c.state != "resolved", alerts.c.wake_at <= now)
        .group_by(alerts.c.account_id)
        .order_by(func.min(alerts.c.wake_at))
        .limit(limit)
    )
    return [r[0] for r in rows]


async def wake(conn: AsyncConnection, *, silence_id: int | None, now: datetime) -> None:
    """Ask the scheduler to look again at the alerts a silence muted (it ended early)."""
    await conn.execute(
        update(alerts)
        .where(alerts.c.state != "resolved", alerts.c.muted == f"silenced:{silence_id}")
        .values(wake_at=now)
    )


# ---------------------------------------------------------------------------------------------
# Silences


async def active_silences(conn: AsyncConnection, now: datetime) -> list[Silence]:
    rows = await conn.execute(
        select(silences).where(silences.c.ends_at > now).order_by(silences.c.id)
    )
    return [silence_from_row(r) for r in rows.mappings()]


def silence_from_row(row: Mapping[Any, Any]) -> Silence:
    return Silence(
        id=row["id"],
        matchers=tuple(Matcher(m["label"], m["op"], m["value"]) for m in row["matchers"]),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        created_by=row["created_by"],
        comment=row["comment"],
    )


# ---------------------------------------------------------------------------------------------
# Outbox


async def enqueue(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert outbox rows (one statement; a key already there is skipped) and wake the
    delivery workers when the transaction commits."""
    if not rows:
        return []
    result = await conn.execute(
        insert(outbox)
        .values(list(rows))
        .on_conflict_do_nothing(index_elements=[outbox.c.key])
        .returning(outbox.c.id)
    )
    ids = [r[0] for r in result]
    if ids:
        await conn.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))
    return ids


async def use_link(
    conn: AsyncConnection, digest: bytes, expires_at: datetime, now: datetime
) -> bool:
    """Record that a link acts now; False when it already acted. Forgets expired links."""
    await conn.execute(delete(used_links).where(used_links.c.expires_at < now))
    first = await conn.execute(
        insert(used_links)
        .values(digest=digest, used_at=now, expires_at=expires_at)
        .on_conflict_do_nothing()
        .returning(used_links.c.digest)
    )
    return first.first() is not None
