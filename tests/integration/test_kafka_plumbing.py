"""The shared Kafka plumbing against the real broker: idempotent producer, consumer loop, DLQ."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared import db, events
from shared.events import Topics, UsageEvent
from shared.kafka import (
    ConsumerLoop,
    DeadLetters,
    Record,
    Rejection,
    client_options,
    make_consumer,
    make_producer,
)
from shared.settings import KafkaSettings
from tests.support import eventually


def usage(event_id: str, account: str = "acme") -> UsageEvent:
    now = datetime.now(UTC)
    return UsageEvent(
        event_id=event_id,
        account_id=account,
        occurred_at=now,
        received_at=now,
        source="test",
        user_id="u1",
        type="login",
    )


def decode(_topic: str, raw: bytes | None) -> events.Event:
    return events.decode_event(raw or b"")


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    producer = make_producer(kafka_settings)
    await producer.start()
    yield producer
    await producer.stop()


async def read_all(settings: KafkaSettings, topic: str, count: int) -> list[Any]:
    """Read ``count`` records from the start of ``topic`` (no group), within a deadline."""
    consumer = AIOKafkaConsumer(topic, **client_options(settings), auto_offset_reset="earliest")
    await consumer.start()
    records: list[Any] = []
    try:

        async def enough() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                records.extend(messages)
            return len(records) >= count

        await eventually(enough, timeout_s=20, what=f"{count} records on {topic}")
    finally:
        await consumer.stop()
    return records


async def run_loop(
    loop: ConsumerLoop[events.Event],
    consumer: AIOKafkaConsumer,
    until: Callable[[], Awaitable[bool]],
) -> None:
    await consumer.start()
    task = asyncio.create_task(loop.run())
    try:
        await eventually(until, timeout_s=30, what="the loop to handle the batch")
    finally:
        loop.stop()
        await asyncio.wait_for(task, 10)
        await consumer.stop()


async def test_event_from_idempotent_producer_is_committed_only_after_handling(
    kafka_settings: KafkaSettings, topics: Topics, producer: AIOKafkaProducer
) -> None:
    metadata = await producer.send_and_wait(topics.usage, events.encode(usage("e-1")), key=b"acme")
    tp = TopicPartition(topics.usage, metadata.partition)
    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = make_consumer(kafka_settings, group)
    seen: list[str] = []
    committed_while_handling: list[int | None] = []

    async def handle(
        records: Sequence[Record[events.Event]],
    ) -> list[tuple[Record[events.Event], Rejection]]:
        committed_while_handling.append(await consumer.committed(tp))
        seen.extend(r.value.event_id for r in records)
        return []

    loop = ConsumerLoop(
        consumer,
        group=group,
        topics=[topics.usage],
        decode=decode,
        handle=handle,
        dead_letters=DeadLetters(producer, topics.scoring_dlq),
    )

    async def committed() -> bool:
        return loop.batches_committed >= 1

    await run_loop(loop, consumer, committed)
    assert seen == ["e-1"]
    assert committed_while_handling == [None], "nothing may be committed before the handler ends"

    check = make_consumer(kafka_settings, group)
    await check.start()
    try:
        assert await check.committed(tp) == metadata.offset + 1
    finally:
        await check.stop()


async def test_the_loop_says_how_many_records_wait_behind_its_last_batch(
    kafka_settings: KafkaSettings, topics: Topics, producer: AIOKafkaProducer
) -> None:
    for n in range(30):  # one key: one partition
        await producer.send(topics.usage, events.encode(usage(f"w-{n}")), key=b"acme")
    await producer.flush()
    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = make_consumer(kafka_settings, group)
    handled = 0
    seen: list[tuple[int, int]] = []  # (records handled before this batch, waiting then)

    async def handle(
        records: Sequence[Record[events.Event]],
    ) -> list[tuple[Record[events.Event], Rejection]]:
        nonlocal handled
        seen.append((handled, loop.waiting_records))
        handled += len(records)
        return []

    loop = ConsumerLoop(
        consumer,
        group=group,
        topics=[topics.usage],
        decode=decode,
        handle=handle,
        dead_letters=DeadLetters(producer, topics.scoring_dlq),
        max_records=10,
    )

    async def drained() -> bool:
        return handled == 30 and loop.batches_committed == len(seen)

    await run_loop(loop, consumer, drained)
    assert len(seen) >= 3
    assert seen[0] == (0, 0)  # nothing known before the first batch
    assert all(waiting == 30 - before for before, waiting in seen[1:]), seen
    assert loop.waiting_records == 0


async def test_undecodable_record_goes_to_the_dlq_and_the_loop_continues(
    kafka_settings: KafkaSettings, topics: Topics, producer: AIOKafkaProducer
) -> None:
    send = producer.send_and_wait
    await send(topics.usage, b"{not json", key=b"acme", partition=0)
    await send(topics.usage, events.encode(usage("e-after-poison")), key=b"acme", partition=0)
    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = make_consumer(kafka_settings, group)
    seen: list[str] = []

    async def handle(
        records: Sequence[Record[events.Event]],
    ) -> list[tuple[Record[events.Event], Rejection]]:
        seen.extend(r.value.event_id for r in records)
        return []

    loop = ConsumerLoop(
        consumer,
        group=group,
        topics=[topics.usage],
        decode=decode,
        handle=handle,
        dead_letters=DeadLetters(producer, topics.scoring_dlq),
    )

    async def handled() -> bool:
        return seen == ["e-after-poison"] and loop.batches_committed >= 1

    await run_loop(loop, consumer, handled)

    [dead] = await read_all(kafka_settings, topics.scoring_dlq, 1)
    headers = {k: v.decode() for k, v in dead.headers}
    assert dead.value == b"{not json"
    assert dead.key == b"acme"
    assert headers["dlq.code"] == "undecodable"
    assert "JSON" in headers["dlq.reason"] or "malformed" in headers["dlq.reason"].lower()
    assert headers["dlq.origin"] == f"{topics.usage}/0/0"
    assert headers["dlq.consumer_group"] == group


async def test_failing_handler_is_retried_and_refused_records_are_dead_lettered(
    kafka_settings: KafkaSettings, topics: Topics, producer: AIOKafkaProducer
) -> None:
    send = producer.send_and_wait
    await send(topics.usage, events.encode(usage("keep")), key=b"acme", partition=1)
    await send(topics.usage, events.encode(usage("refuse")), key=b"acme", partition=1)
    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = make_consumer(kafka_settings, group)
    attempts = 0
    done: list[str] = []

    async def handle(
        records: Sequence[Record[events.Event]],
    ) -> list[tuple[Record[events.Event], Rejection]]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("database unavailable")
        done.extend(r.value.event_id for r in records)
        return [
            (r, Rejection("too_old", "older than the retention horizon"))
            for r in records
            if r.value.event_id == "refuse"
        ]

    loop = ConsumerLoop(
        consumer,
        group=group,
        topics=[topics.usage],
        decode=decode,
        handle=handle,
        dead_letters=DeadLetters(producer, topics.scoring_dlq),
    )

    async def handled() -> bool:
        return loop.batches_committed >= 1

    await run_loop(loop, consumer, handled)
    assert attempts == 2
    assert done == ["keep", "refuse"]
    [dead] = await read_all(kafka_settings, topics.scoring_dlq, 1)
    assert events.decode_event(dead.value).event_id == "refuse"
    assert dict(dead.headers)["dlq.code"] == b"too_old"


async def test_a_record_the_database_cannot_take_is_isolated_and_dead_lettered(
    kafka_settings: KafkaSettings, topics: Topics, producer: AIOKafkaProducer, database_url: str
) -> None:
    """A batch failing on one record's data (here a number PostgreSQL's int4 cannot hold) is
    handled in halves until that record is alone; it goes to the DLQ, the rest is handled."""
    good = [f"ok-{i}" for i in range(5)]
    for event_id in [*good[:2], "2147483648", *good[2:]]:  # int4 ends at 2147483647
        await producer.send_and_wait(
            topics.usage, events.encode(usage(event_id)), key=b"acme", partition=2
        )
    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = make_consumer(kafka_settings, group)
    engine = db.create_engine_for_url(database_url)
    handled: list[str] = []

    async def handle(
        records: Sequence[Record[events.Event]],
    ) -> list[tuple[Record[events.Event], Rejection]]:
        values = [int(r.value.event_id) if r.value.event_id.isdigit() else 0 for r in records]
        async with engine.connect() as conn:  # a real statement, a real data error
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            await raw.fetch("SELECT unnest($1::int4[])", values)
        handled.extend(r.value.event_id for r in records)
        return []

    loop = ConsumerLoop(
        consumer,
        group=group,
        topics=[topics.usage],
        decode=decode,
        handle=handle,
        dead_letters=DeadLetters(producer, topics.scoring_dlq),
        unprocessable=db.is_bad_data,
    )

    async def committed() -> bool:
        return sorted(handled) == good and loop.batches_committed >= 1

    try:
        await run_loop(loop, consumer, committed)
    finally:
        await engine.dispose()
    assert loop.healthy
    [dead] = await read_all(kafka_settings, topics.scoring_dlq, 1)
    assert events.decode_event(dead.value).event_id == "2147483648"
    headers = {k: v.decode() for k, v in dead.headers}
    assert headers["dlq.code"] == "unprocessable"
    assert "int32" in headers["dlq.reason"] or "range" in headers["dlq.reason"]


def test_only_a_failure_of_the_data_is_unprocessable() -> None:
    import asyncpg

    assert db.is_bad_data(asyncpg.exceptions.NumericValueOutOfRangeError("out of range"))
    wrapped = RuntimeError("batch failed")
    wrapped.__cause__ = asyncpg.exceptions._base.DataError("invalid input for query argument")
    assert db.is_bad_data(wrapped)
    assert not db.is_bad_data(ConnectionRefusedError("database down"))
    assert not db.is_bad_data(asyncpg.exceptions.UniqueViolationError("a race"))
    assert not db.is_bad_data(asyncpg.exceptions.CannotConnectNowError("starting up"))
