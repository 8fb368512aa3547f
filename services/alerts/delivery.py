"""Delivery workers: claim outbox rows, send them, record the outcome.

The protocol (what makes "two workers never send the same notification" hold, and bounds what
a crash can do):

1. **claim** — in one short transaction: due ``pending`` rows are selected ``FOR UPDATE SKIP
   LOCKED`` (so concurrent workers, in this process or another, never pick the same row); per
   Slack channel only one row is taken per ``slack_channel_interval_seconds``, reserved in the
   ``pacing`` table; the taken rows become ``sending`` with ``claimed_by`` and a lease
   (``claimed_until``). Commit.
2. **send** through the channel's notifier (outside any transaction).
3. **record** — ``sent`` / back to ``pending`` with its next attempt / ``fallen_back`` plus a
   new row for the next destination / ``failed``; only if the row is still ours
   (``claimed_by``), in one transaction.

A worker killed between 2 and 3 leaves its row ``sending``; once the lease passes, any worker
puts it back to ``pending`` and it is sent again: at-least-once, with the window being the
time between the provider accepting the message and step 3 committing. The retried email
carries the same Message-ID, so mail clients show it once. Retries back off exponentially with
jitter; a 429 waits exactly its ``Retry-After`` (and holds the whole channel as long). After
``give_up`` of trying, a transient failure is treated as permanent (so it falls back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts import metrics, store
from services.alerts.messages import outbox_entry, thread_root
from services.alerts.notifiers import Delivered, Message, Notifier, Outcome, Permanent, Retry
from services.alerts.store import Candidate, ClaimedRow
from shared.clock import SYSTEM_CLOCK, Clock
from shared.db import database_gone
from shared.worker import Backoff, Worker, backoff_seconds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryConfig:
    batch_size: int = 20
    poll_seconds: float = 1.0
    lease: timedelta = timedelta(seconds=60)
    backoff_initial_seconds: float = 2.0
    backoff_max_seconds: float = 600.0
    give_up: timedelta = timedelta(days=1)
    slack_channel_interval: timedelta = timedelta(seconds=1)
    message_id_domain: str = "churnwatch.invalid"


class DeliveryWorker(Worker):
    def __init__(
        self,
        engine: AsyncEngine,
        notifiers: Mapping[str, Notifier],
        config: DeliveryConfig,
        *,
        name: str,
        clock: Clock = SYSTEM_CLOCK,
        service_clock: Clock | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(backoff=Backoff(config.poll_seconds, config.poll_seconds))
        self._engine = engine
        self._notifiers = notifiers
        self._config = config
        self.name = name
        self._clock = clock
        # The service's clock (simulated in the demo): rows held for working hours use it.
        self._service_clock = service_clock or clock
        self._rng = rng

    # -- the loop ----------------------------------------------------------------------------

    async def step(self) -> float:
        """Claim and send; rest until a NOTIFY wakes the worker or the next row is due."""
        if await self.run_once():
            return 0  # more may be due right away
        return await self._sleep_seconds()

    def transient(self, error: Exception) -> bool:
        return database_gone(error)

    async def _sleep_seconds(self) -> float:
        """Until the next due row, at most the poll interval."""
        async with self._engine.connect() as conn:
            due = await store.next_due(conn, self._service_clock.now())
        if due is None:
            return self._config.poll_seconds
        return max(0.005, min(self._config.poll_seconds, (due - self._clock.now()).total_seconds()))

    async def run_once(self) -> int:
        """One claim and its sends; returns how many rows were handled."""
        claimed = await self.claim()
        if not claimed:
            return 0
        await asyncio.gather(*(self._deliver(row) for row in claimed))
        return len(claimed)

    # -- 1. claim ----------------------------------------------------------------------------

    async def claim(self) -> list[ClaimedRow]:
        now = self._clock.now()
        config = self._config
        pacing = config.slack_channel_interval > timedelta(0)
        async with self._engine.begin() as conn:
            for channel in await store.expire_leases(conn, now):
                metrics.LEASES_EXPIRED.labels(channel).inc()
            due = await store.candidates(
                conn, now, config.batch_size, clock_now=self._service_clock.now()
            )
            chosen, paced = choose(due, pacing=pacing)
            if paced:
                taken = await store.hold_channels(
                    conn, list(paced), now + config.slack_channel_interval, if_free_at=now
                )
                chosen += [paced[a] for a in taken]
            if not chosen:
                return []
            return await store.take(conn, chosen, worker=self.name, until=now + config.lease)

    # -- 2. send and 3. record -----------------------------------------------------------------

    async def _deliver(self, row: ClaimedRow) -> None:
        destination = row.destination
        message = Message(
            key=row.key,
            kind=row.kind,
            destination=destination,
            payload=row.payload,
            message_id=row.message_id,
            thread_root=(
                thread_root(row.account_id, destination.address, self._config.message_id_domain)
                if row.account_id and destination.channel == "email"
                else None
            ),
            thread_ref=row.thread_ref,
        )
        notifier = self._notifiers.get(destination.channel)
        started = time.perf_counter()
        outcome: Outcome
        if notifier is None:
            outcome = Permanent(f"the {destination.channel} channel is not configured")
        else:
            try:
                outcome = await notifier.send(message)
            except Exception as exc:  # a bug in a notifier must not stall the row
                log.exception("notifier raised", extra={"key": row.key})
                outcome = Retry(f"notifier raised {type(exc).__name__}")
        metrics.SEND_SECONDS.labels(destination.channel).observe(time.perf_counter() - started)
        try:
            await self._record(row, outcome)
        except Exception:
            log.exception(
                "could not record a delivery outcome; the lease will expire and it is retried",
                extra={"key": row.key, "outcome": type(outcome).__name__},
            )

    async def _record(self, row: ClaimedRow, outcome: Outcome) -> None:
        now = self._clock.now()
        channel = row.destination.channel
        verdict = judge(row, outcome, self._config, now, self._rng)
        if verdict.given_up:
            metrics.DELIVERIES.labels(channel, "given_up").inc()
        async with self._engine.begin() as conn:
            ours = await store.record(conn, row, verdict.outcome, worker=self.name, now=now)
        if not ours:
            # Our lease expired and another worker took the row over.
            log.warning("lost the lease of an outbox row", extra={"key": row.key})
            metrics.DELIVERIES.labels(channel, "lease_lost").inc()
            return
        if verdict.status in ("retry", "rate_limited"):
            metrics.RETRIES.labels(channel, verdict.status).inc()
        metrics.DELIVERIES.labels(channel, verdict.status).inc()
        log.info(
            "delivery attempt",
            extra={
                "key": row.key,
                "channel": channel,
                "outcome": verdict.status,
                "attempt": row.attempts,
                "reason": verdict.outcome.error,
            },
        )


# ---------------------------------------------------------------------------------------------
# The decisions (pure)


def choose(due: list[Candidate], *, pacing: bool) -> tuple[list[int], dict[str, int]]:
    """Which due rows to take: all but Slack rows when Slack is paced; of those, the first per
    channel, returned by address, to take only if its channel is free."""
    chosen: list[int] = []
    first_per_channel: dict[str, int] = {}
    for row in due:
        if row.channel == "slack" and pacing:
            first_per_channel.setdefault(row.address, row.id)
        else:
            chosen.append(row.id)
    return chosen, first_per_channel


@dataclass(frozen=True)
class Verdict:
    outcome: store.Outcome
    status: str  # sent, retry, rate_limited, fallback, failed (the metrics' outcome label)
    given_up: bool = False


def judge(
    row: ClaimedRow,
    outcome: Outcome,
    config: DeliveryConfig,
    now: datetime,
    rng: Callable[[], float] = random.random,
) -> Verdict:
    """What becomes of a row after a send: sent; tried again later (exponential backoff, or
    exactly a 429's ``Retry-After``, which holds the whole Slack channel as long); or, when
    retrying cannot help or ``give_up`` passed, fallen back to the next destination or failed.
    A Slack channel is held ``slack_channel_interval`` from the end of each send."""
    given_up = False
    if isinstance(outcome, Retry) and now - row.created_at >= config.give_up:
        outcome = Permanent(f"gave up after {row.attempts} attempts: {outcome.reason}")
        given_up = True
    slack = row.destination.channel == "slack"
    holds: list[datetime] = []
    if slack and config.slack_channel_interval > timedelta(0):
        holds.append(now + config.slack_channel_interval)
    if isinstance(outcome, Delivered):
        thread = (
            (row.thread_key, outcome.ref)
            if outcome.ref and row.thread_key and row.kind not in ("resolved", "update")
            else None
        )
        verdict = store.Outcome(
            "sent", provider_ref=outcome.ref, provider_channel=outcome.channel, thread=thread
        )
        status = "sent"
    elif isinstance(outcome, Retry):
        delay = (
            outcome.after_seconds
            if outcome.after_seconds is not None
            else backoff_seconds(
                row.attempts, config.backoff_initial_seconds, config.backoff_max_seconds, rng
            )
        )
        next_at = now + timedelta(seconds=delay)
        if outcome.after_seconds is not None and slack:
            holds.append(next_at)  # Slack's rate limit is per channel: hold it as long
        verdict = store.Outcome("pending", error=outcome.reason, next_attempt_at=next_at)
        status = "rate_limited" if outcome.after_seconds is not None else "retry"
    else:
        fallback = (
            outbox_entry(
                f"{row.key}>{row.fallbacks[0].channel}:{row.fallbacks[0].address}",
                row.kind,
                row.account_id,
                row.fallbacks,
                row.payload,
                config.message_id_domain,
                now,
            )
            if row.fallbacks
            else None
        )
        verdict = store.Outcome(
            "fallen_back" if fallback else "failed", error=outcome.reason, fallback=fallback
        )
        status = "fallback" if fallback else "failed"
    return Verdict(replace(verdict, hold_channel_until=max(holds, default=None)), status, given_up)


class OutboxListener:
    """LISTEN on the outbox channel; every NOTIFY wakes the workers, so idle ones claim now."""

    def __init__(self, dsn: str, workers: Sequence[Worker]) -> None:
        self._dsn = dsn
        self._workers = workers
        self._conn: Any = None

    async def start(self) -> None:
        self._conn = await asyncpg.connect(self._dsn)
        await self._conn.add_listener(store.OUTBOX_CHANNEL, self._notified)

    def _notified(self, *_args: Any) -> None:
        for worker in self._workers:
            worker.wake()

    async def stop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None
