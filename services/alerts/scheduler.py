"""The scheduler: what happens because time passes, not because a message arrived.

Every ``tick`` (real seconds) it:

- flushes the accounts whose alerts are due (``wake_at`` ≤ now: group wait over, repeat
  interval passed, snooze or silence ended, escalation due) — each account under its advisory
  lock, skipping accounts another replica holds;
- sends the daily digests that are due (``people.next_digest_at`` ≤ now, rows claimed with
  ``FOR UPDATE SKIP LOCKED``), one per person per local date;
- refreshes the database-derived gauges and, hourly, purges old rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts import decide, digest, messages, metrics, routing, store
from services.alerts.decide import Config
from services.alerts.handler import Clocks, apply, gather

log = logging.getLogger(__name__)

FLUSH_ACCOUNTS_PER_PASS = 200
DIGESTS_PER_PASS = 100
PASSES_PER_TICK = 10
PURGE_EVERY = timedelta(hours=1)
KEEP = timedelta(days=30)


@dataclass(frozen=True)
class DigestOptions:
    hour: int = 9
    silent_days: float = 7.0
    skip_empty: bool = True


class Scheduler:
    def __init__(
        self,
        engine: AsyncEngine,
        config: Config,
        clocks: Clocks,
        *,
        tick_seconds: float = 1.0,
        digest_options: DigestOptions = DigestOptions(),
        metrics_refresh_seconds: float = 5.0,
    ) -> None:
        self._engine = engine
        self._config = config
        self._clocks = clocks
        self._tick = tick_seconds
        self._digest = digest_options
        self._metrics_every = metrics_refresh_seconds
        self._last_metrics = 0.0
        self._last_purge: datetime | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            started = time.perf_counter()
            try:
                await self.tick()
            except Exception:
                log.exception("scheduler pass failed")
            metrics.SCHEDULER_SECONDS.observe(time.perf_counter() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._tick)

    async def tick(self) -> None:
        now = self._clocks.now()
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
        real = self._clocks.real_now()
        if self._last_purge is None or real - self._last_purge >= PURGE_EVERY:
            async with self._engine.begin() as conn:
                await store.purge(conn, real, keep=KEEP)
            self._last_purge = real

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
            await apply(
                conn, states, decisions, self._config, now=now, real_now=self._clocks.real_now()
            )
        return len(due)

    # -- digests -------------------------------------------------------------------------------

    async def send_digests(self, now: datetime) -> int:
        """Send the digests due now; returns how many people were due."""
        options = self._digest
        config = self._config
        async with self._engine.begin() as conn:
            due = (
                (
                    await conn.execute(
                        text(
                            "SELECT * FROM alerts.people WHERE next_digest_at <= :now "
                            "ORDER BY next_digest_at LIMIT :limit FOR UPDATE SKIP LOCKED"
                        ),
                        {"now": now, "limit": DIGESTS_PER_PASS},
                    )
                )
                .mappings()
                .all()
            )
            if not due:
                return 0
            ids = [p["person_id"] for p in due]
            lines = await _portfolio(conn, ids, now)
            held = await _held_alerts(conn, ids)
            rows: list[dict[str, Any]] = []
            shown: list[int] = []
            for person in due:
                slot = digest.due_slot(person["time_zone"], options.hour, now)
                if slot is None or not person["active"]:
                    continue
                day = digest.local_date(person["time_zone"], slot)
                built = digest.build(
                    person["person_id"],
                    person["name"],
                    day,
                    lines.get(person["person_id"], []),
                    held.get(person["person_id"], []),
                    now=now,
                    silent_days=options.silent_days,
                )
                if built.empty and options.skip_empty:
                    continue
                recipient = routing.Recipient(
                    name=person["name"],
                    person_id=person["person_id"],
                    slack=person["slack_user_id"],
                    email=person["email"],
                    time_zone=person["time_zone"],
                )
                payload = messages.digest_payload(built, recipient, config.content, now)
                destinations = routing.destinations(
                    recipient,
                    config.channels,
                    routing.TeamChannel(),  # a personal digest never goes to the team channel
                    prefer=config.digest_channel,
                )
                new_rows = messages.outbox_rows(
                    f"digest:{person['person_id']}:{day.isoformat()}",
                    "digest",
                    None,
                    destinations,
                    payload,
                    config.content,
                    self._clocks.real_now(),
                )
                if new_rows:
                    metrics.NOTIFICATIONS.labels("digest").inc()
                    shown += [h.alert_id for h in built.held]
                rows += new_rows
            await store.enqueue(conn, rows)
            if shown:
                await conn.execute(
                    text(
                        "UPDATE alerts.alerts SET notified_at = :now, "
                        "notified_severity = severity, "
                        "first_notified_at = coalesce(first_notified_at, :now) "
                        "WHERE id = ANY(:ids)"
                    ),
                    {"now": now, "ids": shown},
                )
            await conn.execute(
                text(
                    "UPDATE alerts.people SET next_digest_at = t.next "
                    "FROM unnest(CAST(:ids AS text[]), CAST(:nexts AS timestamptz[])) "
                    "AS t(person_id, next) WHERE people.person_id = t.person_id"
                ),
                {
                    "ids": ids,
                    "nexts": [
                        digest.next_digest_at(p["time_zone"], options.hour, now) for p in due
                    ],
                },
            )
        return len(due)

    async def refresh_metrics(self) -> None:
        async with self._engine.connect() as conn:
            counts = await conn.execute(
                text(
                    "SELECT rule, severity, state, count(*) FROM alerts.alerts "
                    "WHERE state <> 'resolved' GROUP BY 1, 2, 3"
                )
            )
            metrics.ALERTS.clear()
            for rule, severity, state, count in counts:
                metrics.ALERTS.labels(rule, severity, state).set(count)
            outbox = await conn.execute(
                text(
                    "SELECT channel, count(*), min(created_at) FROM alerts.outbox "
                    "WHERE state IN ('pending', 'sending') GROUP BY channel"
                )
            )
            metrics.OUTBOX_DEPTH.clear()
            oldest: datetime | None = None
            for channel, count, first in outbox:
                metrics.OUTBOX_DEPTH.labels(channel).set(count)
                oldest = first if oldest is None or first < oldest else oldest
            real = self._clocks.real_now()
            metrics.OUTBOX_OLDEST_AGE.set((real - oldest).total_seconds() if oldest else 0)


async def _portfolio(
    conn: Any, person_ids: Sequence[str], now: datetime
) -> Mapping[str, list[digest.AccountLine]]:
    rows = await conn.execute(
        text(
            "SELECT p.person_id, a.account_id, a.name, h.score, h.band, h.as_of, "
            "h.days_since_activity, h.reasons, "
            "(SELECT s.score FROM alerts.score_history s WHERE s.account_id = a.account_id "
            " AND s.as_of <= h.as_of - interval '7 days' ORDER BY s.as_of DESC LIMIT 1) "
            "AS score_week_ago "
            "FROM unnest(CAST(:ids AS text[])) AS p(person_id) "
            "JOIN alerts.accounts a ON p.person_id IN (a.csm, a.account_executive, "
            "a.renewal_owner) "
            "JOIN alerts.account_health h ON h.account_id = a.account_id"
        ),
        {"ids": list(person_ids)},
    )
    found: dict[str, list[digest.AccountLine]] = defaultdict(list)
    for r in rows.mappings():
        found[r["person_id"]].append(
            digest.AccountLine(
                account_id=r["account_id"],
                name=r["name"],
                score=r["score"],
                band=r["band"],
                as_of=r["as_of"],
                score_week_ago=r["score_week_ago"],
                days_since_activity=r["days_since_activity"],
                reasons=tuple(r["reasons"]),
            )
        )
    return found


async def _held_alerts(
    conn: Any, person_ids: Sequence[str]
) -> Mapping[str, list[digest.HeldAlert]]:
    rows = await conn.execute(
        text(
            "SELECT p.person_id, al.id, al.account_id, coalesce(a.name, al.account_id) AS name, "
            "al.rule, al.severity, al.summary, al.notified_at IS NULL AS new "
            "FROM unnest(CAST(:ids AS text[])) AS p(person_id) "
            "JOIN alerts.alerts al ON al.route -> 'recipients' @> "
            "jsonb_build_array(jsonb_build_object('person_id', p.person_id)) "
            "LEFT JOIN alerts.accounts a ON a.account_id = al.account_id "
            "WHERE al.delivery = 'digest' AND al.state = 'firing'"
        ),
        {"ids": list(person_ids)},
    )
    found: dict[str, list[digest.HeldAlert]] = defaultdict(list)
    for r in rows.mappings():
        found[r["person_id"]].append(
            digest.HeldAlert(
                alert_id=r["id"],
                account_id=r["account_id"],
                account_name=r["name"],
                rule=r["rule"],
                severity=r["severity"],
                summary=r["summary"],
                new=r["new"],
            )
        )
    return found
