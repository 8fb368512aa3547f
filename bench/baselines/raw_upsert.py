"""Baseline of S2's database side: a raw asyncpg set-based upsert of the same rows.

    python -m bench.baselines.raw_upsert --bootstrap HOST:PORT --topic T --events N \
        --database-url URL --batch 2000

Reads the same messages, cuts them into batches of the consumer's size and works out, with the
scoring service's own pure functions, the rows its handler writes for each batch (dedup ids,
day rows, the mask and activity rows it would not leave out, the rescoring queue). Then times
only the database: per batch one transaction of plain ``INSERT … SELECT FROM unnest(…) ON
CONFLICT … DO UPDATE SET col = excluded.col`` — no merge arithmetic, nothing computed between
statements. Prints one JSON line: rows, seconds, rows_per_second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from services.scoring import aggregate
from services.scoring.handler import Inbound, decoder, plan
from services.scoring.known import KnownRows
from services.scoring.store import connect, dedup
from shared.events import Topics
from shared.kafka import Record

Statement = tuple[str, list[list[Any]]]


async def fetch(bootstrap: str, topic: str, total: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,  # no group: every partition, from the beginning
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        while len(values) < total:
            got = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for messages in got.values():
                values += [m.value for m in messages]
        return values
    finally:
        await consumer.stop()


def statements(values: list[bytes], topic: str, batch: int) -> list[list[Statement]]:
    """Per batch, the handler's rows as plain upserts."""
    topics = Topics(topic.removesuffix("usage.v1"))
    decode = decoder(topics)
    known = KnownRows()
    now = datetime.now(UTC)
    out: list[list[Statement]] = []
    for start in range(0, len(values), batch):
        records: list[Record[Inbound]] = [
            Record(topic, 0, start + i, None, decode(topic, v), v, 0)
            for i, v in enumerate(values[start : start + batch])
        ]
        decided = plan(records, now, max_age=timedelta(days=7), future_tolerance=timedelta(hours=1))
        claims = sorted((dedup.event_key(e), e.occurred_at) for e in decided.events)
        rows = aggregate.coalesce(decided.events)
        users, features = known.new_users(rows.users), known.new_features(rows.features)
        activity = known.new_activity(rows.activity)
        known.remember(users, features, activity)
        days = sorted(rows.days.items())
        work: list[Statement] = [
            (
                "INSERT INTO scoring.processed_events SELECT * FROM "
                "unnest($1::bytea[], $2::timestamptz[]) ON CONFLICT DO NOTHING",
                [[h for h, _ in claims], [at for _, at in claims]],
            ),
            (
                "INSERT INTO scoring.account_days SELECT * FROM unnest($1::text[], $2::date[], "
                "$3::int[], $4::float8[], $5::int[], $6::int[], $7::int[], $8::int[], "
                "$9::timestamptz[], $10::timestamptz[]) ON CONFLICT (account_id, day) DO UPDATE "
                "SET usage_events = excluded.usage_events, "
                "usage_quantity = excluded.usage_quantity, "
                "last_usage_at = excluded.last_usage_at, "
                "last_feature_at = excluded.last_feature_at",
                [
                    [k[0] for k, _ in days],
                    [k[1] for k, _ in days],
                    [c.usage_events for _, c in days],
                    [c.usage_quantity for _, c in days],
                    [c.tickets_opened for _, c in days],
                    [c.high_urgent_opened for _, c in days],
                    [c.escalations for _, c in days],
                    [c.reopens for _, c in days],
                    [c.last_usage_at for _, c in days],
                    [c.last_feature_at for _, c in days],
                ],
            ),
        ]
        for table, key, masks in (
            ("account_users", "user_id", users),
            ("account_features", "feature", features),
        ):
            ordered = sorted(masks.items())
            sql = (
                f"INSERT INTO scoring.{table} SELECT * FROM unnest($1::text[], $2::text[], "  # noqa: S608
                f"$3::int[], $4::int8[]) ON CONFLICT (account_id, {key}) DO UPDATE SET "
                "anchor_day = excluded.anchor_day, days = excluded.days"
            )
            work.append(
                (
                    sql,
                    [
                        [k[0] for k, _ in ordered],
                        [k[1] for k, _ in ordered],
                        [m.anchor for _, m in ordered],
                        [m.bits for _, m in ordered],
                    ],
                )
            )
        seen = sorted(activity.items())
        work.append(
            (
                "INSERT INTO scoring.activity (account_id, known_since, first_usage_at, "
                "last_usage_day, first_feature_at, last_feature_day) SELECT * FROM "
                "unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::date[], "
                "$5::timestamptz[], $6::date[]) ON CONFLICT (account_id) DO UPDATE SET "
                "known_since = excluded.known_since, first_usage_at = excluded.first_usage_at, "
                "last_usage_day = excluded.last_usage_day, "
                "first_feature_at = excluded.first_feature_at, "
                "last_feature_day = excluded.last_feature_day",
                [
                    [k for k, _ in seen],
                    [a.known_since for _, a in seen],
                    [a.first_usage_at for _, a in seen],
                    [a.last_usage_day for _, a in seen],
                    [a.first_feature_at for _, a in seen],
                    [a.last_feature_day for _, a in seen],
                ],
            )
        )
        work.append(
            (
                "INSERT INTO scoring.dirty_accounts (account_id) SELECT unnest($1::text[]) "
                "ON CONFLICT DO NOTHING",
                [sorted(rows.activity)],
            )
        )
        out.append(work)
    return out


async def write(url: str, batches: list[list[Statement]]) -> dict[str, float]:
    conn = await asyncpg.connect(connect.asyncpg_dsn(url))
    try:
        rows = sum(len(args[0]) for work in batches for _, args in work)
        started = time.perf_counter()
        for work in batches:
            async with conn.transaction():
                for sql, args in work:
                    if args[0]:
                        await conn.execute(sql, *args)
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    return {"rows": rows, "seconds": seconds, "rows_per_second": rows / seconds}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines.raw_upsert")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args(argv)
    values = asyncio.run(fetch(args.bootstrap, args.topic, args.events))
    batches = statements(values, args.topic, args.batch)
    print(json.dumps(asyncio.run(write(args.database_url, batches))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
