"""Retention: the worker that deletes what the service no longer needs, after configurable
horizons, in bounded batches (see :mod:`services.alerts.store.retention` for what goes).

Every ``every`` (real time) it purges each table: batches of ``batch_size`` rows, each in its
own short transaction, at most ``max_batches`` per table per pass (a backlog is worked off over
the next passes instead of one long one). ``churnwatch_alerts_purged_rows_total{table}``
counts what went.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts import metrics, store
from shared.clock import Clock, utc_now
from shared.db import database_gone
from shared.worker import Backoff, Worker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retention:
    resolved_alerts: timedelta = timedelta(days=90)
    outbox: timedelta = timedelta(days=30)
    used_links: timedelta = timedelta(days=1)  # after the link expired
    history: timedelta = timedelta(days=30)  # dedup ids, score history, digest items, budgets
    batch_size: int = 1000
    max_batches: int = 10
    every: timedelta = timedelta(hours=1)


def cutoffs(retention: Retention, now: datetime, real_now: datetime) -> dict[str, datetime]:
    """Per table, the moment before which a row is old. Rows stamped by the service's clock
    (alerts, links, scores, digest items, budgets) are judged by it; rows stamped by the
    wall clock (outbox, the dedup set) by the wall clock — the two differ in the demo."""
    return {
        "alerts": now - retention.resolved_alerts,
        "outbox": real_now - retention.outbox,
        "used_links": now - retention.used_links,
        "processed_changes": real_now - retention.history,
        "score_history": now - retention.history,
        "digest_items": now - retention.history,
        "alert_budget": now - retention.history,
    }


async def purge(
    engine: AsyncEngine, retention: Retention, *, now: datetime, real_now: datetime
) -> dict[str, int]:
    """One pass over every table; returns the rows deleted per table."""
    purged: dict[str, int] = {}
    for table, cutoff in cutoffs(retention, now, real_now).items():
        purged[table] = 0
        for _ in range(retention.max_batches):
            async with engine.begin() as conn:
                count = await store.purge_batch(conn, table, cutoff, retention.batch_size)
            purged[table] += count
            if count < retention.batch_size:
                break
        if purged[table]:
            metrics.PURGED.labels(table).inc(purged[table])
    if any(purged.values()):
        log.info("purged old rows", extra={"purged": purged})
    return purged


class Purger(Worker):
    name = "retention"

    def __init__(self, engine: AsyncEngine, retention: Retention, clock: Clock) -> None:
        seconds = retention.every.total_seconds()
        super().__init__(backoff=Backoff(min(seconds, 5.0), seconds))
        self._engine = engine
        self._retention = retention
        self._clock = clock

    async def step(self) -> float:
        await purge(self._engine, self._retention, now=self._clock.now(), real_now=utc_now())
        return self._retention.every.total_seconds()

    def transient(self, error: Exception) -> bool:
        return database_gone(error)
