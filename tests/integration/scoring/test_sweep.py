"""The time-driven sweep on the real PostgreSQL, with an injected clock: it rescores the
accounts due (``health.next_eval_at``) — every account once its UTC day rolls over, one
account at the moment time alone crosses one of its thresholds — and nothing else."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import REGISTRY

from churnwatch import importer
from services.scoring.handler import BatchHandler
from services.scoring.model import Model
from services.scoring.scorer import Scorer
from shared.clock import FixedClock
from tests.integration.scoring.test_import_history import (
    SIM_END,
    options,
    simulated,  # noqa: F401 - a fixture
)
from tests.integration.scoring.test_scoring import current, outbox, sweeper
from tests.unit.scoring.builders import NOW, account, records, steady_usage, usage

MIDNIGHT = datetime(2026, 11, 22, tzinfo=UTC)  # the first after NOW (12:00 on 21 November)
US = timedelta(microseconds=1)


async def due_times(pool: asyncpg.Pool) -> dict[str, datetime]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT account_id, next_eval_at FROM scoring.health")
    return {r["account_id"]: r["next_eval_at"] for r in rows}


async def history_count(pool: asyncpg.Pool, at: datetime) -> dict[str, int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT account_id, count(*) FROM scoring.health_history WHERE as_of = $1 "
            "GROUP BY account_id",
            at,
        )
    return {r[0]: r[1] for r in rows}


async def portfolio(handler: BatchHandler, scorer: Scorer, pool: asyncpg.Pool, n: int) -> None:
    events = [e for i in range(n) for e in steady_usage(f"a{i:02}", days=40, users=2)]
    await handler(records(*(account(f"a{i:02}", seats=4) for i in range(n)), *events))
    await scorer.drain_queue(pool, NOW)


async def test_right_after_scoring_nothing_is_due_and_after_midnight_every_account_is(
    pool: asyncpg.Pool, handler: BatchHandler, scorer: Scorer, clock: FixedClock
) -> None:
    await portfolio(handler, scorer, pool, 5)
    assert set((await due_times(pool)).values()) == {MIDNIGHT}
    sweep = sweeper(scorer, pool, clock)

    later = await sweep.sweep(NOW + timedelta(minutes=5))
    assert (later.due, later.accounts) == (0, 0)
    assert (await current(pool, "a00")).signals.days_since_activity == round(1 / 24, 1)

    before_midnight = await sweep.sweep(MIDNIGHT - US)
    assert (before_midnight.due, before_midnight.accounts) == (0, 0)
    rolled = await sweep.sweep(MIDNIGHT)
    assert (rolled.due, rolled.accounts) == (5, 5)
    assert REGISTRY.get_sample_value("churnwatch_scoring_sweep_accounts_due") == 5
    assert REGISTRY.get_sample_value("churnwatch_scoring_sweep_accounts") == 5
    assert set((await due_times(pool)).values()) == {MIDNIGHT + timedelta(days=1)}
    assert (await current(pool, "a00")).signals.days_since_activity == 0.5  # 13 h later
    assert await history_count(pool, MIDNIGHT) == {f"a{i:02}": 1 for i in range(5)}

    again = await sweep.sweep(MIDNIGHT + timedelta(minutes=1))
    assert (again.due, again.accounts) == (0, 0)
    assert REGISTRY.get_sample_value("churnwatch_scoring_sweep_accounts_due") == 0


async def test_a_score_written_without_a_due_time_is_due_at_once(
    pool: asyncpg.Pool, handler: BatchHandler, scorer: Scorer, clock: FixedClock
) -> None:
    """What the migration left (and any writer that sets none): '-infinity', due now."""
    await portfolio(handler, scorer, pool, 3)
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE scoring.health SET next_eval_at = DEFAULT WHERE account_id = 'a01'"
        )
    result = await sweeper(scorer, pool, clock).sweep(NOW + timedelta(minutes=5))
    assert (result.due, result.accounts) == (1, 1)
    assert (await due_times(pool))["a01"] == MIDNIGHT


async def test_a_silence_crossing_mid_day_rescores_only_that_account_and_is_published(
    pool: asyncpg.Pool, handler: BatchHandler, scorer: Scorer, clock: FixedClock
) -> None:
    quiet_since = NOW - timedelta(days=2.5)
    await handler(
        records(
            account("quiet", seats=4),
            account("busy", seats=4),
            *steady_usage("quiet", days=40, users=2, until=quiet_since + timedelta(hours=1)),
            *steady_usage("busy", days=40, users=2),
        )
    )
    await scorer.drain_queue(pool, NOW)
    assert (await current(pool, "quiet")).signals.days_since_activity == 2.5
    crossing = (await due_times(pool))["quiet"]
    # published rounded to 0.1 day: silent (≥ 3.0) from 2.95 days after the last activity on
    assert crossing == quiet_since + timedelta(days=2.95)
    assert (await due_times(pool))["busy"] == MIDNIGHT
    sweep = sweeper(scorer, pool, clock)

    early = await sweep.sweep(crossing - US)
    assert (early.due, early.accounts) == (0, 0)
    assert (await current(pool, "quiet")).signals.days_since_activity == 2.5  # not rescored
    at = await sweep.sweep(crossing)
    assert (at.due, at.accounts) == (1, 1)
    assert (await current(pool, "quiet")).signals.days_since_activity == 3.0
    crossed = [c for c in await outbox(pool) if c.account_id == "quiet" and c.as_of == crossing]
    assert len(crossed) == 1, crossed
    assert "threshold_crossed" in crossed[0].triggers
    assert (await due_times(pool))["quiet"] == MIDNIGHT


async def test_an_input_going_stale_mid_day_rescores_that_account_then(
    pool: asyncpg.Pool, handler: BatchHandler, scorer: Scorer, clock: FixedClock
) -> None:
    last = NOW - timedelta(days=14, hours=-2)  # activity's data is stale after 14 days
    await handler(
        records(
            account("fading", seats=4),
            *steady_usage("fading", days=40, users=2, until=last + timedelta(hours=1)),
        )
    )
    await scorer.drain_queue(pool, NOW)
    assert "activity" not in (await current(pool, "fading")).stale_inputs
    stale_at = last + timedelta(days=14) + US
    assert (await due_times(pool))["fading"] == stale_at
    sweep = sweeper(scorer, pool, clock)
    assert (await sweep.sweep(stale_at - US)).accounts == 0
    assert (await sweep.sweep(stale_at)).accounts == 1
    assert "activity" in (await current(pool, "fading")).stale_inputs


async def test_a_data_change_is_rescored_by_the_dirty_queue_and_moves_the_due_time(
    pool: asyncpg.Pool, handler: BatchHandler, scorer: Scorer, clock: FixedClock
) -> None:
    quiet_since = NOW - timedelta(days=2.5)
    await handler(
        records(
            account("quiet", seats=4),
            *steady_usage("quiet", days=40, users=2, until=quiet_since + timedelta(hours=1)),
        )
    )
    await scorer.drain_queue(pool, NOW)
    assert (await due_times(pool))["quiet"] < MIDNIGHT  # the silence crossing

    back = NOW + timedelta(hours=1)
    await handler(records(usage("quiet", at=back)))
    done = await scorer.drain_queue(pool, back)
    assert done.accounts == 1
    assert (await current(pool, "quiet")).signals.days_since_activity == 0.0
    assert (await due_times(pool))["quiet"] == MIDNIGHT  # active again: no crossing today
    result = await sweeper(scorer, pool, clock).sweep(quiet_since + timedelta(days=2.96))
    assert (result.due, result.accounts) == (0, 0)


async def test_two_sweepers_at_once_rescore_each_due_account_once(
    pool: asyncpg.Pool,
    handler: BatchHandler,
    scorer: Scorer,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await portfolio(handler, scorer, pool, 12)
    at = MIDNIGHT + timedelta(minutes=1)
    first, second = sweeper(scorer, pool, clock), sweeper(scorer, pool, clock)
    results = await asyncio.gather(first.sweep(at), second.sweep(at))
    assert sum(r.accounts for r in results) == 12, results
    assert await history_count(pool, at) == {f"a{i:02}": 1 for i in range(12)}

    clock.current = at + timedelta(days=1)  # the service's way: one takes the lock
    with caplog.at_level(logging.INFO, logger="services.scoring.sweep"):
        twice = await asyncio.gather(first.run_if_due(), second.run_if_due())
    ran = [r for r in twice if r is not None]
    assert len(ran) == 1, twice
    assert ran[0].accounts == 12
    done = [r for r in caplog.records if r.getMessage() == "sweep done"]
    assert [(r.due, r.accounts) for r in done] == [(12, 12)]  # type: ignore[attr-defined]


async def test_an_imported_portfolio_is_due_by_its_own_times_not_at_once(
    scoring_url: str,
    pool: asyncpg.Pool,
    scorer: Scorer,
    clock: FixedClock,
    model: Model,
    simulated: Path,  # noqa: F811 - test_import_history's fixture
) -> None:
    summary = await importer.run(scoring_url, options(simulated, model))
    assert summary.bad == []
    times = await due_times(pool)
    midnight = datetime(2026, 8, 16, tzinfo=UTC)  # the first after SIM_END (09:00)
    assert len(times) == 12
    assert all(SIM_END < t <= midnight for t in times.values()), times
    sweep = sweeper(scorer, pool, clock)
    assert (await sweep.sweep(SIM_END)).due == 0
    assert (await sweep.sweep(midnight)).accounts == 12
