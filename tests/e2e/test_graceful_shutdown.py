"""SIGTERM during load, for each service run for real (``python -m services.<name>``) against the
session's Kafka broker and PostgreSQL — what a rolling update or a node drain does to a pod:

- ingest answers the requests in flight (2xx), answers new ones ``503 shutting_down`` while it
  drains, and every event it acknowledged is on the topic;
- scoring finishes and commits the batch in hand: the offsets it committed are exactly the events
  it counted, and a restarted instance counts the rest, each event once;
- alerts finishes its batch and the delivery in flight: no notification is lost or sent twice
  across the restart.

Each shutdown must be clean: exit status 0. Every wait is on a condition with a deadline, every
load loop is bounded by count and by time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devstack.sinks import Reply, SlackSink
from services.alerts.settings import AlertsSettings
from services.scoring.settings import ScoringSettings
from shared import events, migrations
from shared.auth import digest
from shared.events import Topics, UsageEvent
from shared.kafka import client_options, make_producer
from shared.settings import KafkaSettings
from tests.integration.alerts.support import account, change, person
from tests.support import ServiceProcess, eventually

EVENTS_KEY = "cw_e2e_events_key"


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    producer = make_producer(kafka_settings)
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
async def migrated(database_url: str) -> str:
    await asyncio.to_thread(migrations.upgrade_all, database_url)
    return database_url


async def publish(
    producer: AIOKafkaProducer, topic: str, messages: Iterable[tuple[str, msgspec.Struct]]
) -> int:
    """Send every (key, message), then wait for every acknowledgement."""
    futures = [
        await producer.send(topic, events.encode(message), key=key.encode())
        for key, message in messages
    ]
    await asyncio.gather(*futures)
    return len(futures)


async def topic_records(settings: KafkaSettings, topic: str) -> list[Any]:
    """Every record on ``topic`` from its start up to its end as of now."""
    consumer = AIOKafkaConsumer(
        **client_options(settings), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in await _partitions(consumer, topic)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []

        async def read_to_the_end() -> bool:
            for batch in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                records.extend(batch)
            return all([await consumer.position(tp) >= end for tp, end in ends.items()])

        await eventually(read_to_the_end, timeout_s=60, what=f"{topic} read to its end")
        return records
    finally:
        await consumer.stop()


async def committed_offsets(settings: KafkaSettings, group: str, topics: Sequence[str]) -> int:
    """The sum, over every partition of ``topics``, of the offset ``group`` committed."""
    consumer = AIOKafkaConsumer(
        **client_options(settings), group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        total = 0
        for topic in topics:
            for partition in await _partitions(consumer, topic):
                total += await consumer.committed(TopicPartition(topic, partition)) or 0
        return total
    finally:
        await consumer.stop()


async def end_offsets(settings: KafkaSettings, topics: Sequence[str]) -> int:
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in await _partitions(consumer, t)]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    async def known() -> set[int]:
        found = consumer.partitions_for_topic(topic)
        if not found:
            await consumer._client.force_metadata_update()
        return set(found or ())

    return await eventually(known, timeout_s=30, what=f"the partitions of {topic}")


async def fetch(database_url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def count(database_url: str, sql: str) -> int:
    [row] = await fetch(database_url, sql)
    return int(row[0] or 0)


def log_lines(service: ServiceProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in service.logs().splitlines() if line.startswith("{")]


def launch(
    name: str, env: dict[str, str], log_dir: Path, made: list[ServiceProcess]
) -> ServiceProcess:
    service = ServiceProcess(name, env, log_dir)
    made.append(service)
    return service


@pytest.fixture
def processes() -> Iterable[list[ServiceProcess]]:
    """Services started by a test; any still running at its end is killed."""
    made: list[ServiceProcess] = []
    yield made
    for service in made:
        service.kill()


def base_env(settings: KafkaSettings, **extra: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "TOPIC_PREFIX": settings.topic_prefix,
        "LOG_LEVEL": "INFO",
        **extra,
    }


# -- ingest ----------------------------------------------------------------------------------------

EVENTS_PER_REQUEST = 20
CLIENTS = 6
MAX_REQUESTS_PER_CLIENT = 400
SHUTTING_DOWN_ANSWERS_PER_CLIENT = 3
LOAD_SECONDS = 60.0


def usage_items(prefix: str, n: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "event_type": "usage",
            "event_id": f"{prefix}-{i}",
            "account_id": f"acct-{i % 7}",
            "occurred_at": now,
            "user_id": f"u-{i % 5}",
            "type": "login",
        }
        for i in range(n)
    ]


@dataclass
class Answers:
    """What the load generator's requests were answered."""

    acknowledged: set[str] = field(default_factory=set)  # event ids of 202s
    refused: set[str] = field(default_factory=set)  # event ids of 503 shutting_down
    statuses: list[int] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    transport_errors: int = 0


async def load(http: httpx.AsyncClient, client: int, answers: Answers) -> None:
    """Post batches until the port closes, after a few ``shutting_down``, or at the bounds."""
    deadline = time.monotonic() + LOAD_SECONDS
    shutting_down = 0
    for n in range(MAX_REQUESTS_PER_CLIENT):
        if time.monotonic() > deadline or shutting_down >= SHUTTING_DOWN_ANSWERS_PER_CLIENT:
            return
        items = usage_items(f"c{client}-r{n}", EVENTS_PER_REQUEST)
        ids = {item["event_id"] for item in items}
        try:
            answer = await http.post("/v1/events", json=items)
        except httpx.TransportError:
            answers.transport_errors += 1  # the port closed: the request never reached ingest
            return
        answers.statuses.append(answer.status_code)
        if answer.status_code == 202 and answer.json() == {
            "accepted": EVENTS_PER_REQUEST,
            "rejected": [],
        }:
            answers.acknowledged |= ids
        elif answer.status_code == 503 and answer.json().get("code") == "shutting_down":
            assert answer.headers["retry-after"].isdigit()
            answers.refused |= ids
            shutting_down += 1
        else:
            answers.unexpected.append(f"{answer.status_code} {answer.text[:200]}")


async def test_ingest_answers_in_flight_requests_refuses_new_ones_and_keeps_what_it_acknowledged(
    kafka_settings: KafkaSettings,
    topics: Topics,
    tmp_path: Path,
    processes: list[ServiceProcess],
) -> None:
    env = base_env(
        kafka_settings,
        API_KEYS=json.dumps([{"name": "e2e", "sha256": digest(EVENTS_KEY), "scopes": ["events"]}]),
        INGEST_RATE_LIMIT_PER_SECOND="0",
        INGEST_SHUTDOWN_DRAIN_SECONDS="1.5",
    )
    ingest = await launch("ingest", env, tmp_path, processes).start()
    answers = Answers()
    headers = {"Authorization": f"Bearer {EVENTS_KEY}"}

    # One request whose body is still arriving when SIGTERM lands: in flight for sure.
    in_flight = usage_items("in-flight", 50)
    body = json.dumps(in_flight).encode()
    first_part_sent = asyncio.Event()
    rest_may_go = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield body[:64]
        first_part_sent.set()
        await rest_may_go.wait()
        yield body[64:]

    async with (
        httpx.AsyncClient(base_url=ingest.url, headers=headers, timeout=30) as http,
        httpx.AsyncClient(base_url=ingest.url, timeout=5) as probe,
    ):
        slow = asyncio.create_task(
            http.post(
                "/v1/events", content=slow_body(), headers={"Content-Type": "application/json"}
            )
        )
        clients = [asyncio.create_task(load(http, i, answers)) for i in range(CLIENTS)]

        async def loaded() -> bool:
            return first_part_sent.is_set() and len(answers.acknowledged) >= 20 * EVENTS_PER_REQUEST

        await eventually(loaded, timeout_s=30, what="ingest under load")
        # The slow request's headers were sent before these round trips on other connections:
        # by their answers, ingest has started handling it.
        for _ in range(3):
            assert (await probe.get("/healthz")).status_code == 200

        stopping = asyncio.create_task(ingest.stop(timeout_s=60))

        async def draining() -> bool:
            return bool(answers.refused)

        await eventually(draining, timeout_s=15, what="new requests answered 503 shutting_down")
        rest_may_go.set()
        slow_answer = await asyncio.wait_for(slow, 30)
        await asyncio.wait_for(asyncio.gather(*clients), LOAD_SECONDS + 30)
        exit_status = await stopping

    assert exit_status == 0, ingest.logs()[-3000:]
    assert slow_answer.status_code == 202, slow_answer.text
    assert slow_answer.json() == {"accepted": 50, "rejected": []}
    assert answers.unexpected == []
    assert set(answers.statuses) == {202, 503}
    acknowledged = answers.acknowledged | {item["event_id"] for item in in_flight}

    on_topic = [
        events.decode_event(r.value).event_id
        for r in await topic_records(kafka_settings, topics.usage)
    ]
    assert acknowledged <= set(on_topic), f"lost: {len(acknowledged - set(on_topic))} events"
    assert not answers.refused & set(on_topic)  # a request refused while draining wrote nothing
    assert len(on_topic) == len(set(on_topic))  # and nothing was written twice

    messages = [line["msg"] for line in log_lines(ingest)]
    assert "Kafka producer flushed and stopped" in messages


# -- scoring ---------------------------------------------------------------------------------------

SCORING_EVENTS = 30_000


def usage_backlog(n: int) -> list[tuple[str, UsageEvent]]:
    now = datetime.now(UTC)
    return [
        (
            f"acct-{i % 300:03d}",
            UsageEvent(
                event_id=f"e-{i}",
                account_id=f"acct-{i % 300:03d}",
                occurred_at=now - timedelta(minutes=i % 2880),
                received_at=now,
                source="e2e",
                user_id=f"u-{i % 11}",
                type="login",
            ),
        )
        for i in range(n)
    ]


async def test_scoring_commits_exactly_what_it_counted_and_a_restart_counts_the_rest_once(
    kafka_settings: KafkaSettings,
    topics: Topics,
    migrated: str,
    producer: AIOKafkaProducer,
    tmp_path: Path,
    processes: list[ServiceProcess],
) -> None:
    backlog = usage_backlog(SCORING_EVENTS)
    await publish(producer, topics.usage, backlog)
    env = base_env(
        kafka_settings,
        DATABASE_URL=migrated,
        SCORING_MAX_BATCH_RECORDS="250",
        SCORING_SHUTDOWN_DRAIN_SECONDS="0",
        SCORING_SWEEP_INTERVAL_SECONDS="3600",
    )
    group = ScoringSettings(TOPIC_PREFIX=kafka_settings.topic_prefix).group
    counted = "SELECT count(*) FROM scoring.processed_events"

    first = await launch("scoring", env, tmp_path, processes).start()

    async def consuming() -> bool:
        return await count(migrated, counted) >= 1000

    await eventually(consuming, timeout_s=60, what="scoring consuming the backlog")
    assert await first.stop(timeout_s=60) == 0, first.logs()[-3000:]

    counted_at_exit = await count(migrated, counted)
    committed_at_exit = await committed_offsets(kafka_settings, group, [topics.usage])
    assert counted_at_exit < SCORING_EVENTS, "SIGTERM landed after the load: make it larger"
    assert committed_at_exit == counted_at_exit  # the batch in hand was finished and committed
    assert "scoring stopped" in [line["msg"] for line in log_lines(first)]

    second = await launch("scoring", env, tmp_path, processes).start()

    async def all_counted() -> bool:
        return await count(migrated, counted) == SCORING_EVENTS and (
            await committed_offsets(kafka_settings, group, [topics.usage]) == SCORING_EVENTS
        )

    await eventually(all_counted, timeout_s=120, interval_s=0.5, what="the rest counted")
    assert await second.stop(timeout_s=60) == 0, second.logs()[-3000:]

    per_account = {
        row["account_id"]: int(row["n"])
        for row in await fetch(
            migrated,
            "SELECT account_id, sum(usage_events) AS n FROM scoring.account_days GROUP BY 1",
        )
    }
    expected: dict[str, int] = {}
    for key, _ in backlog:
        expected[key] = expected.get(key, 0) + 1
    assert per_account == expected  # every event counted exactly once across the restart


# -- alerts ----------------------------------------------------------------------------------------

ALERT_ACCOUNTS = 600
SENT_BEFORE_THE_SLOW_ONE = 10
SLOW_SEND_SECONDS = 5.0


async def test_alerts_finishes_its_batch_and_its_delivery_in_flight_and_loses_or_doubles_nothing(
    kafka_settings: KafkaSettings,
    topics: Topics,
    migrated: str,
    producer: AIOKafkaProducer,
    tmp_path: Path,
    processes: list[ServiceProcess],
) -> None:
    async with SlackSink(token="xoxb-e2e") as slack:
        env = base_env(
            kafka_settings,
            DATABASE_URL=migrated,
            ALERTS_GROUP_WAIT_SECONDS="0",
            ALERTS_CONSUMER_MAX_RECORDS="20",
            ALERTS_SLACK_BOT_TOKEN="xoxb-e2e",
            ALERTS_SLACK_API_URL=slack.api_url,
            ALERTS_SLACK_CHANNEL_INTERVAL_SECONDS="0",
            ALERTS_SLACK_TIMEOUT_SECONDS="15",
            ALERTS_DELIVERY_LEASE_SECONDS="30",
            ALERTS_LINK_SIGNING_SECRET="e2e-signing-secret-0123456789",
            ALERTS_TEAM_SLACK_CHANNEL="C_TEAM",
            ALERTS_SHUTDOWN_DRAIN_SECONDS="0.2",
            # No daily digest during the test: its slot is hours away (and was too long ago to
            # be caught up).
            ALERTS_DIGEST_HOUR=str((datetime.now(UTC).hour + 6) % 24),
        )
        group = AlertsSettings(TOPIC_PREFIX=kafka_settings.topic_prefix).group
        consumed = [topics.health, topics.accounts, topics.people]
        names = [f"acct-{i:04d}" for i in range(ALERT_ACCOUNTS)]
        await publish(producer, topics.people, [("p_maria", person("p_maria", slack="U_MARIA"))])
        await publish(producer, topics.accounts, [(name, account(name)) for name in names])

        first = await launch("alerts", env, tmp_path, processes).start()

        # Ownership first, so each account's alert goes to its owner once (no re-routing).
        async def owners_known() -> bool:
            known = await committed_offsets(kafka_settings, group, consumed[1:])
            return known == ALERT_ACCOUNTS + 1

        await eventually(owners_known, timeout_s=60, what="accounts and people consumed")

        earlier = len(slack.requests)
        slack.program(*["ok"] * SENT_BEFORE_THE_SLOW_ONE, Reply.slow(SLOW_SEND_SECONDS))
        now = datetime.now(UTC)
        await publish(
            producer,
            topics.health,
            [(name, change(name, now, (80, "green"), (30, "red"))) for name in names],
        )

        async def slow_send_in_flight() -> SlackRequestView | None:
            requests = list(slack.requests)[earlier:]
            if len(requests) > SENT_BEFORE_THE_SLOW_ONE:
                held = requests[SENT_BEFORE_THE_SLOW_ONE]
                return SlackRequestView(held.key, held.answered)
            return None

        held = await eventually(slow_send_in_flight, timeout_s=60, what="a send in flight")
        assert held is not None
        assert held.key is not None
        assert not held.answered
        assert await first.stop(timeout_s=60) == 0, first.logs()[-3000:]

        processed = "SELECT count(*) FROM alerts.processed_changes"
        processed_at_exit = await count(migrated, processed)
        committed_at_exit = await committed_offsets(kafka_settings, group, [topics.health])
        assert processed_at_exit < ALERT_ACCOUNTS, "SIGTERM landed after the load: make it larger"
        assert committed_at_exit == processed_at_exit  # its batch finished and committed
        [state] = await fetch(
            migrated,
            f"SELECT state FROM alerts.outbox WHERE key = '{held.key}'",  # noqa: S608
        )
        assert state["state"] == "sent"  # the send in flight finished and was recorded
        assert "alerts service stopped: consumer committed, workers finished" in [
            line["msg"] for line in log_lines(first)
        ]

        second = await launch("alerts", env, tmp_path, processes).start()

        async def everything_delivered() -> bool:
            done = await committed_offsets(kafka_settings, group, [topics.health])
            undelivered = await count(
                migrated, "SELECT count(*) FROM alerts.outbox WHERE state <> 'sent'"
            )
            return done == ALERT_ACCOUNTS and undelivered == 0 and bool(slack.requests)

        await eventually(everything_delivered, timeout_s=120, interval_s=0.5, what="all sent")
        assert await second.stop(timeout_s=60) == 0, second.logs()[-3000:]

        outbox = {row["key"] for row in await fetch(migrated, "SELECT key FROM alerts.outbox")}
        keys = [request.key for request in slack.requests]
        assert len(keys) == len(set(keys)), "a notification was sent twice"
        assert set(keys) == outbox  # none lost
        assert len(outbox) >= ALERT_ACCOUNTS  # one message per account's owner at least
        assert all(request.delivered for request in slack.requests)
        assert await count(migrated, processed) == ALERT_ACCOUNTS


@dataclass(frozen=True)
class SlackRequestView:
    key: str | None
    answered: bool
