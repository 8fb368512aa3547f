"""The short path from an event to its health change (issue 16, S3), on the real PostgreSQL
and Kafka: a caught-up batch rescores its accounts in its own transaction, a mark of a queued
account never waits for the rescoring worker, and the relay publishes when woken, not at its
poll. Clocks are injected; nothing sleeps (each wait is on a condition with a deadline).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import asyncpg
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from services.scoring.handler import BatchHandler
from services.scoring.relay import Relay
from services.scoring.scorer import InlineRescorer, Scorer
from services.scoring.settings import ScoringSettings
from services.scoring.store import dirty
from shared.clock import FixedClock
from shared.events import HealthChange, Topics
from shared.kafka import make_producer
from shared.settings import KafkaSettings
from tests.support import eventually
from tests.unit.scoring.builders import account, records, ticket, usage

LIMIT = 3
MAX_LAG = 2.0


class Lag:
    seconds = 0.0


def inline_handler(
    pool: asyncpg.Pool,
    clock: FixedClock,
    scorer: Scorer,
    lag: Lag,
    woken: list[str],
    wake: Callable[[], None] = lambda: None,
) -> tuple[BatchHandler, InlineRescorer]:
    def relay_woken() -> None:
        woken.append("relay")
        wake()

    inline = InlineRescorer(
        scorer,
        clock,
        max_accounts=LIMIT,
        max_lag_seconds=MAX_LAG,
        lag=lambda: lag.seconds,
        on_changes=relay_woken,
    )
    handler = BatchHandler(
        pool,
        clock,
        max_event_age=timedelta(days=100),
        future_tolerance=timedelta(hours=1),
        on_queued=inline.after_commit,
        rescore_inline=inline,
    )
    return handler, inline


async def scored_and_queued(pool: asyncpg.Pool) -> tuple[set[str], set[str]]:
    async with pool.acquire() as conn:
        scored = {r[0] for r in await conn.fetch("SELECT account_id FROM scoring.health")}
        queued = {r[0] for r in await conn.fetch("SELECT account_id FROM scoring.dirty_accounts")}
    return scored, queued


def batch(accounts: int) -> list[object]:
    return [
        item
        for n in range(accounts)
        for item in (account(f"a{n}"), usage(f"a{n}", event_id=f"e{n}"))
    ]


async def test_a_caught_up_batch_rescores_its_accounts_in_its_transaction_up_to_the_limit(
    pool: asyncpg.Pool, clock: FixedClock, scorer: Scorer
) -> None:
    woken: list[str] = []
    handler, _ = inline_handler(pool, clock, scorer, Lag(), woken)
    await handler(records(*batch(LIMIT)))  # type: ignore[arg-type]
    scored, queued = await scored_and_queued(pool)
    assert scored == {f"a{n}" for n in range(LIMIT)}
    assert queued == set()
    async with pool.acquire() as conn:
        changes = await conn.fetchval("SELECT count(*) FROM scoring.outbox")
    assert changes == LIMIT, "each first score is a health change, committed with the batch"
    assert woken == ["relay"], "the relay is woken once the batch committed"


async def test_a_batch_over_the_limit_is_queued_whole(
    pool: asyncpg.Pool, clock: FixedClock, scorer: Scorer
) -> None:
    woken: list[str] = []
    handler, _ = inline_handler(pool, clock, scorer, Lag(), woken)
    await handler(records(*batch(LIMIT + 1)))  # type: ignore[arg-type]
    scored, queued = await scored_and_queued(pool)
    assert scored == set()
    assert queued == {f"a{n}" for n in range(LIMIT + 1)}
    assert woken == []


async def test_over_the_limit_the_accounts_with_a_ticket_or_a_record_are_still_inline(
    pool: asyncpg.Pool, clock: FixedClock, scorer: Scorer
) -> None:
    handler, _ = inline_handler(pool, clock, scorer, Lag(), [])
    usage_only = [usage(f"u{n}", event_id=f"u{n}") for n in range(LIMIT + 1)]
    await handler(records(*usage_only, account("rec"), ticket("tix", event_id="t1")))
    scored, queued = await scored_and_queued(pool)
    assert scored == {"rec", "tix"}
    assert queued == {f"u{n}" for n in range(LIMIT + 1)}


async def test_too_many_signals_queue_the_whole_batch(
    pool: asyncpg.Pool, clock: FixedClock, scorer: Scorer
) -> None:
    handler, _ = inline_handler(pool, clock, scorer, Lag(), [])
    await handler(records(*(account(f"r{n}") for n in range(LIMIT + 1))))
    scored, queued = await scored_and_queued(pool)
    assert scored == set()
    assert queued == {f"r{n}" for n in range(LIMIT + 1)}


async def test_a_consumer_behind_queues_and_catches_up_inline_once_back(
    pool: asyncpg.Pool, clock: FixedClock, scorer: Scorer
) -> None:
    lag = Lag()
    lag.seconds = MAX_LAG + 0.001
    handler, inline = inline_handler(pool, clock, scorer, lag, [])
    await handler(records(account("behind"), usage("behind", event_id="e1")))
    assert await scored_and_queued(pool) == (set(), {"behind"})
    lag.seconds = MAX_LAG  # at the threshold: inline again
    assert inline.decide(LIMIT) is None
    assert inline.decide(LIMIT + 1) == "too_many"
    clock.advance(timedelta(minutes=1))
    await handler(records(usage("later", event_id="e2"), account("later")))
    assert await scored_and_queued(pool) == ({"later"}, {"behind"})


async def test_a_mark_does_not_wait_for_the_worker_and_is_not_lost(
    pool: asyncpg.Pool, clock: FixedClock, scorer: Scorer
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await dirty.mark_dirty(conn, ["a", "b"])
    worker = await pool.acquire()
    try:
        async with worker.transaction():
            claimed = await dirty.claim_dirty(worker, 10)
            assert [a for a, _ in claimed] == ["a", "b"]
            async with pool.acquire() as conn, conn.transaction():  # a batch marks b again
                await asyncio.wait_for(dirty.mark_dirty(conn, ["b", "c"]), timeout=5)
            await dirty.forget_dirty(worker, claimed)
    finally:
        await pool.release(worker)
    assert (await scored_and_queued(pool))[1] == {"b", "c"}, "b was marked after the claim"


async def test_the_relay_publishes_when_woken_not_at_its_poll(
    pool: asyncpg.Pool, clock: FixedClock, scorer: Scorer, kafka_settings: KafkaSettings
) -> None:
    poll = 60.0
    topic = Topics(kafka_settings.topic_prefix).health
    producer = make_producer(kafka_settings)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
    )
    await producer.start()
    await consumer.start()
    relay = Relay(pool, producer, topic, poll_seconds=poll)
    running = asyncio.create_task(relay.run())
    try:
        # its first pass found nothing: it rests for the poll interval now
        await eventually(lambda: _idle(relay), timeout_s=10, interval_s=0.01, what="relay idle")
        handler, _ = inline_handler(pool, clock, scorer, Lag(), [], relay.wake)
        await handler(records(account("fast"), usage("fast", event_id="e1")))
        message = await asyncio.wait_for(consumer.getone(), timeout=poll / 6)
        assert message.value is not None
        change = msgspec.json.decode(message.value, type=HealthChange)
        assert change.account_id == "fast"
        assert "first_score" in change.triggers
    finally:
        relay.stop()
        await running
        await consumer.stop()
        await producer.stop()


async def _idle(relay: Relay) -> bool:
    return relay.idle


def test_the_inline_limits_are_settings_with_edges(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = ScoringSettings()
    assert (defaults.inline_max_accounts, defaults.inline_max_lag_seconds) == (200, 2.0)
    monkeypatch.setenv("SCORING_INLINE_MAX_ACCOUNTS", "10000")
    monkeypatch.setenv("SCORING_INLINE_MAX_LAG_SECONDS", "0")
    assert ScoringSettings().inline_max_accounts == 10_000
    monkeypatch.setenv("SCORING_INLINE_MAX_ACCOUNTS", "10001")
    with pytest.raises(ValidationError, match="inline_max_accounts"):
        ScoringSettings()
    monkeypatch.setenv("SCORING_INLINE_MAX_ACCOUNTS", "0")
    monkeypatch.setenv("SCORING_INLINE_MAX_LAG_SECONDS", "-0.1")
    with pytest.raises(ValidationError, match="inline_max_lag_seconds"):
        ScoringSettings()
