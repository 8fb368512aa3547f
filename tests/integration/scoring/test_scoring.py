"""Scoring guarantees against the real PostgreSQL, with an injected clock.

The handler, the rescoring queue and the sweep are driven directly with fixed times: the
same code the service runs, minus Kafka (the Kafka paths are in ``test_service``).
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import msgspec

from services.scoring import health
from services.scoring.handler import BatchHandler
from services.scoring.model import Model
from services.scoring.scorer import Scorer
from services.scoring.store import dedup
from services.scoring.sweep import Horizons, Sweeper
from shared.clock import FixedClock
from shared.events import Event, HealthChange, HealthSnapshot
from tests.unit.scoring.builders import (
    NOW,
    account,
    records,
    steady_usage,
    survey,
    ticket,
    tombstone,
    usage,
)

HORIZONS = Horizons(
    dedup=timedelta(days=8), daily_rows=timedelta(days=400), history=timedelta(days=730)
)


def sweeper(scorer: Scorer, pool: asyncpg.Pool, clock: FixedClock) -> Sweeper:
    return Sweeper(scorer, pool, clock, interval_seconds=3600, chunk=2, horizons=HORIZONS)


async def current(pool: asyncpg.Pool, account_id: str = "acme") -> HealthSnapshot:
    async with pool.acquire() as conn:
        raw = await conn.fetchval(
            "SELECT snapshot::text FROM scoring.health WHERE account_id = $1", account_id
        )
    assert raw is not None, f"{account_id} has no score"
    return msgspec.json.decode(raw, type=HealthSnapshot)


async def outbox(pool: asyncpg.Pool) -> list[HealthChange]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT payload FROM scoring.outbox ORDER BY seq")
    return [msgspec.json.decode(r["payload"], type=HealthChange) for r in rows]


async def test_silence_turns_a_green_account_yellow_then_red_with_no_new_events(
    pool: asyncpg.Pool, handler: BatchHandler, scorer: Scorer, clock: FixedClock
) -> None:
    await handler(records(account("acme", seats=6), *steady_usage("acme"), survey("acme")))
    await scorer.drain_queue(pool, clock.now())
    assert (await current(pool)).band == "green"

    bands: dict[int, str] = {}
    sweep = sweeper(scorer, pool, clock)
    for day in range(1, 22):
        clock.advance(timedelta(days=1))
        result = await sweep.sweep(clock.now())
        assert result.accounts == 1
        bands[day] = (await current(pool)).band

    first_yellow = min(d for d, b in bands.items() if b == "yellow")
    first_red = min(d for d, b in bands.items() if b == "red")
    assert 2 <= first_yellow < first_red <= 14, bands
    assert all(b == "red" for d, b in bands.items() if d >= first_red), "red stays red"

    red = await current(pool)
    assert any("no activity for" in r for r in red.reasons), red.reasons
    changes = [c for c in await outbox(pool) if "band_changed" in c.triggers]
    assert [(c.before.band if c.before else None, c.after.band) for c in changes] == [
        ("green", "yellow"),
        ("yellow", "red"),
    ]
    assert all(c.moved_by and c.moved_by[0].delta_points < 0 for c in changes)
    assert all(m.evidence for c in changes for m in c.moved_by), "every move says why"


async def test_contributions_add_up_to_the_score_and_every_component_is_explained(
    pool: asyncpg.Pool, handler: BatchHandler, scorer: Scorer, clock: FixedClock
) -> None:
    events: list[Event] = [
        *steady_usage("acme", days=40, users=3),
        ticket("acme", ticket_id="t1", at=NOW - timedelta(days=2)),
        ticket("acme", ticket_id="t2", at=NOW - timedelta(days=1), priority="high"),
        ticket("acme", ticket_id="t3", at=NOW - timedelta(days=1), action="escalated"),
        survey("acme", score=3, at=NOW - timedelta(days=5)),
    ]
    await handler(records(account("acme", seats=30), *events))
    await scorer.drain_queue(pool, clock.now())
    snapshot = await current(pool)
    assert abs(sum(c.contribution for c in snapshot.components) - snapshot.score) <= 0.5
    assert sum(c.weight for c in snapshot.components) == 100
    for component in snapshot.components:
        assert component.contribution == round(component.points * component.weight / 100, 2)
        assert component.raw is not None
        if component.points < 100:
            assert component.detail, component
    assert snapshot.signals.open_high_urgent_tickets == 3
    assert snapshot.signals.open_high_urgent_ticket_ids == ["t1", "t2", "t3"]  # oldest first
    assert snapshot.signals.nps_latest == 3
    assert snapshot.signals.seats == 30
    assert snapshot.reasons, "a score below 100 says why"
    assert any("ticket" in r for r in snapshot.reasons), snapshot.reasons


async def test_a_late_event_lands_in_its_own_day_and_rescoring_reflects_it(
    pool: asyncpg.Pool, handler: BatchHandler, scorer: Scorer, clock: FixedClock
) -> None:
    await handler(records(account("acme"), usage("acme", at=NOW - timedelta(hours=1))))
    await scorer.drain_queue(pool, clock.now())
    before = await current(pool)
    activity = next(c for c in before.components if c.name == "activity")
    assert activity.raw == 1.0  # one active day in the last 7

    late_day = (NOW - timedelta(days=3)).date()
    await handler(records(usage("acme", at=NOW - timedelta(days=3), user="late-user")))
    await scorer.drain_queue(pool, clock.now())

    async with pool.acquire() as conn:
        days = await conn.fetch("SELECT day, usage_events FROM scoring.account_days ORDER BY day")
    assert [(r["day"], r["usage_events"]) for r in days] == [(late_day, 1), (NOW.date(), 1)]
    after = await current(pool)
    assert next(c for c in after.components if c.name == "activity").raw == 2.0
    assert after.signals.active_users_7d == 2
    assert after.score > before.score


async def test_events_outside_the_lateness_window_are_refused_with_a_reason(
    pool: asyncpg.Pool, clock: FixedClock
) -> None:
    strict = BatchHandler(
        pool, clock, max_event_age=timedelta(days=7), future_tolerance=timedelta(hours=1)
    )
    batch = records(
        usage("acme", at=NOW - timedelta(days=8), event_id="old"),
        usage("acme", at=NOW + timedelta(hours=2), event_id="ahead"),
        usage("acme", at=NOW - timedelta(days=6), event_id="fine"),
    )
    refused = await strict(batch)
    assert {(r.value.event_id, why.code) for r, why in refused} == {  # type: ignore[union-attr]
        ("old", "too_old"),
        ("ahead", "from_the_future"),
    }
    async with pool.acquire() as conn:
        ids = await conn.fetch("SELECT event_hash FROM scoring.processed_events")
    assert [r[0] for r in ids] == [dedup.event_hash("test", "acme", "fine")]


async def test_distinct_users_stay_exact_when_events_are_redelivered(
    pool: asyncpg.Pool, handler: BatchHandler, scorer: Scorer, clock: FixedClock
) -> None:
    day = [usage("acme", at=NOW - timedelta(hours=h), user=f"u{h % 3}") for h in range(1, 10)]
    await handler(records(*day))
    await handler(records(*day[:5]))  # redelivered after a crash
    await handler(records(*day[3:]))  # and again, overlapping
    await scorer.drain_queue(pool, clock.now())
    snapshot = await current(pool)
    assert snapshot.signals.active_users_7d == 3
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT sum(usage_events) FROM scoring.account_days") == 9


async def test_account_records_keep_the_latest_and_a_tombstone_deletes(
    pool: asyncpg.Pool, handler: BatchHandler
) -> None:
    newer = account("acme", seats=50, updated_at=NOW)
    older = account("acme", seats=10, updated_at=NOW - timedelta(days=1))
    await handler(records(newer))
    await handler(records(older))
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT seats FROM scoring.accounts") == 50
    await handler(tombstone("acme"))
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM scoring.accounts") == 0


async def test_a_score_is_recorded_in_history_on_changes_and_once_a_day(
    pool: asyncpg.Pool,
    handler: BatchHandler,
    scorer: Scorer,
    clock: FixedClock,
    model: Model,
) -> None:
    await handler(records(account("acme", seats=6), *steady_usage("acme")))
    await scorer.drain_queue(pool, clock.now())
    sweep = sweeper(scorer, pool, clock)
    for _ in range(3):  # same day: nothing new to record
        clock.advance(timedelta(minutes=5))
        await sweep.sweep(clock.now())
    clock.advance(timedelta(days=1))
    await sweep.sweep(clock.now())
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT as_of, triggers, model_version FROM scoring.health_history ORDER BY as_of"
        )
    assert [list(r["triggers"]) for r in rows] == [["first_score"], []]
    assert [r["as_of"] for r in rows] == [NOW, clock.now()]
    assert {r["model_version"] for r in rows} == {model.version}
    changes = await outbox(pool)
    assert changes[0].change_id == health.change_id("acme", NOW, model.version, changes[0].after)
