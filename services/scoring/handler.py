"""One consumed batch: gather → decide → apply, in one database transaction.

1. **decide what comes in** (pure, :func:`plan`): events outside the lateness window are
   refused (``too_old`` / ``from_the_future``, dead-lettered by the loop with that reason);
   an event (its ``source``, ``account_id`` and ``event_id``) seen twice in the batch counts
   once; for account and person records the last one per key wins (a tombstone deletes);
2. **gather**: claim the events' keys in ``processed_events`` (``store.dedup``) — the ones
   already there are duplicates (redelivery, replay, a client retry) and are dropped;
3. **apply** the new events, coalesced per account and day (``aggregate.coalesce``), with one
   set-based merge per table — leaving out mask and activity rows that what this process
   already wrote covers (``known``) — the records, and queue the touched accounts for
   rescoring.

The transaction commits before the loop commits the offsets, so a crash anywhere means the
batch is delivered again and step 2 makes the second pass a no-op for what was committed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import asyncpg

from services.scoring import aggregate, metrics
from services.scoring.known import KnownRows
from services.scoring.store import dedup, dirty, writes
from shared import events
from shared.clock import Clock
from shared.events import AccountRecord, Event, PersonRecord, Topics
from shared.kafka import Record, Rejection, Tombstone, topic_decoder


class ConsumerLag:
    """How far behind the consumer is, in seconds: the age of the newest record of its last
    batch, or — when more is known to be waiting (:meth:`follow`) — the time the waiting
    records would take at the pace of the last batch, whichever is more.

    The handler writes it, the rescoring worker reads it (it gives way while a backlog is
    consumed). The age alone misses a backlog of fresh records (a burst, a bulk load produced
    moments ago): the records waiting see it. Kafka timestamps are wall-clock time, so the age
    is read against the wall clock whatever clock the service runs on.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._age = 0.0
        self._per_record = 0.0  # seconds per record: from one batch to the next ÷ its records
        self._last: tuple[float, int] | None = None  # when the last batch came, its records
        self._waiting: Callable[[], int] = lambda: 0

    def follow(self, waiting: Callable[[], int]) -> None:
        """Read the records still waiting from ``waiting`` (the loop's ``waiting_records``)."""
        self._waiting = waiting

    @property
    def seconds(self) -> float:
        return max(self._age, self._waiting() * self._per_record)

    def observe(self, records: Sequence[Record[Inbound]]) -> None:
        if not records:
            return  # an empty batch says nothing new
        at = self._monotonic()
        if self._last is not None:
            self._per_record = (at - self._last[0]) / self._last[1]
        self._last = (at, len(records))
        newest = max(r.timestamp_ms for r in records)
        if newest > 0:
            self._age = max(0.0, time.time() - newest / 1000)


Inbound = Event | AccountRecord | PersonRecord | Tombstone

RescoreInline = Callable[[asyncpg.Connection, list[str], set[str]], Awaitable[Collection[str]]]
"""Given the batch's transaction, the accounts it touched and those of them with a ticket, a
survey answer or an account record in it, rescores those it chooses to
(``scorer.InlineRescorer``) and returns them; the others are queued for the rescoring worker."""

_KINDS: dict[type[Event], str] = {
    events.UsageEvent: "usage",
    events.TicketEvent: "ticket",
    events.SurveyEvent: "survey",
}


def decoder(topics: Topics) -> Callable[[str, bytes | None], Inbound]:
    """Decode by topic; anything undecodable raises :class:`DecodeFailure` (→ dead letter)."""
    return topic_decoder(
        {topics.accounts: events.decode_account, topics.people: events.decode_person},
        default=events.decode_event,
        compacted={topics.accounts: "account", topics.people: "person"},
        on_undecodable=metrics.DEAD_LETTERED.labels("undecodable").inc,
    )


@dataclass(slots=True)
class Plan:
    events: list[Event] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)  # each event's dedup key (store.dedup)
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
    seen: set[bytes] = set()
    oldest, newest = now - max_age, now + future_tolerance
    kept, keys, key_of = out.events, out.keys, dedup.event_key
    for record in records:
        value = record.value
        kind = type(value)
        if kind in _KINDS:
            event: Event = value  # type: ignore[assignment]
            if not oldest <= event.occurred_at <= newest:
                rejection = aggregate.admit(
                    event, now, max_age=max_age, future_tolerance=future_tolerance
                )
                if rejection is not None:
                    out.rejected.append((record, rejection))
                    continue
            digest = key_of(event)  # the same source, account and event id: the same key
            if digest in seen:
                out.duplicates += 1
            else:
                seen.add(digest)
                kept.append(event)
                keys.append(digest)
        elif kind is AccountRecord:
            account: AccountRecord = value  # type: ignore[assignment]
            out.accounts[account.account_id] = account
        elif kind is PersonRecord:
            person: PersonRecord = value  # type: ignore[assignment]
            out.people[person.person_id] = person
        elif isinstance(value, Tombstone):
            key = (record.key or b"").decode(errors="replace")
            if not key:
                out.rejected.append((record, Rejection("no_key", "a tombstone without a key")))
            elif value.kind == "account":
                out.accounts[key] = None
            else:
                out.people[key] = None
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
        known: KnownRows | None = None,
        lag: ConsumerLag | None = None,
        rescore_inline: RescoreInline | None = None,
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._max_age = max_event_age
        self._future_tolerance = future_tolerance
        self._on_queued = on_queued
        self._rescore_inline = rescore_inline
        self._known = known if known is not None else KnownRows()
        self._lag = lag if lag is not None else ConsumerLag()
        self._legacy: datetime | Literal["unread"] | None = "unread"  # see store.dedup

    async def _legacy_until(self, conn: asyncpg.Connection) -> datetime | None:
        """Where legacy dedup keys end (read once), or None once no event that old is admitted."""
        if self._legacy == "unread":
            self._legacy = await dedup.legacy_until(conn)
        if self._legacy is None or self._legacy < self._clock.now() - self._max_age:
            return None
        return self._legacy

    async def __call__(
        self, records: Sequence[Record[Inbound]]
    ) -> list[tuple[Record[Inbound], Rejection]]:
        started = time.perf_counter()
        self._lag.observe(records)
        decided = plan(  # decide what comes in
            records,
            self._clock.now(),
            max_age=self._max_age,
            future_tolerance=self._future_tolerance,
        )
        hashes = decided.keys
        claims = [(h, e.occurred_at) for h, e in zip(hashes, decided.events, strict=True)]
        known = self._known
        async with self._pool.acquire() as conn, conn.transaction():
            legacy = dedup.legacy_keys(decided.events, await self._legacy_until(conn))
            new_ids = await dedup.claim_events(conn, claims, legacy=legacy)  # gather: new ones
            fresh = (
                decided.events
                if new_ids is None
                else [e for h, e in zip(hashes, decided.events, strict=True) if h in new_ids]
            )
            batch = aggregate.coalesce(fresh)  # decide: the rows
            users, features = known.new_users(batch.users), known.new_features(batch.features)
            activity = known.new_activity(batch.activity)
            written = len(claims)  # apply
            written += await writes.apply_aggregates(
                conn, batch, masks=(users, features), activity=activity
            )
            await writes.apply_accounts(conn, decided.accounts)
            await writes.apply_people(conn, decided.people)
            written += len(decided.accounts) + len(decided.people)
            touched = sorted({*batch.activity, *decided.accounts})
            if self._rescore_inline is not None:  # scored in this transaction: not queued
                signals = {a for a, _ in batch.tickets} | {a for a, _ in batch.surveys}
                scored = await self._rescore_inline(
                    conn, touched, signals | decided.accounts.keys()
                )
                touched = [a for a in touched if a not in scored]
            written += await dirty.mark_dirty(conn, touched)
        known.remember(users, features, activity)  # durable now
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.ROWS_WRITTEN.inc(written)
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
