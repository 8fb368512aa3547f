"""Measurements of the scoring service (not tests: they time things and print figures).

    python -m services.scoring.bench sweep --accounts 100000
        seeds a scoring schema with N realistic accounts (35 days of daily rows, users and
        features as day masks, tickets, surveys), scores them once, then times sweeps.
    python -m services.scoring.bench drain --events 200000
        produces N usage events, times a raw aiokafka consume-and-decode of them, then the
        scoring consumer (loop + handler + rescoring) draining the same events.

``DATABASE_URL`` names the PostgreSQL server: the bench creates a scratch database there and
drops it at the end. ``KAFKA_BOOTSTRAP_SERVERS`` names a broker (drain only; the bench
creates topics under a random prefix).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
from alembic import command
from prometheus_client import REGISTRY

from services.scoring import model as health_model
from services.scoring import store
from services.scoring.handler import BatchHandler, decoder
from services.scoring.scorer import RescoreWorker, Scorer
from services.scoring.sweep import Horizons, Sweeper
from shared import events, migrations
from shared.clock import FixedClock, SystemClock
from shared.events import Topics, UsageEvent
from shared.kafka import (
    ConsumerLoop,
    DeadLetters,
    client_options,
    ensure_topics,
    make_consumer,
    make_producer,
)
from shared.settings import DatabaseSettings, KafkaSettings


@asynccontextmanager
async def scratch_database(server_url: str) -> AsyncIterator[str]:
    """A fresh database on the server of ``server_url``, migrated; dropped afterwards."""
    name = f"scoring_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(store.asyncpg_dsn(server_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = f"{server_url.rpartition('/')[0]}/{name}"
    try:
        await asyncio.to_thread(command.upgrade, migrations.config("scoring", url), "head")
        yield url
    finally:
        admin = await asyncpg.connect(store.asyncpg_dsn(server_url))
        try:
            for _ in range(30):  # an autovacuum worker on it makes the drop wait
                try:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    break
                except asyncpg.InsufficientPrivilegeError:
                    await asyncio.sleep(1)
        finally:
            await admin.close()


SEED = """
INSERT INTO scoring.accounts (account_id, name, tier, seats, arr, renewal_date,
    lifecycle_stage, csm, updated_at)
SELECT 'acct-' || lpad(i::text, 7, '0'), 'Account ' || i,
    CASE WHEN i % 10 = 0 THEN 'enterprise' ELSE 'pro' END, 10 + i % 40, 10000 + i % 90000,
    {today} + (i % 365), CASE WHEN i % 25 = 0 THEN 'onboarding' ELSE 'mature' END,
    'csm-' || (i % 500), {now}
FROM generate_series(1, {accounts}) AS i;

INSERT INTO scoring.activity (account_id, known_since, first_usage_at, last_usage_day,
    first_feature_at, last_feature_day, last_ticket_at, last_survey_at, nps_latest)
SELECT 'acct-' || lpad(i::text, 7, '0'), {now} - interval '120 days',
    {now} - interval '120 days', {today} - i % 21,
    {now} - interval '120 days', {today} - i % 21,
    CASE WHEN i % 5 = 0 THEN {now} - interval '3 days' END,
    CASE WHEN i % 3 = 0 THEN {now} - interval '20 days' END,
    CASE WHEN i % 3 = 0 THEN i % 11 END
FROM generate_series(1, {accounts}) AS i;

INSERT INTO scoring.account_days (account_id, day, usage_events, usage_quantity,
    tickets_opened, high_urgent_opened, escalations, reopens)
SELECT 'acct-' || lpad(i::text, 7, '0'), {today} - d, 5 + (i + d) % 40, 5 + (i + d) % 40,
    CASE WHEN (i + d) % 29 = 0 THEN 1 ELSE 0 END, CASE WHEN (i + d) % 97 = 0 THEN 1 ELSE 0 END,
    0, 0
FROM generate_series(1, {accounts}) AS i, generate_series(i % 21, 34) AS d
WHERE (i + d) % 7 <> 0;

INSERT INTO scoring.account_users (account_id, user_id, anchor_day, days)
SELECT 'acct-' || lpad(i::text, 7, '0'), 'user-' || u, {anchor} - i % 21,
    (4611686018427387903 # (i * 2654435761 + u * 40503)) & 4611686018427387903
FROM generate_series(1, {accounts}) AS i, generate_series(1, 4 + i % 9) AS u;

INSERT INTO scoring.account_features (account_id, feature, anchor_day, days)
SELECT 'acct-' || lpad(i::text, 7, '0'), 'feature-' || f, {anchor} - i % 21,
    (i * 7919 + f * 104729) & 4611686018427387903
FROM generate_series(1, {accounts}) AS i, generate_series(1, 2 + i % 6) AS f;

INSERT INTO scoring.tickets (account_id, ticket_id, priority, status, last_action,
    updated_at, event_id)
SELECT 'acct-' || lpad(i::text, 7, '0'), 'ticket-' || t,
    CASE WHEN t = 1 THEN 'urgent' ELSE 'normal' END,
    CASE WHEN t % 2 = 0 THEN 'solved' ELSE 'open' END,
    'opened', {now} - interval '3 days', 'e-' || i || '-' || t
FROM generate_series(1, {accounts}, 5) AS i, generate_series(1, 3) AS t;

INSERT INTO scoring.survey_days (account_id, day, nps_sum, nps_answers, nps_promoters,
    nps_detractors, csat_sum, csat_answers)
SELECT 'acct-' || lpad(i::text, 7, '0'), {today} - 20, i % 11, 1,
    CASE WHEN i % 11 >= 9 THEN 1 ELSE 0 END, CASE WHEN i % 11 <= 6 THEN 1 ELSE 0 END, 0, 0
FROM generate_series(1, {accounts}, 3) AS i;
"""


async def seed(pool: asyncpg.Pool, accounts: int, now: datetime) -> dict[str, int]:
    today = now.date()
    async with pool.acquire() as conn:
        script = SEED.format(
            now=f"timestamptz '{now.isoformat()}'",
            today=f"date '{today.isoformat()}'",
            accounts=int(accounts),
            anchor=today.toordinal(),
        )
        await conn.execute(script)
        await conn.execute("ANALYZE")
        counts = {}
        for table in ("account_days", "account_users", "account_features", "tickets"):
            counts[table] = await conn.fetchval(f"SELECT count(*) FROM scoring.{table}")  # noqa: S608
    return counts


async def count_processed(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        taken: int = await conn.fetchval("SELECT count(*) FROM scoring.processed_events")
    return taken


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def bench_sweep(url: str, accounts: int, chunk: int, concurrency: int) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    pool = await store.create_pool(url, size=4, application_name="scoring-bench")
    started = time.perf_counter()
    counts = await seed(pool, accounts, now)
    print(f"seeded {accounts} accounts in {time.perf_counter() - started:.1f}s: {counts}")
    clock = FixedClock(now)
    scorer = Scorer(health_model.load(health_model.DEFAULT_MODEL_FILE), score_delta=10)
    horizons = Horizons(timedelta(days=8), timedelta(days=400), timedelta(days=730))
    sweeper = Sweeper(
        scorer,
        pool,
        clock,
        interval_seconds=300,
        chunk=chunk,
        horizons=horizons,
        concurrency=concurrency,
    )
    async with pool.acquire() as conn:  # the accounts become known to the sweep when scored
        await conn.execute(
            "INSERT INTO scoring.dirty_accounts (account_id) "
            "SELECT account_id FROM scoring.accounts"
        )
    started = time.perf_counter()
    first = await scorer.drain_queue(pool, now, chunk=chunk)
    print(
        f"first scoring of {first.accounts} accounts (every one a first_score change): "
        f"{time.perf_counter() - started:.1f}s"
    )
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE scoring.outbox")
    for label, as_of in (
        ("5 minutes later (same day)", now + timedelta(minutes=5)),
        ("1 day later (history point per account)", now + timedelta(days=1)),
        ("1 day 5 minutes later (same day again)", now + timedelta(days=1, minutes=5)),
    ):
        result = await sweeper.sweep(as_of)
        async with pool.acquire() as conn:
            triggers = await conn.fetch(
                "SELECT convert_from(payload, 'UTF8')::json->>'triggers' AS t, count(*) "
                "FROM scoring.outbox GROUP BY 1 ORDER BY 2 DESC"
            )
            await conn.execute("TRUNCATE scoring.outbox")
        print(
            f"sweep {label}: {result.accounts} accounts in {result.seconds:.2f}s "
            f"({result.accounts / result.seconds:,.0f} accounts/s), {result.changes} changes "
            + str({r["t"]: r["count"] for r in triggers})
        )
    print(f"peak RSS of this process: {rss_mb():.0f} MB")
    await pool.close()


def usage_events(count: int, accounts: int, now: datetime) -> list[UsageEvent]:
    return [
        UsageEvent(
            event_id=f"bench-{i}",
            account_id=f"acct-{i % accounts:06d}",
            occurred_at=now - timedelta(seconds=i % 86_400),
            received_at=now,
            source="bench",
            user_id=f"user-{i % 7}",
            type="feature_used",
            feature=f"feature-{i % 5}",
        )
        for i in range(count)
    ]


async def bench_drain(url: str, total: int, accounts: int, batch: int) -> None:
    kafka = KafkaSettings(TOPIC_PREFIX=f"bench{uuid.uuid4().hex[:6]}.")
    topics = Topics(kafka.topic_prefix)
    await ensure_topics(kafka, topics.all())
    now = datetime.now(UTC)
    producer = make_producer(kafka)
    await producer.start()
    started = time.perf_counter()
    futures = [
        await producer.send(topics.usage, events.encode(e), key=e.account_id.encode())
        for e in usage_events(total, accounts, now)
    ]
    await asyncio.gather(*futures)
    print(f"produced {total} events in {time.perf_counter() - started:.1f}s")

    from aiokafka import AIOKafkaConsumer

    raw = AIOKafkaConsumer(topics.usage, **client_options(kafka), auto_offset_reset="earliest")
    await raw.start()
    seen = 0
    started = time.perf_counter()
    while seen < total:
        got = await raw.getmany(timeout_ms=1000, max_records=batch)
        for messages in got.values():
            for message in messages:
                events.decode_event(message.value)
            seen += sum(len(m) for m in got.values())
    raw_seconds = time.perf_counter() - started
    await raw.stop()
    print(f"raw aiokafka consume+decode: {total / raw_seconds:,.0f} events/s")

    pool = await store.create_pool(url, size=4, application_name="scoring-bench")
    clock = SystemClock()
    scorer = Scorer(health_model.load(health_model.DEFAULT_MODEL_FILE), score_delta=10)
    group = f"{kafka.topic_prefix}scoring"
    consumer = make_consumer(kafka, group)
    worker = RescoreWorker(
        scorer, pool, clock, poll_seconds=1.0, chunk=1000, on_changes=lambda: None
    )
    handler = BatchHandler(
        pool,
        clock,
        max_event_age=timedelta(days=7),
        future_tolerance=timedelta(hours=1),
        on_queued=worker.wake,
    )
    loop = ConsumerLoop(
        consumer,
        group=group,
        topics=[topics.usage],
        decode=decoder(topics),
        handle=handler,
        dead_letters=DeadLetters(producer, topics.scoring_dlq),
        max_records=batch,
    )
    await consumer.start()
    tasks = [asyncio.create_task(loop.run()), asyncio.create_task(worker.run())]
    # The clock starts at the first committed batch: joining the group is not timed.
    while not (first := await count_processed(pool)):  # noqa: ASYNC110 - polls the database
        await asyncio.sleep(0.01)
    started = time.perf_counter()
    while await count_processed(pool) < total:  # noqa: ASYNC110 - polls the database
        await asyncio.sleep(0.05)
    consumed_seconds = time.perf_counter() - started
    while True:
        async with pool.acquire() as conn:
            if not await store.dirty_count(conn):
                break
        await asyncio.sleep(0.05)
    scored_seconds = time.perf_counter() - started
    loop.stop()
    worker.stop()
    await asyncio.gather(*tasks)
    await consumer.stop()
    await producer.stop()
    rescored = REGISTRY.get_sample_value(
        "churnwatch_scoring_accounts_scored_total", {"cause": "events"}
    )
    print(
        f"scoring drain (decode, dedup, aggregates, commit; rescoring alongside): "
        f"{(total - first) / consumed_seconds:,.0f} events/s = "
        f"{(total - first) / consumed_seconds / (total / raw_seconds):.2f} of raw; "
        f"every account rescored ({rescored:.0f} rescorings) after {scored_seconds:.1f}s"
    )
    print(f"peak RSS of this process: {rss_mb():.0f} MB")
    await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.scoring.bench")
    sub = parser.add_subparsers(dest="what", required=True)
    sweep = sub.add_parser("sweep")
    sweep.add_argument("--accounts", type=int, default=100_000)
    sweep.add_argument("--chunk", type=int, default=2000)
    sweep.add_argument("--concurrency", type=int, default=2)
    drain = sub.add_parser("drain")
    drain.add_argument("--events", type=int, default=200_000)
    drain.add_argument("--accounts", type=int, default=10_000)
    drain.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL") or DatabaseSettings().database_url.get_secret_value()

    async def run() -> None:
        async with scratch_database(server) as url:
            if args.what == "sweep":
                await bench_sweep(url, args.accounts, args.chunk, args.concurrency)
            else:
                await bench_drain(url, args.events, args.accounts, args.batch)

    asyncio.run(run())


if __name__ == "__main__":
    main()
