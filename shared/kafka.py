"""Kafka plumbing: the idempotent producer, topic creation, the dead-letter path and the batch
consumer loop every consuming service runs.

The consumer loop's contract (what makes effects exactly-once together with an idempotent
handler):

1. fetch a batch; decode every record — a record that cannot be decoded goes to the dead-letter
   topic with its reason and original bytes, and the loop goes on (a bad message never stops a
   partition);
2. hand the decoded records to the service's handler, which makes its effects durable (one
   database transaction) and returns the records it rejects, which are dead-lettered too;
3. only then commit the offsets of the batch.

A handler that raises (database down, network) is a broken dependency, not a bad message:
the same batch is retried with backoff until it succeeds or the loop is stopped; nothing is
committed meanwhile. A crash anywhere before step 3 means redelivery, which the handler's
idempotency (e.g. dedup by ``event_id``) absorbs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    KafkaError,
    OutOfOrderSequenceNumber,
    TopicAlreadyExistsError,
)
from aiokafka.helpers import create_ssl_context
from prometheus_client import Counter, Gauge, Histogram

from shared.events import TopicSpec
from shared.settings import KafkaSettings
from shared.worker import Backoff

log = logging.getLogger(__name__)

T = TypeVar("T")

CONSUMED = Counter(
    "churnwatch_consumer_records_total",
    "Records taken from Kafka, by outcome (handled, dead_lettered)",
    ["group", "topic", "outcome"],
)
DEAD_LETTERS = Counter(
    "churnwatch_dead_letters_total",
    "Records written to a dead-letter topic, by reason code",
    ["dlq_topic", "code"],
)
BATCH_SECONDS = Histogram(
    "churnwatch_consumer_batch_seconds",
    "Time from fetching a batch to committing it",
    ["group"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_RECORDS = Histogram(
    "churnwatch_consumer_batch_records",
    "Records per consumed batch",
    ["group"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
HANDLER_FAILURES = Counter(
    "churnwatch_consumer_handler_failures_total",
    "Batches whose handler raised (the batch is retried)",
    ["group"],
)
LAG = Gauge(
    "churnwatch_consumer_lag",
    "Records behind the partition's high watermark after the last commit",
    ["group", "topic", "partition"],
)


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Connection options for any aiokafka client, from the settings (TLS, SASL)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_sasl_mechanism:
        password = settings.kafka_sasl_password
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": password.get_secret_value() if password else None,
        }
    return options


def make_producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """A producer whose acknowledgement means durably written: ``acks=all``, idempotent."""
    options: dict[str, Any] = {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "max_request_size": 2 * 1024 * 1024,
        "request_timeout_ms": 15_000,
    }
    return AIOKafkaProducer(**client_options(settings), **(options | overrides))


class RenewingProducer:
    """A process's long-lived idempotent producer, replaced when the broker refuses its sequence
    numbers.

    aiokafka gives up a batch that waited longer than its request timeout for a partition
    leader (as right after a broker restart) after giving it its sequence number; from then on
    the broker refuses every batch of that producer to that partition
    (``OutOfOrderSequenceNumber``) for as long as the process lives. The first send that fails
    so starts a new producer (a new producer id, sequences from zero), swaps it in and stops the
    old one. Sends meanwhile fail like any Kafka failure and are retried by their callers.
    Offers what the services use of a producer: ``start``, ``stop``, ``send``, ``client``.
    """

    def __init__(
        self, make: Callable[[], AIOKafkaProducer], *, max_backoff_seconds: float = 10.0
    ) -> None:
        self._make = make
        self._started_producer: AIOKafkaProducer | None = None  # made in start (needs a loop)
        self._max_backoff = max_backoff_seconds
        self._renewing: asyncio.Task[None] | None = None
        self.renewals = 0

    @property
    def _producer(self) -> AIOKafkaProducer:
        if self._started_producer is None:
            raise RuntimeError("the producer is not started")
        return self._started_producer

    @_producer.setter
    def _producer(self, producer: AIOKafkaProducer) -> None:
        self._started_producer = producer

    @property
    def client(self) -> Any:
        return self._producer.client

    @property
    def current(self) -> AIOKafkaProducer:
        """The producer in use now (for what ``send`` does not cover: batches, partitions)."""
        return self._producer

    @property
    def renewing(self) -> bool:
        """A replacement is starting: sends fail until it is in."""
        return self._renewing is not None and not self._renewing.done()

    async def start(self) -> None:
        self._producer = self._make()
        await self._producer.start()

    async def start_retrying(self) -> None:
        """Start, with a new producer after each failure, until Kafka answers (for a service
        that comes up without Kafka; cancel the call to give up)."""
        self._producer = await self._started(self._make())

    async def stop(self) -> None:
        if self._renewing is not None and not self._renewing.done():
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing
        if self._started_producer is not None:
            await self._started_producer.stop()

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        producer = self._producer
        future: asyncio.Future[Any] = await producer.send(
            topic,
            value=value,
            key=key,
            partition=partition,
            timestamp_ms=timestamp_ms,
            headers=headers,
        )
        future.add_done_callback(lambda done: self._check(producer, done))
        return future

    def _check(self, producer: AIOKafkaProducer, done: asyncio.Future[Any]) -> None:
        if done.cancelled() or not isinstance(done.exception(), OutOfOrderSequenceNumber):
            return
        self.renew(producer)

    def renew(self, broken: AIOKafkaProducer) -> None:
        """Replace ``broken``, whose sequence numbers the broker refuses (once, however many
        sends saw it fail)."""
        if broken is not self._started_producer or self.renewing:
            return  # already replaced, or being replaced
        log.warning(
            "the broker refuses the producer's sequence numbers (a batch was given up while "
            "Kafka was away); replacing the producer"
        )
        self._renewing = asyncio.get_running_loop().create_task(self._renew(broken))

    async def _renew(self, broken: AIOKafkaProducer) -> None:
        self._producer = await self._started(self._make())
        self.renewals += 1
        log.info("Kafka producer replaced")
        with contextlib.suppress(Exception):
            await broken.stop()

    async def _started(self, producer: AIOKafkaProducer) -> AIOKafkaProducer:
        backoff = Backoff(0.25, self._max_backoff)
        while True:
            try:
                await producer.start()
                return producer
            except asyncio.CancelledError:  # stopping: the new one must not outlive us
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            except (KafkaError, OSError) as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                delay = backoff.next()
                log.warning(
                    "Kafka is not reachable yet; retrying",
                    extra={"error": repr(exc), "retry_in_seconds": delay},
                )
                await asyncio.sleep(delay)
                producer = self._make()


def make_consumer(settings: KafkaSettings, group_id: str, **overrides: Any) -> AIOKafkaConsumer:
    """A group consumer with manual commits, starting at the earliest offset of a new group."""
    options: dict[str, Any] = {
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 3_000,
    }
    return AIOKafkaConsumer(**client_options(settings), **(options | overrides))


async def ensure_topics(
    settings: KafkaSettings, topics: dict[str, TopicSpec], *, replication_factor: int = 1
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=spec.partitions,
                replication_factor=replication_factor,
                topic_configs=_topic_config(spec),
            )
            for name, spec in topics.items()
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process was faster
                await admin.create_topics(missing)
        return [topic.name for topic in missing]
    finally:
        await admin.close()


def _topic_config(spec: TopicSpec) -> dict[str, str]:
    if spec.compacted:
        return {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
    return {"cleanup.policy": "delete", "retention.ms": str(spec.retention_ms)}


# ---------------------------------------------------------------------------------------------
# Dead letters


@dataclass(frozen=True)
class Rejection:
    """Why a record (or an HTTP item) was refused: a machine code and a sentence."""

    code: str
    reason: str


class DeadLetters:
    """Writes refused input to a dead-letter topic, keeping the original bytes as the value.

    The headers say why and where from: ``dlq.code``, ``dlq.reason``, ``dlq.origin``
    (a topic-partition-offset or an HTTP route), ``dlq.failed_at`` and any ``extra`` given.
    Replaying a dead letter means producing its value to the original topic again.
    """

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self.topic = topic

    async def send(
        self,
        raw: bytes,
        rejection: Rejection,
        *,
        origin: str,
        key: bytes | None = None,
        extra: dict[str, str] | None = None,
    ) -> asyncio.Future[Any]:
        """Queue one dead letter; await the returned future for Kafka's acknowledgement."""
        headers = {
            "dlq.code": rejection.code,
            "dlq.reason": rejection.reason[:1000],
            "dlq.origin": origin,
            "dlq.failed_at": datetime.now(UTC).isoformat(),
            **(extra or {}),
        }
        DEAD_LETTERS.labels(self.topic, rejection.code).inc()
        future: asyncio.Future[Any] = await self._producer.send(
            self.topic,
            value=raw,
            key=key,
            headers=[(name, value.encode()) for name, value in headers.items()],
        )
        return future


# ---------------------------------------------------------------------------------------------
# The consumer loop


@dataclass(slots=True)
class Record(Generic[T]):
    """A decoded record with where it came from (treat it as read-only). Slots, not frozen:
    one is built per consumed record, and a frozen dataclass's constructor costs five times
    as much."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: T
    raw: bytes
    timestamp_ms: int


Decoder = Callable[[str, bytes | None], T]
"""Turns a topic's raw value into a message; raises (any exception) when it cannot."""

Handler = Callable[[Sequence[Record[T]]], Awaitable[Sequence[tuple[Record[T], Rejection]]]]
"""Makes a batch's effects durable; returns the records it refuses, with why."""

Unprocessable = Callable[[BaseException], bool]
"""Tells a handler failure that no retry can cure (the records' data, not a dependency)."""


def never(_: BaseException) -> bool:
    return False


class DecodeFailure(Exception):
    """Raised by a decoder to dead-letter a record with a specific code."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.rejection = Rejection(code, reason)


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A null value on a compacted topic: the record with the message's key is deleted."""

    kind: str  # "account" or "person": which compacted topic


V = TypeVar("V")


def topic_decoder(
    by_topic: Mapping[str, Callable[[bytes], V]],
    *,
    default: Callable[[bytes], V],
    compacted: Mapping[str, str],
    on_undecodable: Callable[[], None] = lambda: None,
) -> Callable[[str, bytes | None], V | Tombstone]:
    """A consumer's decoder: each record by its topic (``default`` for the others); a null on
    a ``compacted`` topic is its :class:`Tombstone`; anything undecodable raises
    :class:`DecodeFailure` ``undecodable`` (→ dead letter)."""

    def decode(topic: str, raw: bytes | None) -> V | Tombstone:
        try:
            if raw is None and topic in compacted:
                return Tombstone(compacted[topic])
            return by_topic.get(topic, default)(raw or b"")
        except (msgspec.DecodeError, ValueError) as exc:
            on_undecodable()
            raise DecodeFailure("undecodable", f"{type(exc).__name__}: {exc}") from None

    return decode


GC_YOUNG_THRESHOLD = 50_000
"""Allocations between two collections of the youngest generation while a loop runs (the
interpreter's default is 700)."""


def batch_friendly_gc() -> None:
    """Let a batch's temporaries die young: raise the youngest generation's threshold to
    :data:`GC_YOUNG_THRESHOLD` (never lower it).

    A batch of thousands of records allocates tens of thousands of objects that live until the
    batch ends and are then freed by reference counting (no cycles). With the default
    threshold (700) the collector runs dozens of times per batch, promotes the whole working
    set to the older generations, and the growing old generation triggers full collections of
    the process's heap: in the scoring drain, 15 full collections took 2.6 s of a 6.9 s
    process (80,000 events). With this threshold the same drain spent 0.4 s collecting.
    Cyclic garbage is still collected, every 50,000 allocations instead of every 700.
    """
    young, older, oldest = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), older, oldest)


class ConsumerLoop(Generic[T]):
    """Fetch → decode → handle → dead-letter refusals → commit, one batch at a time.

    Running a loop sets the process's collector to :func:`batch_friendly_gc`.
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        *,
        group: str,
        topics: Sequence[str],
        decode: Decoder[T],
        handle: Handler[T],
        dead_letters: DeadLetters,
        max_records: int = 1000,
        fetch_timeout_ms: int = 500,
        retry_backoff_max_seconds: float = 30.0,
        unprocessable: Unprocessable = never,
    ) -> None:
        self._consumer = consumer
        self._group = group
        self._topics = list(topics)
        self._decode = decode
        self._handle = handle
        self._dead_letters = dead_letters
        self._max_records = max_records
        self._fetch_timeout_ms = fetch_timeout_ms
        self._retry_backoff_max = retry_backoff_max_seconds
        self._unprocessable = unprocessable
        self._stopping = asyncio.Event()
        self._processing = asyncio.Lock()
        self._waiting: dict[TopicPartition, int] = {}  # records behind, per partition
        self.batches_committed = 0
        self.healthy = True  # False while the handler keeps failing (readiness reads it)

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand, commit it and return."""
        self._stopping.set()

    @property
    def waiting_records(self) -> int:
        """Records still waiting behind the last batch: each partition's high watermark minus
        the offset the loop has reached there, summed over the partitions it holds (a backlog
        whose records are new, as in a burst, shows here and not in their timestamps)."""
        return sum(self._waiting.values())

    async def run(self) -> None:
        batch_friendly_gc()
        self._consumer.subscribe(
            self._topics, listener=_FinishBatchOnRevoke(self._processing, self._waiting)
        )
        while not self._stopping.is_set():
            batches = await self._consumer.getmany(
                timeout_ms=self._fetch_timeout_ms, max_records=self._max_records
            )
            if not batches:
                continue
            async with self._processing:
                await self._process(batches)

    async def _process(self, batches: dict[TopicPartition, list[Any]]) -> None:
        started = time.perf_counter()
        decoded: list[Record[T]] = []
        dead: list[asyncio.Future[Any]] = []
        for tp, messages in batches.items():
            for message in messages:
                try:
                    value = self._decode(tp.topic, message.value)
                except Exception as exc:
                    rejection = (
                        exc.rejection
                        if isinstance(exc, DecodeFailure)
                        else Rejection("undecodable", f"{type(exc).__name__}: {exc}")
                    )
                    dead.append(
                        await self._dead_letter(
                            tp, message.offset, message.key, message.value, rejection
                        )
                    )
                    CONSUMED.labels(self._group, tp.topic, "dead_lettered").inc()
                    continue
                decoded.append(
                    Record(
                        tp.topic,
                        tp.partition,
                        message.offset,
                        message.key,
                        value,
                        message.value or b"",
                        message.timestamp,
                    )
                )

        refused = await self._handle_until_done(decoded) if decoded else []
        if self._stopping.is_set() and not self.healthy:
            return  # stopped while the dependency was down: nothing was done, nothing committed
        for record, rejection in refused:
            dead.append(
                await self._dead_letter(
                    TopicPartition(record.topic, record.partition),
                    record.offset,
                    record.key,
                    record.raw,
                    rejection,
                )
            )
        if dead:
            await asyncio.gather(*dead)
        # Counted per topic, not per record: a label lookup per record costs more than the
        # decoding of a small message.
        handled = collections.Counter(record.topic for record in decoded)
        for record, _ in refused:
            handled[record.topic] -= 1
            CONSUMED.labels(self._group, record.topic, "dead_lettered").inc()
        for topic, count in handled.items():
            if count:
                CONSUMED.labels(self._group, topic, "handled").inc(count)

        offsets = {tp: messages[-1].offset + 1 for tp, messages in batches.items()}
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError:
            # The group rebalanced away from us; the new owner re-reads from the last commit
            # and the handler's idempotency makes that harmless.
            log.warning("commit failed after a rebalance", extra={"group": self._group})
        else:
            self.batches_committed += 1
        BATCH_SECONDS.labels(self._group).observe(time.perf_counter() - started)
        BATCH_RECORDS.labels(self._group).observe(sum(len(m) for m in batches.values()))
        for tp, next_offset in offsets.items():
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                self._waiting[tp] = max(0, highwater - next_offset)
                LAG.labels(self._group, tp.topic, str(tp.partition)).set(self._waiting[tp])

    async def _handle_until_done(
        self, records: list[Record[T]]
    ) -> Sequence[tuple[Record[T], Rejection]]:
        backoff = Backoff(0.2, self._retry_backoff_max, jitter=True)
        while True:
            try:
                refused = await self._handle(records)
            except Exception as exc:
                if self._unprocessable(exc):
                    return await self._isolate(records, exc)
                self.healthy = False
                HANDLER_FAILURES.labels(self._group).inc()
                delay = backoff.next()
                log.exception(
                    "batch handler failed; retrying the batch",
                    extra={
                        "group": self._group,
                        "records": len(records),
                        "retry_in_seconds": round(delay, 2),
                    },
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                if self._stopping.is_set():
                    return []
                continue
            self.healthy = True
            return refused

    async def _isolate(
        self, records: list[Record[T]], exc: Exception
    ) -> Sequence[tuple[Record[T], Rejection]]:
        """A batch failed on its data: handle it in halves until the records that fail alone
        are found, and refuse those — a bad record never stops a partition. The handler's
        effects are idempotent, so handling a record again in a smaller batch is harmless."""
        if len(records) == 1:
            reason = f"{type(exc).__name__}: {exc}"
            return [(records[0], Rejection("unprocessable", reason[:1000]))]
        log.warning(
            "a batch failed on its data; isolating the record",
            extra={"group": self._group, "records": len(records), "error": str(exc)[:300]},
        )
        middle = len(records) // 2
        first = await self._handle_until_done(records[:middle])
        return [*first, *await self._handle_until_done(records[middle:])]

    async def _dead_letter(
        self,
        tp: TopicPartition,
        offset: int,
        key: bytes | None,
        raw: bytes | None,
        rejection: Rejection,
    ) -> asyncio.Future[Any]:
        log.warning(
            "dead-lettering a record",
            extra={
                "group": self._group,
                "topic": tp.topic,
                "partition": tp.partition,
                "offset": offset,
                "code": rejection.code,
                "reason": rejection.reason[:300],
            },
        )
        return await self._dead_letters.send(
            raw or b"",
            rejection,
            origin=f"{tp.topic}/{tp.partition}/{offset}",
            key=key,
            extra={"dlq.consumer_group": self._group},
        )


class _FinishBatchOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before partitions move to another member, wait for the batch in hand to be committed
    (and forget what was waiting on them)."""

    def __init__(self, processing: asyncio.Lock, waiting: dict[TopicPartition, int]) -> None:
        self._processing = processing
        self._waiting = waiting

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self._processing:
            for tp in revoked:
                self._waiting.pop(tp, None)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        pass


async def producer_ready(producer: AIOKafkaProducer) -> bool:
    """A readiness check: the producer can fetch cluster metadata now."""
    try:
        await producer.client.fetch_all_metadata()
    except KafkaError:
        return False
    return True
