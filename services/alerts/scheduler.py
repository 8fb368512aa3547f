"""The scheduler: what happens because time passes, not because a message arrived.

Every ``tick`` (real seconds) it:

- flushes the accounts whose alerts are due (``wake_at`` ≤ now: group wait over, repeat
  interval passed, snooze or silence ended, escalation due) — each account under its advisory
  lock, skipping accounts another replica holds;
- sends the daily digests that are due (``people.next_digest_at`` ≤ now, rows claimed with
  ``FOR UPDATE SKIP LOCKED``), one per person per local date;
- refreshes the database-derived gauges (old rows are purged by ``retention.Purger``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts import decide, digest, feedback, messages, metrics, routing, store
from services.alerts.accounts import apply, gather
from services.alerts.decide import Config
from services.alerts.messages import OutboxEntry
from shared.clock import Clock, utc_now
from shared.db import database_gone
from shared.worker import Backoff, Worker

log = logging.getLogger(__name__)

FLUSH_ACCOUNTS_PER_PASS = 200
DIGESTS_PER_PASS = 100
PASSES_PER_TICK = 10


@dataclass(frozen=True)
class DigestOptions:
    hour: int = 9
    silent_days: float = 7.0
    skip_empty: bool = True


class Scheduler(Worker):
    name = "scheduler"

    def __init__(
        self,
        engine: AsyncEngine,
        config: Config,
        clock: Clock,
        *,
        tick_seconds: float = 1.0,
        digest_options: DigestOptions = DigestOptions(),
        metrics_refresh_seconds: float = 5.0,
    ) -> None:
        super().__init__(backoff=Backoff(tick_seconds, tick_seconds))
        self._engine = engine
        self._config = config
        self._clock = clock
        self._tick = tick_seconds
        self._digest = digest_options
        self._metrics_every = metrics_refresh_seconds
        self._last_metrics = 0.0

    async def step(self) -> float:
        started = time.perf_counter()
        try:
            await self.tick()
        finally:
            metrics.SCHEDULER_SECONDS.observe(time.perf_counter() - started)
        return self._tick

    def transient(self, error: Exception) -> bool:
        return database_gone(error)

    async def tick(self) -> None:
        now = self._clock.now()
        # A backlog is worked through in a few passes; what is left waits for the next tick
        # (accounts another replica holds stay due, and must not make this loop spin).
        for _ in range(PASSES_PER_TICK):
            if await self.flush_due(now) < FLUSH_ACCOUNTS_PER_PASS:
                break
        for _ in range(PASSES_PER_TICK):
            if await self.send_digests(now) < DIGESTS_PER_PASS:
                break
        if time.monotonic() - self._last_metrics >= self._metrics_every:
            await self.refresh_metrics()
            self._last_metrics = time.monotonic()

    async def flush_due(self, now: datetime) -> int:
        """Decide for the accounts with a due alert; returns how many accounts were due."""
        async with self._engine.begin() as conn:
            due = await store.due_accounts(conn, now, FLUSH_ACCOUNTS_PER_PASS)
            locked = await store.try_lock_accounts(conn, due)
            if not locked:
                return len(due)
            states = await gather(conn, locked)
            silences = await store.active_silences(conn, now)
            decisions = [
                decide.on_tick(states[a], silences, self._config, now) for a in sorted(locked)
            ]
            await apply(conn, states, decisions, self._config, now=now, real_now=utc_now())
        return len(due)

    # -- digests -------------------------------------------------------------------------------

    async def send_digests(self, now: datetime) -> int:
        """Send the digests due now; returns how many people were due."""
        async with self._engine.begin() as conn:
            due = await store.claim_due_people(conn, now, DIGESTS_PER_PASS)
            if not due:
                return 0
            ids = [p.person_id for p in due]
            plan = plan_digests(
                due,
                await store.portfolios(conn, ids),
                await store.held_alerts(conn, ids),
                self._digest,
                self._config,
                now=now,
                real_now=utc_now(),
            )
            # Alerts diverted to the digest (over budget, digest-only) are in ``held``; say
            # how many went over the budget, and forget them once a digest showed them.
            over = await store.over_budget_counts(conn, ids)
            entries = [with_over_budget(e, over) for e in plan.entries]
            await store.enqueue(conn, entries)
            await store.clear_digest_items(
                conn, [e.payload["person"]["person_id"] for e in entries], now
            )
            await store.mark_notified(conn, plan.shown, now)
            await store.set_next_digests(conn, plan.next_at)
        if plan.sent:
            metrics.NOTIFICATIONS.labels("digest").inc(plan.sent)
        return len(due)

    async def refresh_metrics(self) -> None:
        async with self._engine.connect() as conn:
            counts = await store.open_counts(conn)
            waiting = await store.depth(conn)
            judged = await store.rule_feedback(conn, self._clock.now() - feedback.WINDOW)
        feedback.set_gauges(judged)
        metrics.ALERTS.clear()
        for rule, severity, state, count in counts:
            metrics.ALERTS.labels(rule, severity, state).set(count)
        metrics.OUTBOX_DEPTH.clear()
        for channel, count, _first in waiting:
            metrics.OUTBOX_DEPTH.labels(channel).set(count)
        oldest = min((first for _c, _n, first in waiting), default=None)
        real = utc_now()
        metrics.OUTBOX_OLDEST_AGE.set((real - oldest).total_seconds() if oldest else 0)


def with_over_budget(entry: OutboxEntry, over: Mapping[str, int]) -> OutboxEntry:
    """The digest with its count of alerts past the person's daily budget (if any)."""
    count = over.get(entry.payload["person"]["person_id"], 0)
    return replace(entry, payload={**entry.payload, "over_budget": count}) if count else entry


@dataclass(frozen=True)
class DigestPlan:
    entries: list[OutboxEntry]  # the digests to send
    shown: list[int]  # the held alerts they show
    next_at: dict[str, datetime]  # when each person's next digest is due
    sent: int  # how many people get one


def plan_digests(
    due: Sequence[store.PersonRow],
    portfolios: Mapping[str, list[digest.AccountLine]],
    held: Mapping[str, list[digest.HeldAlert]],
    options: DigestOptions,
    config: Config,
    *,
    now: datetime,
    real_now: datetime,
) -> DigestPlan:
    """The digests of the people due one (pure). A person gets none when their local digest
    hour has not come (the slot), when inactive, when nothing reaches a destination, or — with
    ``skip_empty`` — when there is nothing to say; every due person's next digest is set."""
    plan = DigestPlan([], [], {}, 0)
    for person in due:
        plan.next_at[person.person_id] = digest.next_digest_at(person.time_zone, options.hour, now)
        slot = digest.due_slot(person.time_zone, options.hour, now)
        if slot is None or not person.active:
            continue
        day = digest.local_date(person.time_zone, slot)
        built = digest.build(
            person.person_id,
            person.name,
            day,
            portfolios.get(person.person_id, []),
            held.get(person.person_id, []),
            now=now,
            silent_days=options.silent_days,
        )
        if built.empty and options.skip_empty:
            continue
        recipient = routing.Recipient(
            name=person.name,
            person_id=person.person_id,
            slack=person.slack_user_id,
            email=person.email,
            time_zone=person.time_zone,
        )
        destinations = routing.destinations(
            recipient,
            config.channels,
            routing.TeamChannel(),  # a personal digest never goes to the team channel
            prefer=config.digest_channel,
        )
        if not destinations:
            continue
        payload = messages.digest_payload(built, recipient, config.content, now)
        plan.entries.append(
            messages.outbox_entry(
                f"digest:{person.person_id}:{day.isoformat()}",
                "digest",
                None,
                destinations,
                payload,
                config.content.message_id_domain,
                real_now,
            )
        )
        plan.shown.extend(h.alert_id for h in built.held)
    return replace(plan, sent=len(plan.entries))
