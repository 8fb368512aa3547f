"""The scheduler: what happens because time passes, not because a message arrived.

Every ``tick`` (real seconds) it:

- judges the accounts due a time-driven evaluation (``account_health.next_eval_at`` ≤ now:
  a renewal window opens, ``no_activity`` reaches a step, a green account reaches the advocacy
  days, a score peak leaves ``score_dropped``'s window; or the account's record changed) — the
  same gather → :func:`~services.alerts.decide.on_time` → apply as a consumed batch, each
  account under its advisory lock (accounts another replica holds are skipped and stay due),
  in pages of ``TIME_ACCOUNTS_PER_PASS``, at most ``PASSES_PER_TICK`` pages a tick, the
  longest due first;
- flushes the accounts whose alerts are due (``wake_at`` ≤ now: group wait over, repeat
  interval passed, snooze or silence ended, escalation due) — each account under its advisory
  lock, skipping accounts another replica holds;
- sends each model rollout's summary to CS ops once, when it is due (:func:`plan_rollout`);
- sends the daily digests that are due (``people.next_digest_at`` ≤ now, rows claimed with
  ``FOR UPDATE SKIP LOCKED``), one per person per local date;
- refreshes the database-derived gauges (old rows are purged by ``retention.Purger``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts import decide, digest, feedback, hours, messages, metrics, routing, store
from services.alerts.accounts import apply, gather
from services.alerts.decide import Config
from services.alerts.messages import OutboxEntry
from shared.clock import Clock, utc_now
from shared.db import database_gone
from shared.worker import Backoff, Worker

log = logging.getLogger(__name__)

FLUSH_ACCOUNTS_PER_PASS = 200
TIME_ACCOUNTS_PER_PASS = 200
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
        await self.evaluate_time(now)
        # A backlog is worked through in a few passes; what is left waits for the next tick
        # (accounts another replica holds stay due, and must not make this loop spin).
        for _ in range(PASSES_PER_TICK):
            if await self.flush_due(now) < FLUSH_ACCOUNTS_PER_PASS:
                break
        await self.summarize_rollouts(now)
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

    # -- time-driven rules ----------------------------------------------------------------------

    async def evaluate_time(self, now: datetime) -> int:
        """Every page of accounts due a time-driven evaluation, up to ``PASSES_PER_TICK``
        pages; returns how many accounts were judged."""
        started = time.perf_counter()
        judged = 0
        opened: Counter[str] = Counter()
        for _ in range(PASSES_PER_TICK):
            due, done = await self.evaluate_due(now, opened)
            judged += done
            if due < TIME_ACCOUNTS_PER_PASS or done == 0:
                break  # caught up, or every due account is another replica's right now
        seconds = time.perf_counter() - started
        metrics.TIME_EVALUATIONS.observe(judged)
        metrics.TIME_PASS_SECONDS.observe(seconds)
        for rule, count in opened.items():
            metrics.TIME_OPENED.labels(rule).inc(count)
        if judged:
            log.info(
                "rules judged as time passed",
                extra={
                    "accounts": judged,
                    "opened": dict(opened),
                    "seconds": round(seconds, 4),
                    "now": now.isoformat(),
                },
            )
        return judged

    async def evaluate_due(self, now: datetime, opened: Counter[str]) -> tuple[int, int]:
        """One page: (accounts listed as due, accounts judged). ``opened`` counts the alerts
        opened, by rule."""
        async with self._engine.begin() as conn:
            due = await store.due_evaluations(conn, now, TIME_ACCOUNTS_PER_PASS)
            locked = await store.still_due(conn, await store.try_lock_accounts(conn, due), now)
            if not locked:
                return len(due), 0
            history_since = now - timedelta(days=self._config.ruleset.history_days)
            states = await gather(conn, locked, history_since=history_since)
            silences = await store.active_silences(conn, now)
            decisions = [
                decide.on_time(states[a], silences, self._config, now) for a in sorted(locked)
            ]
            await apply(conn, states, decisions, self._config, now=now, real_now=utc_now())
        for d in decisions:
            opened.update(a.rule for a in d.alerts if a.id is None)
        return len(due), len(locked)

    async def summarize_rollouts(self, now: datetime) -> int:
        """Write the summary of each model rollout now due (once: claimed in the same
        transaction); returns how many were written."""
        cs_ops = self._config.cs_ops or self._config.team_channel
        async with self._engine.begin() as conn:
            due = await store.claim_due_rollouts(conn, now)
            entries = [plan_rollout(r, cs_ops, self._config, real_now=utc_now()) for r in due]
            written = await store.enqueue(conn, [e for e in entries if e is not None])
        for rollout, entry in zip(due, entries, strict=True):
            log.info(
                "model rollout summarised",
                extra={
                    "model_version": rollout.model_version,
                    "previous_version": rollout.previous_version,
                    "accounts": rollout.accounts,
                    "worse": rollout.worse,
                    "better": rollout.better,
                    "sent": entry is not None,
                },
            )
        metrics.ROLLOUT_SUMMARIES.inc(len(written))
        return len(written)

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
            # CS leads see how each rule's alerts were judged (feedback.WINDOW).
            judged = await store.rule_feedback(conn, now - feedback.WINDOW)
            leads = await store.managers(conn, ids) if judged else set()
            entries = [feedback.with_rules(e, judged, leads) for e in entries]
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


def _works_on(person: store.PersonRow, slot: datetime, config: Config) -> bool:
    """Whether the digest's local day is one of the person's working days (no digest on a
    day off: what it would hold waits for the next working day's)."""
    own = hours.parse_working(person.working_hours) if person.working_hours else None
    working = own or config.people.working_hours
    return working is None or hours.local_date(person.time_zone, slot).weekday() in working.days


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
    hour has not come (the slot), when inactive, on a day off (not one of their working days),
    when nothing reaches a destination, or — with ``skip_empty`` — when there is nothing to
    say; every due person's next digest is set."""
    plan = DigestPlan([], [], {}, 0)
    for person in due:
        plan.next_at[person.person_id] = digest.next_digest_at(person.time_zone, options.hour, now)
        slot = digest.due_slot(person.time_zone, options.hour, now)
        if slot is None or not person.active or not _works_on(person, slot, config):
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
        recipient = routing.Recipient.of_person(person)
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


def plan_rollout(
    rollout: store.Rollout, cs_ops: routing.TeamChannel, config: Config, *, real_now: datetime
) -> OutboxEntry | None:
    """The one message about a model rollout, to CS ops (None: no CS-ops destination)."""
    recipient = routing.Recipient.of_channel(cs_ops, "CS ops")
    destinations = routing.destinations(recipient, config.channels, routing.TeamChannel())
    if not destinations:
        return None
    payload = rollout_payload(
        model_version=rollout.model_version,
        previous_version=rollout.previous_version,
        first_seen_at=rollout.first_seen_at,
        accounts=rollout.accounts,
        worse=rollout.worse,
        better=rollout.better,
        now=real_now,
    )
    return messages.outbox_entry(
        f"rollout:{rollout.model_version}",
        "rollout",
        None,
        destinations,
        payload,
        config.content.message_id_domain,
        real_now,
    )


def rollout_payload(
    *,
    model_version: str,
    previous_version: str,
    first_seen_at: datetime,
    accounts: int,
    worse: int,
    better: int,
    now: datetime,
) -> dict[str, Any]:
    """What CS ops read about a model rollout: plain lines, rendered as a notice."""
    same = accounts - worse - better
    title = f"Health model {model_version} rolled out (replacing {previous_version})"
    lines = [
        f"First scores with {model_version}: {first_seen_at:%Y-%m-%d %H:%M} UTC.",
        f"{accounts} account(s) re-scored so far: {worse} moved to a worse band, "
        f"{better} to a better one, {same} kept their band.",
        "These moves are the model's, not the customers': they opened no band or score alert, "
        "and each account's score history restarts with the new model. Rules that read levels "
        "(renewal window, inactivity, tickets, seats) still apply.",
        "Accounts re-scored later are re-baselined the same way, without another message.",
    ]
    return {
        "kind": "rollout",
        "title": title,
        "lines": lines,
        "model_version": model_version,
        "previous_version": previous_version,
        "accounts": accounts,
        "worse": worse,
        "better": better,
        "written_at": now.isoformat(),
    }
