"""The scoring service as a real process on the real broker and database.

Exactly-once effects through duplicates, replays, SIGKILL and rebalances; dead letters that
never stop a partition; health changes published from the outbox; graceful shutdown.
"""

from __future__ import annotations

import random
import signal
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared import events
from shared.events import Topics, UsageEvent
from shared.kafka import client_options, make_producer
from shared.settings import KafkaSettings
from tests.integration.scoring.kafka_support import (
    READ_KEY,
    caught_up,
    count,
    produce,
    read_topic,
    service_env,
)
from tests.support import ServiceProcess, eventually
from tests.unit.scoring.builders import account, usage

SOURCE_TOPICS = ("usage", "tickets", "surveys", "accounts", "people")


Launch = Callable[[dict[str, str]], ServiceProcess]


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """Make scoring processes; any still running when the test ends is killed."""
    made: list[ServiceProcess] = []

    def make(env: dict[str, str]) -> ServiceProcess:
        made.append(ServiceProcess("scoring", env, tmp_path))
        return made[-1]

    yield make
    for process in made:
        process.kill()


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    producer = make_producer(kafka_settings)
    await producer.start()
    yield producer
    await producer.stop()


def workload(accounts: int, events_per_account: int, *, seed: int = 7) -> list[UsageEvent]:
    """Usage over the last few days for several accounts, with known counts."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    return [
        usage(
            f"acct-{a:03d}",
            at=now - timedelta(minutes=rng.randrange(0, 3 * 24 * 60)),
            user=f"user-{rng.randrange(8)}",
            event_id=f"e-{a}-{i}",
        )
        for a in range(accounts)
        for i in range(events_per_account)
    ]


async def usage_per_account(pool: asyncpg.Pool) -> dict[str, int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT account_id, sum(usage_events) AS n FROM scoring.account_days GROUP BY 1"
        )
    return {r["account_id"]: int(r["n"]) for r in rows}


def expected(events_: list[UsageEvent]) -> dict[str, int]:
    return dict(Counter(e.account_id for e in {e.event_id: e for e in events_}.values()))


def options(settings: KafkaSettings) -> dict[str, Any]:
    return client_options(settings)


async def all_consumed(settings: KafkaSettings, topics: Topics, group: str | None = None) -> bool:
    names = [topics.name(t) for t in SOURCE_TOPICS]
    return await caught_up(options(settings), group or f"{settings.topic_prefix}scoring", names)


async def test_duplicates_count_once_and_changes_are_published_from_the_outbox(
    kafka_settings: KafkaSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    scoring_url: str,
    pool: asyncpg.Pool,
    launch: Launch,
) -> None:
    batch = workload(accounts=5, events_per_account=40)
    await produce(producer, topics.accounts, [account(f"acct-{a:03d}") for a in range(5)])
    await produce(producer, topics.usage, batch)
    await produce(producer, topics.usage, batch[::3])  # the same event ids again

    async with launch(service_env(kafka_settings, scoring_url)) as service:

        async def scored() -> bool:
            return await count(pool, "SELECT count(*) FROM scoring.health") == 5

        await eventually(scored, timeout_s=60, what="five accounts scored")
        assert await usage_per_account(pool) == expected(batch)

        published = await read_topic(options(kafka_settings), topics.health, at_least=5)
        changes = [events.decode_health_change(r.value) for r in published]
        assert {c.account_id for c in changes} == {f"acct-{a:03d}" for a in range(5)}
        assert all(r.key == c.account_id.encode() for r, c in zip(published, changes, strict=True))
        assert all(c.triggers == ["first_score"] for c in changes)
        async with pool.acquire() as conn:
            recorded = {
                r[0]
                for r in await conn.fetch(
                    "SELECT change_id FROM scoring.health_history WHERE change_id IS NOT NULL"
                )
            }
        assert {c.change_id for c in changes} == recorded

        async def outbox_empty() -> bool:
            return await count(pool, "SELECT count(*) FROM scoring.outbox") == 0

        await eventually(outbox_empty, what="the outbox relayed")
        async with httpx.AsyncClient(base_url=service.url) as client:
            metrics = (await client.get("/metrics")).text
            health = await client.get(
                "/v1/accounts/acct-000/health", headers={"Authorization": f"Bearer {READ_KEY}"}
            )
        assert "churnwatch_scoring_events_consumed_total" in metrics
        assert "churnwatch_scoring_events_duplicate_total" in metrics
        assert health.status_code == 200
        assert health.json()["account_id"] == "acct-000"


async def test_undecodable_and_too_old_messages_go_to_the_dlq_and_the_partition_keeps_flowing(
    kafka_settings: KafkaSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    scoring_url: str,
    pool: asyncpg.Pool,
    launch: Launch,
) -> None:
    now = datetime.now(UTC)
    before = [usage("acme", event_id=f"before-{i}", at=now - timedelta(hours=i)) for i in range(3)]
    after = [usage("acme", event_id=f"after-{i}", at=now - timedelta(hours=i)) for i in range(3)]
    too_old = usage("acme", event_id="ancient", at=now - timedelta(days=30))
    messages: list[Any] = [*before, b"{not json", too_old, b'{"event_type": "usage"}', *after]
    await produce(producer, topics.usage, messages, key="acme", partition=0)

    async with launch(service_env(kafka_settings, scoring_url)):

        async def flowed() -> bool:
            return await usage_per_account(pool) == {"acme": 6}

        await eventually(flowed, timeout_s=60, what="the good events on both sides counted")
        dead = await read_topic(options(kafka_settings), topics.scoring_dlq, at_least=3)

    codes = sorted(dict(d.headers)["dlq.code"].decode() for d in dead)
    assert codes == ["too_old", "undecodable", "undecodable"]
    reasons = {dict(d.headers)["dlq.code"].decode(): dict(d.headers)["dlq.reason"] for d in dead}
    assert b"retention horizon" in reasons["too_old"]
    assert {d.value for d in dead} >= {b"{not json", events.encode(too_old)}
    assert all(dict(d.headers)["dlq.origin"].startswith(topics.usage.encode()) for d in dead)
    assert await all_consumed(kafka_settings, topics)


async def test_replaying_every_partition_from_offset_zero_changes_nothing(
    kafka_settings: KafkaSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    scoring_url: str,
    pool: asyncpg.Pool,
    launch: Launch,
) -> None:
    batch = workload(accounts=6, events_per_account=50)
    await produce(producer, topics.accounts, [account(f"acct-{a:03d}") for a in range(6)])
    await produce(producer, topics.usage, batch)
    env = service_env(kafka_settings, scoring_url)

    async with launch(env):

        async def done() -> bool:
            return (
                await all_consumed(kafka_settings, topics)
                and (await count(pool, "SELECT count(*) FROM scoring.health") == 6)
                and await count(pool, "SELECT count(*) FROM scoring.outbox") == 0
            )

        await eventually(done, timeout_s=60, what="everything consumed, scored and published")
    snapshot = await database_state(pool)

    # A new consumer group starts every partition at offset 0: a full replay.
    replay_group = f"{kafka_settings.topic_prefix}replay"
    async with launch({**env, "SCORING_CONSUMER_GROUP": replay_group}):

        async def replayed() -> bool:
            return await all_consumed(kafka_settings, topics, replay_group)

        await eventually(replayed, timeout_s=60, what="the replay consumed everything")
    assert await database_state(pool) == snapshot
    assert await usage_per_account(pool) == expected(batch)


async def database_state(pool: asyncpg.Pool) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return {
            "days": sorted(
                tuple(r) for r in await conn.fetch("SELECT * FROM scoring.account_days")
            ),
            "users": sorted(
                tuple(r) for r in await conn.fetch("SELECT * FROM scoring.account_users")
            ),
            "history": await conn.fetchval("SELECT count(*) FROM scoring.health_history"),
            "changes": await conn.fetchval(
                "SELECT count(*) FROM scoring.health_history WHERE change_id IS NOT NULL"
            ),
            "queued": await conn.fetchval("SELECT count(*) FROM scoring.dirty_accounts"),
        }


async def test_sigkill_mid_batch_and_restart_loses_nothing_and_counts_nothing_twice(
    kafka_settings: KafkaSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    scoring_url: str,
    pool: asyncpg.Pool,
    launch: Launch,
) -> None:
    batch = workload(accounts=40, events_per_account=400, seed=11)  # 16 000 events
    await produce(producer, topics.usage, batch)
    await produce(producer, topics.usage, batch[:2000])  # and a burst of duplicates
    env = service_env(kafka_settings, scoring_url, SCORING_MAX_BATCH_RECORDS="100")

    service = launch(env)
    for kill in range(2):
        await service.start()

        async def progressing(threshold: int = 3000 * (kill + 1)) -> bool:
            return await count(pool, "SELECT count(*) FROM scoring.processed_events") >= threshold

        await eventually(progressing, timeout_s=60, what="some batches committed")
        assert service.proc is not None
        service.proc.send_signal(signal.SIGKILL)
        service.proc.wait(10)
        assert service.proc.returncode == -signal.SIGKILL

    async with service:

        async def finished() -> bool:
            return await all_consumed(kafka_settings, topics) and (
                await count(pool, "SELECT count(*) FROM scoring.dirty_accounts") == 0
            )

        await eventually(finished, timeout_s=120, what="the restarted service caught up")
    assert await usage_per_account(pool) == expected(batch)
    assert await count(pool, "SELECT count(*) FROM scoring.processed_events") == len(
        {e.event_id for e in batch}
    )
    assert await count(pool, "SELECT count(*) FROM scoring.health") == 40


async def test_two_instances_sharing_partitions_through_rebalances_count_everything_once(
    kafka_settings: KafkaSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    scoring_url: str,
    pool: asyncpg.Pool,
    launch: Launch,
) -> None:
    waves = [workload(accounts=30, events_per_account=100, seed=s) for s in (1, 2, 3)]
    for n, wave in enumerate(waves):  # distinct ids per wave
        for e in wave:
            e.event_id = f"w{n}-{e.event_id}"
    env = service_env(kafka_settings, scoring_url, SCORING_MAX_BATCH_RECORDS="200")

    first = launch(env)
    second = launch(env)
    await first.start()
    try:
        await produce(producer, topics.usage, waves[0])
        await second.start()  # joins the group: partitions move while wave 0 may be in flight
        await produce(producer, topics.usage, waves[1])
        await produce(producer, topics.usage, waves[0][:500])  # redelivered duplicates

        async def shared_work_done() -> bool:
            return await all_consumed(kafka_settings, topics)

        await eventually(shared_work_done, timeout_s=120, what="waves 0 and 1 consumed")
        by_first = await consumed(first.url)
        # Leaves the group: its partitions move to the second instance.
        assert await first.stop() == 0
        assert '"scoring stopped"' in first.logs()
        await produce(producer, topics.usage, waves[2])

        async def finished() -> bool:
            return await all_consumed(kafka_settings, topics) and (
                await count(pool, "SELECT count(*) FROM scoring.dirty_accounts") == 0
            )

        await eventually(finished, timeout_s=120, what="the remaining instance caught up")
        by_second = await consumed(second.url)
    finally:
        first.kill()
        assert await second.stop() == 0
    everything = [e for wave in waves for e in wave]
    assert await usage_per_account(pool) == expected(everything)
    # Both did part of the work, and together they took each event exactly once.
    assert by_first > 0
    assert by_second > 0
    assert by_first + by_second == len({e.event_id for e in everything})


async def consumed(url: str) -> int:
    """Events this instance took into the aggregates, from its /metrics."""
    async with httpx.AsyncClient(base_url=url) as client:
        text = (await client.get("/metrics")).text
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("churnwatch_scoring_events_consumed_total{")
    )


async def test_sigterm_finishes_the_batch_commits_and_exits_cleanly(
    kafka_settings: KafkaSettings,
    topics: Topics,
    producer: AIOKafkaProducer,
    scoring_url: str,
    pool: asyncpg.Pool,
    launch: Launch,
) -> None:
    batch = workload(accounts=3, events_per_account=30)
    await produce(producer, topics.usage, batch)
    service = launch(service_env(kafka_settings, scoring_url))
    await service.start()

    async def counted() -> bool:
        return await usage_per_account(pool) == expected(batch)

    await eventually(counted, timeout_s=60, what="the events counted")
    assert await service.stop() == 0
    assert await all_consumed(kafka_settings, topics)
    assert '"scoring stopped"' in service.logs()
