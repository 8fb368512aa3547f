"""Publishing a request's messages to Kafka and waiting until every one is acknowledged.

The producer is ``shared.kafka``'s idempotent one (``acks=all``): an acknowledgement means the
message is durably in Kafka. A request's messages are handed over all at once and awaited
together, within ``produce_timeout_seconds``:

- messages are grouped by partition first (the partitioner is Kafka's murmur2 of the key, so
  an account always lands on the same partition whoever produced it);
- before anything is handed over, the leader of every partition the request writes to must
  be reachable; otherwise nothing is queued and the request gets 503 — with the broker down,
  nothing of the request is published later either;
- a partition's messages go as one pre-built batch when there are many of them (cheap per
  message), or one by one when there are few, so they merge with other requests' messages;
- refused items go to the ingest dead-letter topic in the same wait.

If Kafka does not acknowledge in time the caller gets 503 and ``Retry-After``. Some of the
request may still be written after that (the broker failed mid-request): event ids are stable
across retries (client-given, or derived from the item's bytes), so a retry is counted once.

A producer whose sequence numbers the broker no longer accepts (``OutOfOrderSequenceNumber``:
aiokafka gives up a batch that waited longer than its request timeout for a partition leader,
as after a broker outage of more than 15 s, and the idempotent sequence has a gap from then
on) would refuse every later message to that partition, forever. It is replaced — the
producer is ``shared.kafka.RenewingProducer``, as in the other services; meanwhile requests
get 503 and readiness is false.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, OutOfOrderSequenceNumber
from aiokafka.partitioner import murmur2

from services.ingest.decisions import Message, Refused
from services.ingest.metrics import PRODUCE_SECONDS
from shared.kafka import DeadLetters, Rejection, RenewingProducer, producer_ready

log = logging.getLogger(__name__)


class KafkaUnavailable(Exception):
    """Kafka did not take (or acknowledge) a request's messages: answer 503."""


class Publisher(Protocol):
    """Where decisions are carried out. Tests use a recording fake."""

    async def publish(
        self,
        messages: Sequence[Message],
        refused: Sequence[Refused],
        *,
        origin: str,
        headers: Mapping[str, str],
    ) -> None:
        """Return once Kafka acknowledged every message and dead letter; raise
        :class:`KafkaUnavailable` otherwise."""
        ...

    async def ready(self) -> bool: ...


@functools.lru_cache(maxsize=65536)
def partition_index(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2, as the Java client), cached per key."""
    digest: int = murmur2(key)
    return (digest & 0x7FFFFFFF) % partitions


class KafkaPublisher:
    def __init__(
        self,
        producer: RenewingProducer,
        *,
        dlq_topic: str,
        timeout_seconds: float,
        large_batch_messages: int = 64,
    ) -> None:
        self.producer = producer
        self._dlq_topic = dlq_topic
        self._timeout = timeout_seconds
        self._large = large_batch_messages
        self._dead_letters = DeadLetters(producer, dlq_topic)
        self._batch_locks: defaultdict[TopicPartition, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._connected = False

    # -- life cycle --------------------------------------------------------------------------

    async def connect(self) -> None:
        """Start the producer, retrying until Kafka answers (cancel to give up)."""
        await self.producer.start_retrying()
        self._connected = True
        log.info("Kafka producer connected")

    async def close(self) -> None:
        """Flush what is queued and stop the producer."""
        if self._connected:
            self._connected = False
            await self.producer.stop()
            log.info("Kafka producer flushed and stopped")

    async def ready(self) -> bool:
        return self._usable and await producer_ready(self.producer)

    @property
    def _usable(self) -> bool:
        return self._connected and not self.producer.renewing

    # -- publishing --------------------------------------------------------------------------

    async def publish(
        self,
        messages: Sequence[Message],
        refused: Sequence[Refused],
        *,
        origin: str,
        headers: Mapping[str, str],
    ) -> None:
        if not self._usable:
            raise KafkaUnavailable("the Kafka producer is not connected yet")
        if not messages and not refused:
            return
        producer = self.producer.current
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                futures = await self._hand_over(
                    producer, self._dead_letters, messages, refused, origin, headers
                )
                await asyncio.gather(*futures)
        except TimeoutError:
            raise KafkaUnavailable(
                f"Kafka did not acknowledge within {self._timeout:g} s"
            ) from None
        except KafkaError as exc:
            if isinstance(exc, OutOfOrderSequenceNumber):
                self.producer.renew(producer)
            raise KafkaUnavailable(f"Kafka refused the messages: {exc!r}") from None
        finally:
            PRODUCE_SECONDS.observe(time.perf_counter() - started)

    async def _hand_over(
        self,
        producer: AIOKafkaProducer,
        dead_letters: DeadLetters,
        messages: Sequence[Message],
        refused: Sequence[Refused],
        origin: str,
        headers: Mapping[str, str],
    ) -> list[asyncio.Future[Any]]:
        # Group by partition. The hot loop: a request's messages mostly share a topic and
        # repeat keys, so both are looked up once.
        groups: dict[tuple[str, int], list[Message]] = {}
        by_topic: dict[str, tuple[list[int], dict[bytes, list[Message]]]] = {}
        topic: str | None = None
        partitions: list[int] = []
        by_key: dict[bytes, list[Message]] = {}
        for message in messages:
            if message.topic != topic:
                topic = message.topic
                known = by_topic.get(topic)
                if known is None:
                    known = by_topic[topic] = (await _partitions(producer, topic), {})
                partitions, by_key = known
            group = by_key.get(message.key)
            if group is None:
                partition = partitions[partition_index(message.key, len(partitions))]
                group = by_key[message.key] = groups.setdefault((topic, partition), [])
            group.append(message)

        targets = [TopicPartition(topic, partition) for topic, partition in groups]
        if refused:
            dlq = await _partitions(producer, self._dlq_topic)
            targets += [TopicPartition(self._dlq_topic, partition) for partition in dlq]
        await _require_leaders(producer, targets)

        futures: list[asyncio.Future[Any]] = []
        for (topic, partition), group in groups.items():
            if len(group) >= self._large:
                futures += await self._send_batches(producer, topic, partition, group)
            else:
                for message in group:
                    futures.append(
                        await producer.send(
                            topic, message.value, key=message.key, partition=partition
                        )
                    )
        for item in refused:
            futures.append(
                await dead_letters.send(
                    item.raw,
                    Rejection(item.code, item.message),
                    origin=origin,
                    key=item.key,
                    extra={**headers, "dlq.index": str(item.index)},
                )
            )
        return futures

    async def _send_batches(
        self, producer: AIOKafkaProducer, topic: str, partition: int, group: list[Message]
    ) -> list[asyncio.Future[Any]]:
        # One of our batches at a time per partition: aiokafka queues one batch per partition
        # and makes the others wait for it to drain.
        futures: list[asyncio.Future[Any]] = []
        async with self._batch_locks[TopicPartition(topic, partition)]:
            batch = producer.create_batch()
            append = batch.append
            for message in group:
                if append(key=message.key, value=message.value, timestamp=None) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    append = batch.append
                    if append(key=message.key, value=message.value, timestamp=None) is None:
                        raise KafkaUnavailable("a message is larger than the producer's batch")
            batch.close()  # complete: no need to linger for more messages
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures


async def _partitions(producer: AIOKafkaProducer, topic: str) -> list[int]:
    known = producer.client.cluster.partitions_for_topic(topic)
    if not known:
        known = await producer.partitions_for(topic)  # waits for metadata
    return sorted(known)


async def _require_leaders(producer: AIOKafkaProducer, targets: Sequence[TopicPartition]) -> None:
    """Refuse before queueing anything when a partition's leader is unknown or unreachable.

    The metadata may be stale (a leader moved while its old broker restarts): refresh it once
    before giving up, so a rolling restart is not a stream of 503s.
    """
    client = producer.client
    for attempt in range(2):
        leaders = {client.cluster.leader_for_partition(tp) for tp in targets}
        unreachable = [
            leader
            for leader in leaders
            if leader is None or leader < 0 or not await client.ready(leader)
        ]
        if not unreachable:
            return
        if attempt == 0:
            await client.force_metadata_update()
    raise KafkaUnavailable(f"Kafka broker(s) {unreachable} leading the partitions are unreachable")
