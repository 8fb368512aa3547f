"""Deterministic scoring: the same events and model give the same scores and aggregates,
whatever the batching, the arrival order and the redeliveries — on the real database."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.scoring.handler import BatchHandler
from services.scoring.scorer import Scorer
from shared.clock import FixedClock
from shared.events import Event
from tests.unit.scoring.builders import NOW, account, records, survey, ticket, usage

TABLES = (
    "account_days",
    "survey_days",
    "account_users",
    "account_features",
    "tickets",
    "activity",
    "processed_events",
)
ACCOUNTS = ("acme", "globex")


@st.composite
def an_event(draw: st.DrawFn) -> Event:
    account_id = draw(st.sampled_from(ACCOUNTS))
    # whole minutes within the lateness window, so some share a timestamp (tie-breaks matter)
    at = NOW - timedelta(minutes=draw(st.integers(0, 6 * 24 * 60 // 30)) * 30)
    kind = draw(st.sampled_from(["usage", "usage", "ticket", "ticket", "survey"]))
    if kind == "usage":
        return usage(
            account_id,
            at=at,
            user=draw(st.sampled_from(["u1", "u2", "u3", "u4"])),
            feature=draw(st.sampled_from([None, "reports", "export", "api"])),
            quantity=draw(st.sampled_from([1.0, 2.0, 0.5])),
        )
    if kind == "ticket":
        return ticket(
            account_id,
            at=at,
            ticket_id="t1",
            action=draw(st.sampled_from(["opened", "updated", "escalated", "solved", "reopened"])),
            priority=draw(st.sampled_from(["normal", "high", "urgent"])),
            status=draw(st.sampled_from(["open", "pending", "solved"])),
        )
    return survey(account_id, at=at, score=draw(st.integers(0, 10)))


async def reset(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "TRUNCATE scoring.health, scoring.health_history, scoring.outbox, "
            "scoring.dirty_accounts, scoring.accounts, " + ", ".join(f"scoring.{t}" for t in TABLES)
        )


async def state(pool: asyncpg.Pool) -> dict[str, Any]:
    """Scores and every aggregate, in a comparable form."""
    out: dict[str, Any] = {}
    async with pool.acquire() as conn:
        for table in TABLES:
            rows = await conn.fetch(f"SELECT * FROM scoring.{table}")  # noqa: S608
            out[table] = sorted(tuple(r.values()) for r in rows)
        scores = await conn.fetch(
            "SELECT account_id, score, band, snapshot::text AS s FROM scoring.health"
        )
        out["health"] = sorted(tuple(r.values()) for r in scores)
    return out


async def run(
    pool: asyncpg.Pool, scorer: Scorer, clock: FixedClock, batches: list[list[Event]]
) -> dict[str, Any]:
    await reset(pool)
    handler = BatchHandler(
        pool, clock, max_event_age=timedelta(days=7), future_tolerance=timedelta(hours=1)
    )
    await handler(records(*(account(a, seats=3) for a in ACCOUNTS)))
    for batch in batches:
        await handler(records(*batch))
        await scorer.drain_queue(pool, clock.now())  # intermediate scores, as in the service
    await scorer.drain_queue(pool, clock.now())
    return await state(pool)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_same_events_give_the_same_scores_whatever_the_batching_order_and_redelivery(
    pool: asyncpg.Pool, scorer: Scorer, clock: FixedClock, data: st.DataObject
) -> None:
    events = data.draw(st.lists(an_event(), min_size=1, max_size=30), label="events")
    reference = await run(pool, scorer, clock, [events])

    order = data.draw(st.permutations(events), label="arrival order")
    redelivered = data.draw(st.lists(st.sampled_from(events), max_size=8), label="redelivered")
    arrivals = [*order, *redelivered]
    cuts = sorted(
        data.draw(
            st.sets(st.integers(1, max(1, len(arrivals) - 1)), min_size=1, max_size=6),
            label="cuts",
        )
    )
    bounds = [0, *cuts, len(arrivals)]
    batches = [arrivals[a:b] for a, b in itertools.pairwise(bounds) if a < b]

    assert await run(pool, scorer, clock, batches) == reference
