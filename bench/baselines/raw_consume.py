"""Baseline of S2: a raw aiokafka consumer that only decodes the same messages.

    python -m bench.baselines.raw_consume --bootstrap HOST:PORT --topic T --events N

Reads every partition of the topic from the beginning (no group, no commits) and decodes each
value with the contract's decoder; prints one JSON line: events, seconds (first record to
last), cpu_seconds (this process, same window).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from aiokafka import AIOKafkaConsumer

from shared.events import decode_event


async def run(bootstrap: str, topic: str, total: int, batch: int) -> dict[str, float]:
    consumer = AIOKafkaConsumer(
        topic,  # no group: every partition, from the beginning
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        seen = 0
        started = cpu = 0.0
        decode = decode_event
        while seen < total:
            got = await consumer.getmany(timeout_ms=1000, max_records=batch)
            if got and not started:
                started, cpu = time.perf_counter(), time.process_time()
            for messages in got.values():
                for message in messages:
                    decode(message.value)
                seen += len(messages)
        return {
            "events": seen,
            "seconds": time.perf_counter() - started,
            "cpu_seconds": time.process_time() - cpu,
        }
    finally:
        await consumer.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines.raw_consume")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args.bootstrap, args.topic, args.events, args.batch))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
