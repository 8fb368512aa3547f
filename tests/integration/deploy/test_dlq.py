"""The dead-letter tool of the runbook (``python -m deploy.dlq``), run as an operator runs it —
a process configured by ``KAFKA_*`` / ``TOPIC_PREFIX`` — against the real broker."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from shared.events import Topics
from shared.kafka import DeadLetters, Rejection, make_producer
from shared.settings import KafkaSettings
from tests.integration.ingest.support import headers, read_topic
from tests.support import ROOT


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    producer = make_producer(kafka_settings)
    await producer.start()
    yield producer
    await producer.stop()


async def dlq(settings: KafkaSettings, *args: str) -> tuple[int, str, str]:
    """Run the tool; its exit status, stdout and stderr."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "TOPIC_PREFIX": settings.topic_prefix,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deploy.dlq",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


async def dead_letter(
    producer: AIOKafkaProducer, topic: str, value: bytes, code: str, origin: str, key: str
) -> None:
    letters = DeadLetters(producer, topic)
    future = await letters.send(
        value, Rejection(code, f"{code}: test"), origin=origin, key=key.encode()
    )
    await future


async def test_show_prints_every_dead_letter_with_its_headers_and_filters_by_code(
    kafka_settings: KafkaSettings, topics: Topics, producer: AIOKafkaProducer
) -> None:
    await dead_letter(
        producer, topics.scoring_dlq, b'{"bad": 1}', "undecodable", f"{topics.usage}/2/7", "acme"
    )
    await dead_letter(
        producer, topics.scoring_dlq, b'{"old": 1}', "too_old", f"{topics.usage}/0/9", "globex"
    )

    status, out, err = await dlq(kafka_settings, "show", "scoring")
    assert status == 0, err
    shown = lines(out)
    assert [(d["offset"], d["key"], d["value"]) for d in shown] == [
        (0, "acme", '{"bad": 1}'),
        (1, "globex", '{"old": 1}'),
    ]
    assert shown[0]["headers"]["dlq.code"] == "undecodable"
    assert shown[0]["headers"]["dlq.origin"] == f"{topics.usage}/2/7"

    status, out, _ = await dlq(kafka_settings, "show", "scoring", "--code", "too_old")
    assert [d["offset"] for d in lines(out)] == [1]
    status, out, _ = await dlq(kafka_settings, "show", "scoring", "--from", "1", "--limit", "5")
    assert [d["offset"] for d in lines(out)] == [1]
    status, out, _ = await dlq(kafka_settings, "show", "alerts")
    assert (status, lines(out)) == (0, [])  # an empty dead-letter topic


async def test_replay_sends_the_original_bytes_and_key_back_to_the_topic_of_origin(
    kafka_settings: KafkaSettings, topics: Topics, producer: AIOKafkaProducer
) -> None:
    await dead_letter(
        producer, topics.scoring_dlq, b'{"u": 1}', "undecodable", f"{topics.usage}/1/3", "acme"
    )
    await dead_letter(
        producer, topics.scoring_dlq, b'{"t": 1}', "too_old", f"{topics.tickets}/4/8", "globex"
    )
    await dead_letter(
        producer, topics.scoring_dlq, b'{"x": 1}', "undecodable", "elsewhere.v1/0/1", "initech"
    )

    status, out, err = await dlq(kafka_settings, "replay", "scoring", "--dry-run")
    assert status == 0, err
    [summary] = lines(out)
    assert summary["replayed"] == {topics.usage: 1, topics.tickets: 1}
    assert summary["offsets"] == [0, 1]
    assert sum(summary["skipped"].values()) == 1  # never to a topic that is not churnwatch's
    assert await read_topic(kafka_settings, topics.usage) == []  # a dry run sends nothing

    status, out, err = await dlq(kafka_settings, "replay", "scoring", "--code", "undecodable")
    assert status == 0, err
    assert lines(out)[0]["replayed"] == {topics.usage: 1}
    [replayed] = await read_topic(kafka_settings, topics.usage, at_least=1)
    assert (replayed.key, replayed.value) == (b"acme", b'{"u": 1}')
    assert headers(replayed)["dlq.replayed_from"] == f"{topics.scoring_dlq}/0/0"

    status, out, err = await dlq(kafka_settings, "replay", "scoring", "--from", "1", "--to", "2")
    assert status == 0, err
    assert lines(out)[0]["replayed"] == {topics.tickets: 1}
    [ticket] = await read_topic(kafka_settings, topics.tickets, at_least=1)
    assert (ticket.key, ticket.value) == (b"globex", b'{"t": 1}')
    assert len(await read_topic(kafka_settings, topics.usage)) == 1  # nothing else went there


async def test_ingest_dead_letters_are_not_replayed_to_a_topic(
    kafka_settings: KafkaSettings, topics: Topics, producer: AIOKafkaProducer
) -> None:
    await dead_letter(
        producer, topics.ingest_dlq, b'{"e": 1}', "invalid_event", "http POST /v1/events", "acme"
    )
    status, out, err = await dlq(kafka_settings, "replay", "ingest")
    assert status == 2
    assert "post their values to ingest again" in err
    assert out == ""
    status, out, _ = await dlq(kafka_settings, "show", "ingest")
    assert [d["value"] for d in lines(out)] == ['{"e": 1}']
