"""One consumed batch: gather → decide → apply, in one database transaction.

1. **decide what comes in** (pure, :func:`plan`): events outside the lateness window are
   refused (``too_old`` / ``from_the_future``, dead-lettered by the loop with that reason);
   an ``event_id`` seen twice in the batch counts once; for account and person records the
   last one per key wins (a tombstone deletes);
2. **gather**: claim the event ids in ``processed_events`` — the ones already there are
   duplicates (redelivery, replay, a client retry) and are dropped;
3. **apply** the new events, coalesced per account and day (``aggregate.coalesce``), with one
   set-based upsert per table, the records, and queue the touched accounts for rescoring.

The transaction commits before the loop commits the offsets, so a crash anywhere means the
batch is delivered again and step 2 makes the second pass a no-op for what was committed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import asyncpg
import msgspec

from services.scoring import aggregate, metrics, store
from shared import events
from shared.clock import Clock
from shared.events import AccountRecord, Event, PersonRecord, Topics
from shared.kafka import DecodeFailure, Record, Rejection


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A null value on a compacted topic: the record with the message's key is deleted."""

    kind: Literal["account", "person"]


Inbound = Event | AccountRecord | PersonRecord | Tombstone

_KINDS: dict[type[Event], str] = {
    events.UsageEvent: "usage",
    events.TicketEvent: "ticket",
    events.SurveyEvent: "survey",
}


def decoder(topics: Topics) -> Callable[[str, bytes | None], Inbound]:
    """Decode by topic; anything undecodable raises :class:`DecodeFailure` (→ dead letter)."""

    def decode(topic: str, raw: bytes | None) -> Inbound:
        try:
            if topic == topics.accounts:
                return Tombstone("account") if raw is None else events.decode_account(raw)
            if topic == topics.people:
                return Tombstone("person") if raw is None else events.decode_person(raw)
            return events.decode_event(raw or b"")
        except (msgspec.DecodeError, ValueError) as exc:
            metrics.DEAD_LETTERED.labels("undecodable").inc()
            raise DecodeFailure("undecodable", f"{type(exc).__name__}: {exc}") from None

    return decode


@dataclass(slots=True)
class Plan:
    events: list[Event] = field(default_factory=list)
    accounts: dict[str, AccountRecord | None] = field(default_factory=dict)
    people: dict[str, PersonRecord | None] = field(default_factory=dict)
    rejected: list[tuple[Record[Inbound], Rejection]] = field(default_factory=list)
    duplicates: int = 0


def plan(
    records: Sequence[Record[Inbound]],
    now: datetime,
    *,
    max_age: timedelta,
    future_tolerance: timedelta,
) -> Plan:
    """What the batch asks for, before looking at the database."""
    out = Plan()
    seen: set[str] = set()
    for record in records:
        value = record.value
        if isinstance(value, AccountRecord):
            out.accounts[value.account_id] = value
        elif isinstance(value, PersonRecord):
            out.people[value.person_id] = value
        elif isinstance(value, Tombstone):
            key = (record.key or b"").decode(errors="replace")
            if not key:
                out.rejected.append((record, Rejection("no_key", "a tombstone without a key")))
            elif value.kind == "account":
                out.accounts[key] = None
            else:
                out.people[key] = None
        else:
            rejection = aggregate.admit(
                value, now, max_age=max_age, future_tolerance=future_tolerance
            )
            if rejection is not None:
                out.rejected.append((record, rejection))
            elif value.event_id in seen:
                out.duplicates += 1
            else:
                seen.add(value.event_id)
                out.events.append(value)
    return out


class BatchHandler:
    """The consumer loop's handler: makes a batch's effects durable, returns its refusals."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        clock: Clock,
        *,
        max_event_age: timedelta,
        future_tolerance: timedelta,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._max_age = max_event_age
        self._future_tolerance = future_tolerance
        self._on_queued = on_queued

    async def __call__(
        self, records: Sequence[Record[Inbound]]
    ) -> list[tuple[Record[Inbound], Rejection]]:
        started = time.perf_counter()
        decided = plan(
            records,
            self._clock.now(),
            max_age=self._max_age,
            future_tolerance=self._future_tolerance,
        )
        async with self._pool.acquire() as conn, conn.transaction():
            new_ids = await store.claim_events(
                conn, [(e.event_id, e.occurred_at) for e in decided.events]
            )
            fresh = [e for e in decided.events if e.event_id in new_ids]
            batch = aggregate.coalesce(fresh)
            await store.apply_aggregates(conn, batch)
            await store.apply_accounts(conn, decided.accounts)
            await store.apply_people(conn, decided.people)
            await store.mark_dirty(conn, [*batch.accounts, *decided.accounts])
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.EVENTS_DUPLICATE.inc(decided.duplicates + len(decided.events) - len(fresh))
        for kind, count in Counter(_KINDS[type(e)] for e in fresh).items():
            metrics.EVENTS_CONSUMED.labels(kind).inc(count)
        if decided.accounts:
            metrics.RECORDS_CONSUMED.labels("account").inc(len(decided.accounts))
        if decided.people:
            metrics.RECORDS_CONSUMED.labels("person").inc(len(decided.people))
        for _, rejection in decided.rejected:
            metrics.DEAD_LETTERED.labels(rejection.code).inc()
        if fresh or decided.accounts:
            self._on_queued()
        return decided.rejected
