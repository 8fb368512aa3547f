"""``shared.kafka.RenewingProducer``: a producer the broker refuses with
``OutOfOrderSequenceNumber`` (aiokafka gave up a sequenced batch during a broker outage of more
than its request timeout — found by `make chaos` in ingest, issue 9) is replaced once, the old
one stopped; sends after that go through the new one. scoring's relay and dead letters and
alerts' dead letters use it, so one outage does not stop them until a restart."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    NotLeaderForPartitionError,
    OutOfOrderSequenceNumber,
)

from shared.kafka import RenewingProducer
from tests.support import eventually


class FakeProducer:
    def __init__(self, error: Exception | None = None, *, reachable: bool = True) -> None:
        self.error = error
        self.reachable = reachable
        self.client = object()
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        if not self.reachable:
            raise KafkaConnectionError()
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes | None = None, **kw: Any) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if self.error is None:
            self.sent.append((topic, value, kw.get("key")))
            future.set_result(len(self.sent))
        else:
            future.set_exception(self.error)
        return future


def renewing(*producers: FakeProducer) -> RenewingProducer:
    queue = list(producers)

    def make() -> AIOKafkaProducer:  # the last one again once the others are used
        return cast(AIOKafkaProducer, queue.pop(0) if len(queue) > 1 else queue[0])

    return RenewingProducer(make, max_backoff_seconds=0.05)


async def failed(future: asyncio.Future[Any]) -> BaseException | None:
    try:
        await future
    except Exception as exc:
        return exc
    return None


async def test_a_refused_sequence_replaces_the_producer_and_later_sends_go_through() -> None:
    broken, fresh = FakeProducer(OutOfOrderSequenceNumber()), FakeProducer()
    producer = renewing(broken, fresh)
    await producer.start()

    error = await failed(await producer.send("t", b"v", key=b"k"))
    assert isinstance(error, OutOfOrderSequenceNumber)  # the caller still sees it, and retries

    async def replaced() -> bool:
        return fresh.started and broken.stopped

    await eventually(replaced, timeout_s=5, what="a new producer")
    assert await (await producer.send("t", b"v2", key=b"k")) == 1
    assert fresh.sent == [("t", b"v2", b"k")]
    assert producer.client is fresh.client
    assert producer.renewals == 1


async def test_many_refused_sends_replace_it_once() -> None:
    broken, fresh = FakeProducer(OutOfOrderSequenceNumber()), FakeProducer()
    producer = renewing(broken, fresh)
    await producer.start()

    futures = [await producer.send("t", b"v") for _ in range(10)]
    await asyncio.gather(*futures, return_exceptions=True)

    async def replaced() -> bool:
        return producer.renewals == 1

    await eventually(replaced, timeout_s=5, what="one replacement")
    await asyncio.sleep(0)  # any second replacement would have been scheduled by now
    assert producer.renewals == 1


async def test_other_kafka_errors_keep_the_producer() -> None:
    flaky = FakeProducer(NotLeaderForPartitionError())
    producer = renewing(flaky)
    await producer.start()

    assert isinstance(await failed(await producer.send("t", b"v")), NotLeaderForPartitionError)
    await asyncio.sleep(0.05)
    assert producer.renewals == 0
    assert not flaky.stopped


async def test_a_new_producer_that_cannot_start_yet_is_retried_and_stop_ends_the_attempts() -> None:
    broken, unreachable = FakeProducer(OutOfOrderSequenceNumber()), FakeProducer()
    producer = renewing(broken, unreachable)
    await producer.start()
    unreachable.reachable = False

    await failed(await producer.send("t", b"v"))
    await asyncio.sleep(0.2)  # several attempts to start the new one, all refused
    assert producer.renewals == 0
    await asyncio.wait_for(producer.stop(), timeout=5)
    assert broken.stopped
