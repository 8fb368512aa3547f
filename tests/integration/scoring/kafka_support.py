"""Kafka and process helpers for the scoring service tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared import events
from shared.auth import digest
from shared.settings import KafkaSettings
from tests.support import eventually

READ_KEY = "cw_test_read_key"


def service_env(settings: KafkaSettings, database_url: str, **extra: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "TOPIC_PREFIX": settings.topic_prefix,
        "DATABASE_URL": database_url,
        "API_KEYS": json.dumps([{"name": "test", "sha256": digest(READ_KEY), "scopes": ["read"]}]),
        "SCORING_SHUTDOWN_DRAIN_SECONDS": "0",
        "SCORING_SWEEP_INTERVAL_SECONDS": "3600",
        "SCORING_RESCORE_POLL_SECONDS": "0.2",
        "SCORING_RELAY_POLL_SECONDS": "0.2",
        **extra,
    }


async def produce(
    producer: AIOKafkaProducer,
    topic: str,
    messages: Iterable[msgspec.Struct | bytes],
    *,
    key: str | None = None,
    partition: int | None = None,
) -> None:
    """Send every message, then wait for all acknowledgements."""
    futures = []
    for message in messages:
        raw = message if isinstance(message, bytes) else events.encode(message)
        k = key or getattr(message, "account_id", None) or "none"
        futures.append(await producer.send(topic, raw, key=k.encode(), partition=partition))
    await asyncio.gather(*futures)


async def read_topic(
    consumer_options: dict[str, Any], topic: str, *, at_least: int, timeout_s: float = 30
) -> list[Any]:
    """Every record of ``topic`` from the beginning, once there are ``at_least`` of them."""
    consumer = AIOKafkaConsumer(topic, **consumer_options, auto_offset_reset="earliest")
    await consumer.start()
    records: list[Any] = []
    try:

        async def enough() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                records.extend(messages)
            return len(records) >= at_least

        await eventually(enough, timeout_s=timeout_s, what=f"{at_least} records on {topic}")
        # and whatever else is already there
        batch = await consumer.getmany(timeout_ms=500)
        for messages in batch.values():
            records.extend(messages)
    finally:
        await consumer.stop()
    return records


async def caught_up(consumer_options: dict[str, Any], group: str, topics: Sequence[str]) -> bool:
    """Whether ``group`` has committed every partition of ``topics`` up to its end."""
    consumer = AIOKafkaConsumer(**consumer_options, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
        ]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
            ]
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            if ends[tp] and (await consumer.committed(tp) or 0) < ends[tp]:
                return False
        return True
    finally:
        await consumer.stop()


async def count(pool: asyncpg.Pool, sql: str, *args: Any) -> int:
    async with pool.acquire() as conn:
        value = await conn.fetchval(sql, *args)
    return int(value or 0)
