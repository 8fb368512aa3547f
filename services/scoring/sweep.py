"""The time-driven sweep: the accounts due rescored as of now, so silence costs health.

Scores decay with time even when no event arrives (days since the last activity grow, the
7-day window empties). Data changes are rescored through the dirty queue; what time alone
changes is due at each account's ``health.next_eval_at`` (:mod:`services.scoring.due`: the next
UTC midnight, or a staleness or silence crossing before it), set by every write of its score.
So every ``SCORING_SWEEP_INTERVAL_SECONDS`` (clock time) one instance rescores the accounts
due as of one moment — ``next_eval_at <= as_of`` — in chunks of ``SCORING_SWEEP_CHUNK_ACCOUNTS``
(keyset pagination over ``(next_eval_at, account_id)``; each chunk one transaction, facts
gathered by one set-based query per chunk), then purges what is past its horizon. A pass
costs what is due: about one rescoring per account per day, plus the crossings.

Several instances share one schedule through the database: the sweep runs under an advisory
lock, and only when the last recorded sweep is at least one interval old.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from services.scoring import metrics
from services.scoring.scorer import Scorer
from services.scoring.store import sweeps
from shared.clock import Clock
from shared.db import database_gone
from shared.worker import Backoff, Worker

log = logging.getLogger(__name__)

BAND_COUNT_SECONDS = 300.0  # churnwatch_scoring_accounts{band} refreshed at most this often


@dataclass(frozen=True, slots=True)
class SweepResult:
    as_of: datetime
    accounts: int  # rescored
    changes: int
    seconds: float
    due: int = 0  # due when read (a rescorer or another sweeper may have been first)


@dataclass(frozen=True, slots=True)
class Horizons:
    """How long what is kept: event ids (dedup), daily rows, history."""

    dedup: timedelta
    daily_rows: timedelta
    history: timedelta


class Sweeper(Worker):
    name = "sweep"

    def __init__(
        self,
        scorer: Scorer,
        pool: asyncpg.Pool,
        clock: Clock,
        *,
        interval_seconds: float,
        chunk: int,
        horizons: Horizons,
        concurrency: int = 2,
        on_changes: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(backoff=Backoff(1.0, 10.0))
        self._scorer = scorer
        self._pool = pool
        self._clock = clock
        self._interval = timedelta(seconds=interval_seconds)
        self._chunk = chunk
        self._concurrency = concurrency
        self._horizons = horizons
        self._on_changes = on_changes
        self._bands_counted: float | None = None

    async def sweep(self, as_of: datetime) -> SweepResult:
        """Rescore the accounts due by ``as_of``, as of ``as_of``.

        Chunks are read in due-time order and rescored by ``concurrency`` workers, each chunk
        in its own transaction: while one worker waits for PostgreSQL, another computes
        scores. A rescored account's due time moves past ``as_of``; one whose due time moved
        while its chunk waited (another sweeper, the rescorer) is skipped once locked.
        """
        started = time.perf_counter()
        chunks: asyncio.Queue[list[str] | None] = asyncio.Queue(maxsize=self._concurrency)
        totals = [0, 0, 0]

        async def read_chunks() -> None:
            after: sweeps.DueKey | None = None
            try:
                while not self._stopping.is_set():
                    async with self._pool.acquire() as conn:
                        due = await sweeps.due_accounts_after(conn, as_of, after, self._chunk)
                    if not due:
                        break
                    totals[2] += len(due)
                    await chunks.put([account_id for _, account_id in due])
                    after = due[-1]
            finally:
                for _ in range(self._concurrency):
                    await chunks.put(None)

        async def rescore_chunks() -> None:
            while (ids := await chunks.get()) is not None:
                async with self._pool.acquire() as conn, conn.transaction():
                    done = await self._scorer.rescore(conn, ids, as_of, cause="sweep", due_by=as_of)
                totals[0] += done.accounts
                totals[1] += done.changes
                if done.changes:
                    self._on_changes()

        await asyncio.gather(read_chunks(), *(rescore_chunks() for _ in range(self._concurrency)))
        accounts, changes, due = totals
        seconds = time.perf_counter() - started
        metrics.SWEEP_SECONDS.observe(seconds)
        metrics.SWEEP_ACCOUNTS.set(accounts)
        metrics.SWEEP_DUE.set(due)
        await self._count_bands()
        return SweepResult(as_of, accounts, changes, seconds, due)

    async def _count_bands(self) -> None:
        """Accounts per band, at most once per ``BAND_COUNT_SECONDS`` of real time: the count
        reads every score, and a pass now costs only what is due."""
        last = self._bands_counted
        if last is not None and time.monotonic() - last < BAND_COUNT_SECONDS:
            return
        async with self._pool.acquire() as conn:
            for band, count in (await sweeps.accounts_per_band(conn)).items():
                metrics.ACCOUNTS_PER_BAND.labels(band).set(count)
        self._bands_counted = time.monotonic()

    async def purge(self, as_of: datetime) -> dict[str, int]:
        async with self._pool.acquire() as conn:
            return await sweeps.purge(
                conn,
                dedup_before=as_of - self._horizons.dedup,
                days_before=(as_of - self._horizons.daily_rows).date(),
                history_before=as_of - self._horizons.history,
            )

    async def run_if_due(self) -> SweepResult | None:
        """Sweep as of now unless another instance is sweeping or swept within the interval."""
        as_of = self._clock.now()
        async with self._pool.acquire() as lock:
            if not await sweeps.try_sweep_lock(lock):
                return None
            try:
                last = await sweeps.last_sweep(lock)
                if last is not None and as_of - last < self._interval:
                    return None
                started_at = self._clock.now()
                result = await self.sweep(as_of)
                await sweeps.record_sweep(
                    lock,
                    as_of=as_of,
                    started_at=started_at,
                    accounts=result.accounts,
                    seconds=result.seconds,
                )
                purged = await self.purge(as_of)
            finally:
                await sweeps.sweep_unlock(lock)
        log.info(
            "sweep done",
            extra={
                "as_of": as_of.isoformat(),
                "due": result.due,
                "accounts": result.accounts,
                "changes": result.changes,
                "seconds": round(result.seconds, 3),
                "purged": purged,
            },
        )
        return result

    async def step(self) -> float:
        """Sweep when due; look again after the interval (at most 10 s: another instance may
        have swept, or the clock is simulated)."""
        await self.run_if_due()
        wait = self._clock.real_seconds_for(self._interval.total_seconds())
        return min(max(wait, 0.05), 10.0)

    def transient(self, error: Exception) -> bool:
        return database_gone(error)
