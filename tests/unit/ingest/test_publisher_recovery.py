"""After a broker outage longer than the producer's request timeout, aiokafka gives up a batch
that already had its idempotent sequence number, and the broker answers every later batch to
that partition ``OutOfOrderSequenceNumber`` — ingest answered 503 to everything, forever,
while its readiness said ready (found by `make chaos`, issue 9). The publisher replaces such a
producer: the request that saw it gets 503, readiness is false meanwhile, and the next request
goes through a new producer."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError, OutOfOrderSequenceNumber

from services.ingest.decisions import Message
from services.ingest.publisher import KafkaPublisher, KafkaUnavailable
from shared.kafka import RenewingProducer
from tests.support import eventually


class FakeCluster:
    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def leader_for_partition(self, tp: TopicPartition) -> int:
        return 1


class FakeClient:
    cluster = FakeCluster()

    async def ready(self, node: int) -> bool:
        return True

    async def force_metadata_update(self) -> bool:
        return True

    async def fetch_all_metadata(self) -> None:
        return None


class FakeProducer:
    """Answers every send with ``error`` (or an offset when None); cannot start when
    ``reachable`` is False."""

    def __init__(self, error: Exception | None, *, reachable: bool = True) -> None:
        self.error = error
        self.reachable = reachable
        self.client = FakeClient()
        self.sent: list[bytes] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        if not self.reachable:
            raise KafkaConnectionError()
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, **_: Any) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if self.error is None:
            self.sent.append(value)
            future.set_result(len(self.sent))
        else:
            future.set_exception(self.error)
        return future


MESSAGE = [Message("usage", b"acct-1", b"{}")]


async def publisher_of(*producers: FakeProducer) -> KafkaPublisher:
    queue = list(producers)

    def make() -> AIOKafkaProducer:  # the last one again once the others are used
        return cast(AIOKafkaProducer, queue.pop(0) if len(queue) > 1 else queue[0])

    producer = RenewingProducer(make, max_backoff_seconds=0.05)
    publisher = KafkaPublisher(producer, dlq_topic="dlq", timeout_seconds=2)
    await publisher.connect()
    return publisher


async def test_a_producer_whose_sequence_the_broker_refuses_is_replaced() -> None:
    broken, fresh = FakeProducer(OutOfOrderSequenceNumber()), FakeProducer(None)
    publisher = await publisher_of(broken, fresh)

    with pytest.raises(KafkaUnavailable, match="OutOfOrderSequenceNumber"):
        await publisher.publish(MESSAGE, [], origin="test", headers={})

    async def replaced() -> bool:
        return fresh.started and broken.stopped and await publisher.ready()

    await eventually(replaced, timeout_s=5, what="a new producer")
    await publisher.publish(MESSAGE, [], origin="test", headers={})
    assert fresh.sent == [b"{}"]
    assert publisher.producer.renewals == 1


async def test_requests_failing_together_replace_the_producer_once() -> None:
    broken, fresh = FakeProducer(OutOfOrderSequenceNumber()), FakeProducer(None)
    publisher = await publisher_of(broken, fresh)

    outcomes = await asyncio.gather(
        *(publisher.publish(MESSAGE, [], origin="test", headers={}) for _ in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(o, KafkaUnavailable) for o in outcomes)

    async def started() -> bool:
        return fresh.started

    await eventually(started, timeout_s=5, what="a new producer")
    assert publisher.producer.renewals == 1


async def test_readiness_is_false_until_the_new_producer_is_connected() -> None:
    broken, unreachable = FakeProducer(OutOfOrderSequenceNumber()), FakeProducer(None)
    publisher = await publisher_of(broken, unreachable)
    unreachable.reachable = False  # the new producer cannot connect yet

    with pytest.raises(KafkaUnavailable):
        await publisher.publish(MESSAGE, [], origin="test", headers={})
    assert not await publisher.ready()
    with pytest.raises(KafkaUnavailable, match="not connected"):
        await publisher.publish(MESSAGE, [], origin="test", headers={})
    await publisher.close()  # gives up the renewal


async def test_a_broker_that_is_only_unreachable_keeps_the_producer() -> None:
    flaky = FakeProducer(KafkaConnectionError())
    publisher = await publisher_of(flaky)

    with pytest.raises(KafkaUnavailable):
        await publisher.publish(MESSAGE, [], origin="test", headers={})
    assert publisher.producer.renewals == 0
    assert await publisher.ready()
