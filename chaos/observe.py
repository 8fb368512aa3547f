"""Looking at the running system from outside: readiness over time, consumer groups, topics,
the services' databases and the sinks' recordings. Nothing here changes anything."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from chaos.ledger import Counts
from chaos.stack import Deployment, Service
from shared.kafka import client_options
from shared.settings import KafkaSettings

# ---------------------------------------------------------------------------------------------
# Readiness over time


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic
    service: str
    status: int | None  # None: no answer (process down or port closed)
    failing: tuple[str, ...] = ()


@dataclass
class ReadinessSampler:
    """Polls every service's ``/readyz`` every ``interval_s`` and keeps each answer."""

    deployment: Deployment
    interval_s: float = 0.25
    samples: list[Sample] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="readiness-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=1.5) as client:
            while True:
                services = list(self.deployment.all_services())
                await asyncio.gather(*(self._sample(client, s) for s in services))
                await asyncio.sleep(self.interval_s)

    async def _sample(self, client: httpx.AsyncClient, service: Service) -> None:
        at = time.monotonic()
        try:
            response = await client.get(f"{service.url}/readyz")
        except httpx.HTTPError:
            self.samples.append(Sample(at, service.label, None))
            return
        failing: tuple[str, ...] = ()
        with contextlib.suppress(ValueError, AttributeError):
            checks = response.json().get("checks", {})
            failing = tuple(sorted(name for name, ok in checks.items() if not ok))
        self.samples.append(Sample(at, service.label, response.status_code, failing))

    async def wait_for(self, service: str, status: int, since: float, timeout_s: float) -> bool:
        """Until a sample of ``service`` taken after ``since`` has ``status``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(s.status == status for s in self.window(service, since, time.monotonic())):
                return True
            await asyncio.sleep(self.interval_s)
        return False

    def window(self, service: str, since: float, until: float) -> list[Sample]:
        return [s for s in self.samples if s.service == service and since <= s.at <= until]


# ---------------------------------------------------------------------------------------------
# Kafka


async def _partitions(consumer: AIOKafkaConsumer, topics: Sequence[str]) -> list[TopicPartition]:
    found: list[TopicPartition] = []
    for topic in topics:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        found += [TopicPartition(topic, p) for p in sorted(partitions)]
    return found


async def lag(settings: KafkaSettings, group: str, topics: Sequence[str]) -> int:
    """Records ``group`` has not committed yet, over every partition of ``topics``."""
    consumer = AIOKafkaConsumer(
        **client_options(settings), group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topics)
        ends = await consumer.end_offsets(partitions)
        behind = 0
        for tp in partitions:
            behind += max(0, ends[tp] - (await consumer.committed(tp) or 0))
        return behind
    finally:
        await consumer.stop()


class GroupOffsets:
    """A consumer kept open (``async with``) to read, quickly, the end offsets of a group's
    topics and the group's committed offsets. It only reads offsets: it never joins the group."""

    def __init__(self, settings: KafkaSettings, group: str, topics: Sequence[str]) -> None:
        self._consumer = AIOKafkaConsumer(
            **client_options(settings), group_id=group, enable_auto_commit=False
        )
        self._topics = list(topics)
        self._partitions: list[TopicPartition] = []

    async def __aenter__(self) -> GroupOffsets:
        await self._consumer.start()
        self._partitions = await _partitions(self._consumer, self._topics)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def ends(self) -> dict[TopicPartition, int]:
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(self._partitions)
        return ends

    async def uncommitted(self, ends: dict[TopicPartition, int]) -> int:
        """Records below ``ends`` the group has not committed."""
        total = 0
        for tp in self._partitions:
            total += max(0, ends[tp] - (await self._consumer.committed(tp) or 0))
        return total


async def group_members(settings: KafkaSettings, group: str) -> int:
    """How many members the consumer group has right now."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        [described] = await admin.describe_consumer_groups([group])
        groups = getattr(described, "groups", None)
        if groups is None:  # older aiokafka answers a response object with .groups as tuples
            return 0
        for entry in groups:
            members = entry[5] if isinstance(entry, tuple) else entry.members
            return len(members)
        return 0
    finally:
        await admin.close()


@dataclass(frozen=True)
class TopicRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]


async def read_topic(
    settings: KafkaSettings, topic: str, timeout_s: float = 60
) -> list[TopicRecord]:
    """Every record of ``topic`` from its start to its end as of now."""
    consumer = AIOKafkaConsumer(
        **client_options(settings), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = await _partitions(consumer, [topic])
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[TopicRecord] = []
        deadline = time.monotonic() + timeout_s
        while True:
            positions = {tp: await consumer.position(tp) for tp in partitions}
            if all(positions[tp] >= ends[tp] for tp in partitions):
                return records
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} not read to its end in {timeout_s}s")
            for batch in (await consumer.getmany(timeout_ms=300, max_records=5000)).values():
                records += [
                    TopicRecord(
                        r.topic,
                        r.partition,
                        r.offset,
                        r.key,
                        r.value,
                        {k: v.decode(errors="replace") for k, v in r.headers},
                    )
                    for r in batch
                    if r.offset < ends[TopicPartition(r.topic, r.partition)]
                ]
    finally:
        await consumer.stop()


# ---------------------------------------------------------------------------------------------
# The databases


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def scalar(dsn: str, sql: str, *args: Any) -> int:
    [row] = await fetch(dsn, sql, *args)
    return int(row[0] or 0)


async def scoring_counts(dsn: str) -> dict[str, Counts]:
    """Per account, the columns of scoring's aggregates the ledger predicts."""
    counts: dict[str, Counts] = {}
    for row in await fetch(
        dsn,
        """
        SELECT account_id, sum(usage_events) AS usage_events,
               sum(usage_quantity) AS usage_quantity, sum(tickets_opened) AS tickets_opened,
               sum(high_urgent_opened) AS high_urgent_opened, sum(escalations) AS escalations,
               sum(reopens) AS reopens
        FROM scoring.account_days GROUP BY account_id
        """,
    ):
        counts[row["account_id"]] = Counts(
            usage_events=int(row["usage_events"]),
            usage_quantity=float(row["usage_quantity"]),
            tickets_opened=int(row["tickets_opened"]),
            high_urgent_opened=int(row["high_urgent_opened"]),
            escalations=int(row["escalations"]),
            reopens=int(row["reopens"]),
        )
    for row in await fetch(
        dsn,
        "SELECT account_id, sum(nps_answers) AS n, sum(nps_sum) AS s "
        "FROM scoring.survey_days GROUP BY account_id",
    ):
        found = counts.setdefault(row["account_id"], Counts())
        found.nps_answers = int(row["n"])
        found.nps_sum = int(row["s"])
    return counts


@dataclass(frozen=True)
class OutboxRow:
    key: str
    kind: str
    channel: str
    address: str
    state: str
    message_id: str
    attempts: int


async def alerts_outbox(dsn: str) -> list[OutboxRow]:
    return [
        OutboxRow(
            r["key"],
            r["kind"],
            r["channel"],
            r["address"],
            r["state"],
            r["message_id"],
            r["attempts"],
        )
        for r in await fetch(
            dsn,
            "SELECT key, kind, channel, address, state, message_id, attempts FROM alerts.outbox",
        )
    ]
