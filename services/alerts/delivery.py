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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts import metrics, store
from services.alerts.messages import message_id, thread_key, thread_root
from services.alerts.notifiers import Delivered, Message, Notifier, Outcome, Permanent, Retry
from services.alerts.routing import Destination

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


def backoff_seconds(
    attempts: int, initial: float, maximum: float, rng: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with jitter: in [d/2, d] where d = initial·2^(attempts−1) ≤ max."""
    ceiling = min(maximum, initial * 2 ** max(0, attempts - 1))
    return float(ceiling / 2 + rng() * ceiling / 2)


def _real_now() -> datetime:
    return datetime.now(UTC)


class DeliveryWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        notifiers: Mapping[str, Notifier],
        config: DeliveryConfig,
        *,
        name: str,
        now: Callable[[], datetime] = _real_now,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._engine = engine
        self._notifiers = notifiers
        self._config = config
        self.name = name
        self._now = now
        self._rng = rng
        self.idle = False  # waiting for a NOTIFY or its poll

    # -- the loop ----------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event, wakeup: asyncio.Event) -> None:
        """Claim and send until ``stopping``; sleep until ``wakeup`` (NOTIFY) or the poll."""
        while not stopping.is_set():
            try:
                if await self.run_once():
                    continue  # more may be due right away
                wakeup.clear()
                sleep_seconds = await self._sleep_seconds()
            except Exception:  # the database is gone, say: the worker waits and tries again
                log.exception("delivery pass failed", extra={"worker": self.name})
                await _wait(stopping, self._config.poll_seconds)
                continue
            self.idle = True
            try:
                await _wait_any(stopping, wakeup, sleep_seconds)
            finally:
                self.idle = False

    async def _sleep_seconds(self) -> float:
        """Until the next due row, at most the poll interval."""
        async with self._engine.connect() as conn:
            result = await conn.execute(
                text("SELECT min(next_attempt_at) FROM alerts.outbox WHERE state = 'pending'")
            )
            due: datetime | None = result.scalar()
        if due is None:
            return self._config.poll_seconds
        return max(0.005, min(self._config.poll_seconds, (due - self._now()).total_seconds()))

    async def run_once(self) -> int:
        """One claim and its sends; returns how many rows were handled."""
        claimed = await self.claim()
        if not claimed:
            return 0
        await asyncio.gather(*(self._deliver(row) for row in claimed))
        return len(claimed)

    # -- 1. claim ----------------------------------------------------------------------------

    async def claim(self) -> list[Mapping[Any, Any]]:
        now = self._now()
        config = self._config
        async with self._engine.begin() as conn:
            expired = await conn.execute(
                text(
                    "UPDATE alerts.outbox SET state = 'pending', claimed_by = NULL, "
                    "claimed_until = NULL, next_attempt_at = :now, "
                    "last_error = 'lease expired: the outcome of the last attempt is unknown' "
                    "WHERE state = 'sending' AND claimed_until < :now RETURNING id, channel"
                ),
                {"now": now},
            )
            for _id, channel in expired:
                metrics.LEASES_EXPIRED.labels(channel).inc()
            rows = (
                (
                    await conn.execute(
                        text(
                            "SELECT o.id, o.channel, o.address FROM alerts.outbox o "
                            "WHERE o.state = 'pending' AND o.next_attempt_at <= :now "
                            "AND (o.depends_on IS NULL OR NOT EXISTS (SELECT 1 FROM "
                            "alerts.outbox d WHERE d.id = o.depends_on "
                            "AND d.state IN ('pending', 'sending'))) "
                            "AND NOT EXISTS (SELECT 1 FROM alerts.pacing p WHERE "
                            "o.channel = 'slack' AND p.address = o.address AND p.next_at > :now) "
                            "ORDER BY o.next_attempt_at, o.id LIMIT :limit "
                            "FOR UPDATE OF o SKIP LOCKED"
                        ),
                        {"now": now, "limit": config.batch_size},
                    )
                )
                .mappings()
                .all()
            )
            if not rows:
                return []
            chosen: list[int] = []
            slack_first: dict[str, int] = {}
            for row in rows:
                if row["channel"] == "slack" and config.slack_channel_interval > timedelta(0):
                    slack_first.setdefault(row["address"], row["id"])
                else:
                    chosen.append(row["id"])
            if slack_first:
                reserved = await conn.execute(
                    text(
                        "INSERT INTO alerts.pacing AS p (address, next_at) "
                        "SELECT unnest(CAST(:addresses AS text[])), :next_at "
                        "ON CONFLICT (address) DO UPDATE SET next_at = EXCLUDED.next_at "
                        "WHERE p.next_at <= :now RETURNING address"
                    ),
                    {
                        "addresses": list(slack_first),
                        "next_at": now + config.slack_channel_interval,
                        "now": now,
                    },
                )
                chosen += [slack_first[a] for (a,) in reserved]
            if not chosen:
                return []
            claimed = (
                (
                    await conn.execute(
                        text(
                            "UPDATE alerts.outbox o SET state = 'sending', claimed_by = :me, "
                            "claimed_until = :until, attempts = attempts + 1 "
                            "WHERE id = ANY(:ids) RETURNING o.*, "
                            "(SELECT ref FROM alerts.threads t "
                            "WHERE t.thread_key = o.thread_key) AS thread_ref"
                        ),
                        {"me": self.name, "until": now + config.lease, "ids": chosen},
                    )
                )
                .mappings()
                .all()
            )
        return list(claimed)

    # -- 2. send and 3. record -----------------------------------------------------------------

    async def _deliver(self, row: Mapping[Any, Any]) -> None:
        destination = Destination(row["channel"], row["address"], row["mention"])
        account_id = row["account_id"]
        message = Message(
            key=row["key"],
            kind=row["kind"],
            destination=destination,
            payload=row["payload"],
            message_id=row["message_id"],
            thread_root=(
                thread_root(account_id, destination.address, self._config.message_id_domain)
                if account_id and destination.channel == "email"
                else None
            ),
            thread_ref=row["thread_ref"],
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
                log.exception("notifier raised", extra={"key": row["key"]})
                outcome = Retry(f"notifier raised {type(exc).__name__}")
        metrics.SEND_SECONDS.labels(destination.channel).observe(time.perf_counter() - started)
        try:
            await self._record(row, outcome)
        except Exception:
            log.exception(
                "could not record a delivery outcome; the lease will expire and it is retried",
                extra={"key": row["key"], "outcome": type(outcome).__name__},
            )

    async def _record(self, row: Mapping[Any, Any], outcome: Outcome) -> None:
        now = self._now()
        config = self._config
        channel = row["channel"]
        params: dict[str, Any] = {"id": row["id"], "me": self.name, "now": now}
        if isinstance(outcome, Retry) and now - row["created_at"] >= config.give_up:
            outcome = Permanent(f"gave up after {row['attempts']} attempts: {outcome.reason}")
            metrics.DELIVERIES.labels(channel, "given_up").inc()
        async with self._engine.begin() as conn:
            if channel == "slack" and config.slack_channel_interval > timedelta(0):
                # Pace from when this send ended, so Slack sees the interval between receipts.
                await conn.execute(
                    text(
                        "INSERT INTO alerts.pacing AS p (address, next_at) "
                        "VALUES (:address, :next) ON CONFLICT (address) DO UPDATE "
                        "SET next_at = GREATEST(p.next_at, EXCLUDED.next_at)"
                    ),
                    {"address": row["address"], "next": now + config.slack_channel_interval},
                )
            if isinstance(outcome, Delivered):
                result = await conn.execute(
                    text(
                        "UPDATE alerts.outbox SET state = 'sent', sent_at = :now, "
                        "provider_ref = :ref, claimed_until = NULL, "
                        "last_error = NULL WHERE id = :id AND claimed_by = :me "
                        "AND state = 'sending'"
                    ),
                    {**params, "ref": outcome.ref},
                )
                if outcome.ref and row["thread_key"] and row["kind"] != "resolved":
                    await conn.execute(
                        text(
                            "INSERT INTO alerts.threads (thread_key, ref, updated_at) "
                            "VALUES (:key, :ref, :now) ON CONFLICT (thread_key) DO UPDATE "
                            "SET ref = EXCLUDED.ref, updated_at = EXCLUDED.updated_at"
                        ),
                        {"key": row["thread_key"], "ref": outcome.ref, "now": now},
                    )
                status = "sent"
            elif isinstance(outcome, Retry):
                delay = (
                    outcome.after_seconds
                    if outcome.after_seconds is not None
                    else backoff_seconds(
                        row["attempts"],
                        config.backoff_initial_seconds,
                        config.backoff_max_seconds,
                        self._rng,
                    )
                )
                result = await conn.execute(
                    text(
                        "UPDATE alerts.outbox SET state = 'pending', claimed_by = NULL, "
                        "claimed_until = NULL, next_attempt_at = :next, last_error = :error "
                        "WHERE id = :id AND claimed_by = :me AND state = 'sending'"
                    ),
                    {**params, "next": now + timedelta(seconds=delay), "error": outcome.reason},
                )
                if outcome.after_seconds is not None and channel == "slack":
                    # Slack's rate limit is per channel: hold every message to it as long.
                    await conn.execute(
                        text(
                            "INSERT INTO alerts.pacing AS p (address, next_at) "
                            "VALUES (:address, :next) ON CONFLICT (address) DO UPDATE "
                            "SET next_at = GREATEST(p.next_at, EXCLUDED.next_at)"
                        ),
                        {"address": row["address"], "next": now + timedelta(seconds=delay)},
                    )
                status = "rate_limited" if outcome.after_seconds is not None else "retry"
                metrics.RETRIES.labels(channel, status).inc()
            else:
                fallbacks = [Destination.from_json(d) for d in row["fallbacks"]]
                state = "fallen_back" if fallbacks else "failed"
                result = await conn.execute(
                    text(
                        "UPDATE alerts.outbox SET state = :state, claimed_by = NULL, "
                        "claimed_until = NULL, last_error = :error "
                        "WHERE id = :id AND claimed_by = :me AND state = 'sending'"
                    ),
                    {**params, "state": state, "error": outcome.reason},
                )
                if fallbacks and result.rowcount:
                    await store.enqueue(conn, [self._fallback_row(row, fallbacks)])
                status = "fallback" if fallbacks else "failed"
            if not result.rowcount:
                # Our lease expired and another worker took the row over.
                log.warning("lost the lease of an outbox row", extra={"key": row["key"]})
                metrics.DELIVERIES.labels(channel, "lease_lost").inc()
                return
        metrics.DELIVERIES.labels(channel, status).inc()
        log.info(
            "delivery attempt",
            extra={
                "key": row["key"],
                "channel": channel,
                "outcome": status,
                "attempt": row["attempts"],
                "reason": getattr(outcome, "reason", None),
            },
        )

    def _fallback_row(self, row: Mapping[Any, Any], fallbacks: list[Destination]) -> dict[str, Any]:
        first, rest = fallbacks[0], fallbacks[1:]
        key = f"{row['key']}>{first.channel}:{first.address}"
        now = self._now()
        return {
            "key": key,
            "kind": row["kind"],
            "account_id": row["account_id"],
            "channel": first.channel,
            "address": first.address,
            "mention": first.mention,
            "fallbacks": [d.to_json() for d in rest],
            "payload": row["payload"],
            "message_id": message_id(key, self._config.message_id_domain),
            "thread_key": thread_key(row["account_id"], first) if row["account_id"] else None,
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }


async def _wait(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


async def _wait_any(stopping: asyncio.Event, wakeup: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stopping.wait()), asyncio.ensure_future(wakeup.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class OutboxListener:
    """LISTEN on the outbox channel; every NOTIFY sets ``wakeup`` so idle workers claim now."""

    def __init__(self, dsn: str, wakeup: asyncio.Event) -> None:
        self._dsn = dsn
        self._wakeup = wakeup
        self._conn: Any = None

    async def start(self) -> None:
        self._conn = await asyncpg.connect(self._dsn)
        await self._conn.add_listener(store.OUTBOX_CHANNEL, self._notified)

    def _notified(self, *_args: Any) -> None:
        self._wakeup.set()

    async def stop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None
