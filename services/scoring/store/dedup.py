"""Exactly-once consumption: the dedup key of an event and claiming it in ``processed_events``.

An event is the same event when its ``(source, account_id, event_id)`` is the same: two
sources, or two accounts, may reuse an id without dropping each other's events. The key is a
16-byte BLAKE2b digest of the three, the first two prefixed by their length (no separator can
be forged by an id that contains it).

**The cut-over** (migration ``0002``): before it, the key was the digest of the ``event_id``
alone. Rows claimed then stay in ``processed_events`` until they leave the dedup horizon, and
a redelivery of one of those events must still be recognised. The migration records in
``scoring.dedup_cutover`` the latest ``occurred_at`` a legacy row can have (``legacy_until``;
none on a database that held no ids). An event that occurred up to then is a duplicate if
its legacy key is there too (:func:`claim_events` looks it up); later events cannot have one.
Once the horizon has passed ``legacy_until`` the legacy rows are purged and no event old
enough is admitted, so the lookup never runs again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from hashlib import blake2b

import asyncpg

from shared.events import Event

_PERSON = b"cw-event-v2"  # BLAKE2b personalisation: scoped keys never equal legacy ones
_SCOPED = blake2b(digest_size=16, person=_PERSON)  # copied per key: cheaper than a new one


def event_hash(source: str, account_id: str, event_id: str) -> bytes:
    """The dedup key of an event: 16 bytes of BLAKE2b over its source, account and id
    (collisions: ~n²/2¹²⁹, never). The first two are prefixed by their length (``6:native``),
    so the text hashed tells the three apart whatever characters they hold."""
    digest = _SCOPED.copy()
    digest.update(f"{len(source)}:{source}{len(account_id)}:{account_id}{event_id}".encode())
    return digest.digest()


def event_key(event: Event) -> bytes:
    """:func:`event_hash` of an event."""
    return event_hash(event.source, event.account_id, event.event_id)


def legacy_hash(event_id: str) -> bytes:
    """The key before the cut-over: the digest of the event id alone."""
    return blake2b(event_id.encode(), digest_size=16).digest()


async def legacy_until(conn: asyncpg.Connection) -> datetime | None:
    """The latest ``occurred_at`` a legacy (unscoped) key can have; None when there are none."""
    until: datetime | None = await conn.fetchval("SELECT legacy_until FROM scoring.dedup_cutover")
    return until


def legacy_keys(events: Iterable[Event], until: datetime | None) -> dict[bytes, bytes]:
    """Scoped key → legacy key, for the events that may have been claimed before the cut-over."""
    if until is None:
        return {}
    return {event_key(e): legacy_hash(e.event_id) for e in events if e.occurred_at <= until}


async def legacy_taken(conn: asyncpg.Connection, legacy: Mapping[bytes, bytes]) -> set[bytes]:
    """The scoped keys (of ``legacy``) whose event was claimed before the cut-over."""
    if not legacy:
        return set()
    rows = await conn.fetch(
        "SELECT event_hash FROM scoring.processed_events WHERE event_hash = ANY($1::bytea[])",
        sorted(set(legacy.values())),
    )
    found = {row[0] for row in rows}
    return {key for key, old in legacy.items() if old in found}


async def claim_events(
    conn: asyncpg.Connection,
    events: Sequence[tuple[bytes, datetime]],
    *,
    legacy: Mapping[bytes, bytes] | None = None,
) -> set[bytes] | None:
    """Record event keys (:func:`event_hash`) as processed; call inside a transaction.

    Returns ``None`` when every one was new — the common case, taken with one ``COPY`` into
    the table, which the unique index refuses as a whole if any key is already there — or else
    the set of the new ones (a second, slower statement that skips the known keys). A
    concurrent transaction claiming the same key makes the other wait for it, then see it:
    exact either way. ``legacy`` (from :func:`legacy_keys`): an event whose legacy key was
    claimed before the cut-over is not new, and is not claimed again (one row per event).
    """
    taken = await legacy_taken(conn, legacy or {})
    ordered = sorted(e for e in events if e[0] not in taken)
    if not ordered:
        return set() if events else None
    try:
        async with conn.transaction():  # a savepoint: a refused COPY leaves the rest intact
            await conn.copy_records_to_table(
                "processed_events", schema_name="scoring", records=ordered
            )
        return {h for h, _ in ordered} if taken else None
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
