"""Inspect and replay a dead-letter topic: ``python -m deploy.dlq show|replay <dlq> …``.

``<dlq>`` is ``ingest``, ``scoring`` or ``alerts`` — the service whose dead-letter topic
(``<TOPIC_PREFIX><dlq>.dlq.v1``) to read. The brokers, TLS/SASL and the topic prefix come from
the same variables the services read (``KAFKA_*``, ``TOPIC_PREFIX``), so inside a service's pod,
which has them and may reach Kafka, it just works::

    kubectl -n churnwatch exec deploy/churnwatch-scoring -- python -m deploy.dlq show scoring
    kubectl -n churnwatch exec deploy/churnwatch-scoring -- \\
        python -m deploy.dlq replay scoring --from 120 --to 180 --code undecodable

``show`` prints one JSON object per dead letter (partition, offset, key, headers, value as
text), oldest first. ``replay`` produces each chosen dead letter's original bytes, with its
original key, to the topic its ``dlq.origin`` header names (``topic/partition/offset``), adding a
``dlq.replayed_from`` header, and prints what it did. Consumers are idempotent (scoring by
``event_id``, alerts by ``change_id``), so replaying something already processed changes
nothing. Dead letters of ingest are refused HTTP items with no topic of origin: post them to
ingest again instead (``show`` prints them). Both read a fixed range — up to the end of the
topic as it is when they start — and join no consumer group.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.events import Topics
from shared.kafka import client_options, make_producer
from shared.settings import KafkaSettings

DLQS = ("ingest", "scoring", "alerts")
IDLE_FETCHES = 30  # a fetch waits up to a second: give up after this many in a row bring nothing


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]

    @property
    def origin_topic(self) -> str | None:
        """The topic the record was consumed from, when it came from one."""
        parts = self.headers.get("dlq.origin", "").rsplit("/", 2)
        if len(parts) == 3 and parts[0] and parts[1].isdigit() and parts[2].isdigit():
            return parts[0]
        return None  # e.g. ingest's "http POST /v1/events"

    def to_json(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key.decode(errors="replace") if self.key is not None else None,
            "headers": self.headers,
            "value": self.value.decode(errors="replace"),
        }


async def read(
    settings: KafkaSettings,
    topic: str,
    *,
    start: int = 0,
    stop: int | None = None,
    code: str | None = None,
) -> AsyncIterator[DeadLetter]:
    """The dead letters of ``topic`` with ``start <= offset < stop`` (and ``dlq.code == code``),
    up to the topic's end as of now."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await _partitions(consumer, topic))]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        firsts = await consumer.beginning_offsets(partitions)
        for tp in partitions:
            end = ends[tp] if stop is None else min(ends[tp], stop)
            position = max(start, firsts[tp])
            if position >= end:
                continue
            consumer.seek(tp, position)
            idle = 0
            while position < end:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=500)
                records = batch.get(tp, [])
                if not records:
                    moved = await consumer.position(tp)
                    idle = 0 if moved > position else idle + 1
                    position = moved
                    if idle >= IDLE_FETCHES:
                        raise SystemExit(f"{topic}/{tp.partition}: no record at {position} < {end}")
                    continue
                for record in records:
                    position = record.offset + 1
                    if record.offset >= end:
                        break
                    headers = {
                        name: value.decode(errors="replace") for name, value in record.headers
                    }
                    if code is None or headers.get("dlq.code") == code:
                        yield DeadLetter(
                            tp.partition, record.offset, record.key, record.value or b"", headers
                        )
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(20):
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
        await consumer._client.force_metadata_update()
    raise SystemExit(f"topic {topic} not found")


async def show(settings: KafkaSettings, topic: str, args: argparse.Namespace) -> int:
    shown = 0
    async for letter in read(settings, topic, start=args.start, stop=args.stop, code=args.code):
        print(json.dumps(letter.to_json(), ensure_ascii=False))
        shown += 1
        if args.limit is not None and shown >= args.limit:
            break
    return 0


async def replay(settings: KafkaSettings, topic: str, args: argparse.Namespace) -> int:
    topics = Topics(settings.topic_prefix)
    if topic == topics.ingest_dlq:
        print(
            "ingest's dead letters are refused HTTP items, not records of a topic: post their "
            "values to ingest again once the cause is fixed (`show ingest` prints them)",
            file=sys.stderr,
        )
        return 2
    # Only ever to churnwatch's own source topics, never to a dead-letter topic.
    allowed = {name for name in topics.all() if not name.endswith(".dlq.v1")}
    chosen: list[DeadLetter] = []
    skipped: Counter[str] = Counter()
    async for letter in read(settings, topic, start=args.start, stop=args.stop, code=args.code):
        origin = letter.origin_topic
        if origin in allowed:
            chosen.append(letter)
        else:
            skipped[f"origin {letter.headers.get('dlq.origin')!r} is not a churnwatch topic"] += 1
    summary: dict[str, Any] = {
        "dead_letter_topic": topic,
        "dry_run": args.dry_run,
        "replayed": dict(Counter(letter.origin_topic for letter in chosen)),
        "offsets": [chosen[0].offset, chosen[-1].offset] if chosen else None,
        "skipped": dict(skipped),
    }
    if not args.dry_run and chosen:
        producer = make_producer(settings)
        await producer.start()
        try:
            futures = [
                await producer.send(
                    letter.origin_topic or "",
                    value=letter.value,
                    key=letter.key,
                    headers=[
                        (
                            "dlq.replayed_from",
                            f"{topic}/{letter.partition}/{letter.offset}".encode(),
                        )
                    ],
                )
                for letter in chosen
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
    print(json.dumps(summary))
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m deploy.dlq", description=__doc__.split("\n")[0])
    commands = root.add_subparsers(dest="command", required=True)
    for name, help_ in (
        ("show", "print dead letters, one JSON object a line"),
        ("replay", "produce dead letters again to the topic they came from"),
    ):
        command = commands.add_parser(name, help=help_)
        command.add_argument("dlq", choices=DLQS, help="whose dead-letter topic")
        command.add_argument(
            "--from", dest="start", type=int, default=0, help="first offset (default: the start)"
        )
        command.add_argument(
            "--to", dest="stop", type=int, default=None, help="stop before this offset"
        )
        command.add_argument("--code", help="only dead letters with this dlq.code")
        if name == "show":
            command.add_argument("--limit", type=int, default=None, help="at most this many")
        else:
            command.add_argument(
                "--dry-run", action="store_true", help="say what would be replayed, send nothing"
            )
    return root


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    settings = KafkaSettings()
    topic = Topics(settings.topic_prefix).name(f"{args.dlq}_dlq")
    run = show if args.command == "show" else replay
    return asyncio.run(run(settings, topic, args))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
