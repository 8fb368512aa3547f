"""The delivery side: the ``outbox`` (one row per message to one destination), per-channel
Slack ``pacing`` and per-account ``threads``.

The delivery protocol itself (claim → send → record) is described in
:mod:`services.alerts.delivery`; these are its statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.messages import OutboxEntry
from services.alerts.routing import Destination
from services.alerts.store.tables import from_row, outbox

OUTBOX_CHANNEL = "alerts_outbox"  # NOTIFY channel that wakes the delivery workers

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Candidate:
    """A due row, before it is claimed."""

    id: int
    channel: str
    address: str


@dataclass(frozen=True)
class ClaimedRow:
    """An outbox row a worker holds (``sending``), with the thread it replies to."""

    id: int
    key: str
    kind: str
    account_id: str | None
    destination: Destination
    fallbacks: tuple[Destination, ...]
    payload: dict[str, Any]
    message_id: str
    thread_key: str | None
    thread_ref: str | None
    attempts: int
    created_at: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> ClaimedRow:
        return from_row(
            cls,
            row,
            destination=Destination(row["channel"], row["address"], row["mention"]),
            fallbacks=tuple(Destination.from_json(d) for d in row["fallbacks"]),
        )


@dataclass(frozen=True)
class Outcome:
    """What becomes of a claimed row after its send (see ``delivery.judge``)."""

    state: str  # sent, pending (again), fallen_back, failed
    error: str | None = None
    provider_ref: str | None = None
    provider_channel: str | None = None  # Slack: the channel id of the message (chat.update)
    next_attempt_at: datetime | None = None  # with "pending"
    thread: tuple[str, str] | None = None  # (thread_key, ref) to remember for replies
    hold_channel_until: datetime | None = None  # pacing of the row's Slack channel
    fallback: OutboxEntry | None = None  # with "fallen_back"


# ---------------------------------------------------------------------------------------------
# Enqueue


async def enqueue(conn: AsyncConnection, entries: Sequence[OutboxEntry]) -> list[int]:
    """Insert outbox rows (one statement; a key already there is skipped) and wake the
    delivery workers when the transaction commits."""
    if not entries:
        return []
    result = await conn.execute(
        insert(outbox)
        .values([asdict(e) | {"state": "pending", "attempts": 0} for e in entries])
        .on_conflict_do_nothing(index_elements=[outbox.c.key])
        .returning(outbox.c.id)
    )
    ids = [r[0] for r in result]
    if ids:
        await conn.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))
    return ids


async def unsent_heads(conn: AsyncConnection, thread_keys: Sequence[str]) -> dict[str, int]:
    """Per thread, the newest row not sent yet (pending or sending)."""
    latest = await conn.execute(
        text(
            "SELECT thread_key, max(id) FROM alerts.outbox WHERE thread_key = ANY(:keys) "
            "AND state IN ('pending', 'sending') GROUP BY thread_key"
        ),
        {"keys": list(thread_keys)},
    )
    return {key: last for key, last in latest}


# ---------------------------------------------------------------------------------------------
# Claim


async def next_due(conn: AsyncConnection, clock_now: datetime) -> datetime | None:
    """When the next pending row is due (rows held past ``clock_now`` aside)."""
    result = await conn.execute(
        text(
            "SELECT min(next_attempt_at) FROM alerts.outbox WHERE state = 'pending' "
            "AND (not_before IS NULL OR not_before <= :clock_now)"
        ),
        {"clock_now": clock_now},
    )
    due: datetime | None = result.scalar()
    return due


async def expire_leases(conn: AsyncConnection, now: datetime) -> list[str]:
    """Put rows whose lease passed back to pending; returns their channels."""
    expired = await conn.execute(
        text(
            "UPDATE alerts.outbox SET state = 'pending', claimed_by = NULL, "
            "claimed_until = NULL, next_attempt_at = :now, "
            "last_error = 'lease expired: the outcome of the last attempt is unknown' "
            "WHERE state = 'sending' AND claimed_until < :now RETURNING id, channel"
        ),
        {"now": now},
    )
    return [channel for _id, channel in expired]


async def candidates(
    conn: AsyncConnection, now: datetime, limit: int, *, clock_now: datetime | None = None
) -> list[Candidate]:
    """Due pending rows whose predecessor in the thread is done, whose Slack channel is not
    held and that are not held for their recipient's working hours (``not_before``, in the
    service's clock: ``clock_now``, default ``now``), locked ``FOR UPDATE SKIP LOCKED``
    (another worker's are skipped)."""
    rows = await conn.execute(
        text(
            "SELECT o.id, o.channel, o.address FROM alerts.outbox o "
            "WHERE o.state = 'pending' AND o.next_attempt_at <= :now "
            "AND (o.not_before IS NULL OR o.not_before <= :clock_now) "
            "AND (o.depends_on IS NULL OR NOT EXISTS (SELECT 1 FROM "
            "alerts.outbox d WHERE d.id = o.depends_on "
            "AND d.state IN ('pending', 'sending'))) "
            "AND NOT EXISTS (SELECT 1 FROM alerts.pacing p WHERE "
            "o.channel = 'slack' AND p.address = o.address AND p.next_at > :now) "
            "ORDER BY o.next_attempt_at, o.id LIMIT :limit "
            "FOR UPDATE OF o SKIP LOCKED"
        ),
        {"now": now, "limit": limit, "clock_now": clock_now or now},
    )
    return [Candidate(r[0], r[1], r[2]) for r in rows]


async def hold_channels(
    conn: AsyncConnection,
    addresses: Sequence[str],
    until: datetime,
    *,
    if_free_at: datetime = FAR_FUTURE,
) -> list[str]:
    """Hold Slack channels until ``until`` (never shortening a hold). With ``if_free_at``, only
    the channels not held at that time are taken; returns the addresses taken."""
    if not addresses:
        return []
    taken = await conn.execute(
        text(
            "INSERT INTO alerts.pacing AS p (address, next_at) "
            "SELECT unnest(CAST(:addresses AS text[])), :until "
            "ON CONFLICT (address) DO UPDATE SET next_at = GREATEST(p.next_at, EXCLUDED.next_at) "
            "WHERE p.next_at <= :free_at RETURNING address"
        ),
        {"addresses": list(addresses), "until": until, "free_at": if_free_at},
    )
    return [a for (a,) in taken]


async def take(
    conn: AsyncConnection, ids: Sequence[int], *, worker: str, until: datetime
) -> list[ClaimedRow]:
    """Mark the rows ``sending`` by ``worker`` with a lease until ``until``; one attempt more."""
    claimed = await conn.execute(
        text(
            "UPDATE alerts.outbox o SET state = 'sending', claimed_by = :me, "
            "claimed_until = :until, attempts = attempts + 1 "
            "WHERE id = ANY(:ids) RETURNING o.*, "
            "(SELECT ref FROM alerts.threads t "
            "WHERE t.thread_key = o.thread_key) AS thread_ref"
        ),
        {"me": worker, "until": until, "ids": list(ids)},
    )
    return [ClaimedRow.from_row(r) for r in claimed.mappings()]


# ---------------------------------------------------------------------------------------------
# Record

_RECORD = {
    "sent": text(
        "UPDATE alerts.outbox SET state = 'sent', sent_at = :now, provider_ref = :ref, "
        "provider_channel = :channel, claimed_until = NULL, last_error = :error "
        "WHERE id = :id AND claimed_by = :me AND state = 'sending'"
    ),
    "pending": text(
        "UPDATE alerts.outbox SET state = 'pending', claimed_by = NULL, claimed_until = NULL, "
        "next_attempt_at = :next, last_error = :error "
        "WHERE id = :id AND claimed_by = :me AND state = 'sending'"
    ),
    "final": text(  # failed, fallen_back
        "UPDATE alerts.outbox SET state = :state, claimed_by = NULL, claimed_until = NULL, "
        "last_error = :error WHERE id = :id AND claimed_by = :me AND state = 'sending'"
    ),
}


async def record(
    conn: AsyncConnection, row: ClaimedRow, outcome: Outcome, *, worker: str, now: datetime
) -> bool:
    """Write the outcome of a send; False when the row is no longer ``worker``'s (its lease
    expired and another worker took it over): then only the channel's pacing is written."""
    if outcome.hold_channel_until is not None:
        await hold_channels(conn, [row.destination.address], outcome.hold_channel_until)
    params: dict[str, Any] = {"id": row.id, "me": worker, "error": outcome.error}
    if outcome.state == "sent":
        params |= {"now": now, "ref": outcome.provider_ref, "channel": outcome.provider_channel}
    elif outcome.state == "pending":
        params |= {"next": outcome.next_attempt_at}
    else:
        params |= {"state": outcome.state}
    result = await conn.execute(_RECORD.get(outcome.state, _RECORD["final"]), params)
    if outcome.thread is not None:
        await conn.execute(
            text(
                "INSERT INTO alerts.threads (thread_key, ref, updated_at) "
                "VALUES (:key, :ref, :now) ON CONFLICT (thread_key) DO UPDATE "
                "SET ref = EXCLUDED.ref, updated_at = EXCLUDED.updated_at"
            ),
            {"key": outcome.thread[0], "ref": outcome.thread[1], "now": now},
        )
    ours = bool(result.rowcount)
    if ours and outcome.fallback is not None:
        await enqueue(conn, [outcome.fallback])
    return ours


async def depth(conn: AsyncConnection) -> list[tuple[str, int, datetime]]:
    """(channel, rows waiting, oldest created_at) of the rows not yet done; rows held for
    their recipient's working hours are not waiting (so a night does not age the outbox)."""
    rows = await conn.execute(
        text(
            "SELECT channel, count(*), min(created_at) FROM alerts.outbox "
            "WHERE state IN ('pending', 'sending') "
            "AND (not_before IS NULL OR not_before <= now()) GROUP BY channel"
        )
    )
    return [(r[0], r[1], r[2]) for r in rows]
