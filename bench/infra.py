"""The benchmark's own Kafka broker and PostgreSQL server: free ports, a temporary directory,
processes tied to this one, stopped at the end — also when a scenario fails or the run is
interrupted.

Reuses ``devstack``'s broker and server. ``BENCH_KAFKA_BOOTSTRAP_SERVERS`` and
``BENCH_DATABASE_URL`` point the run at infrastructure that is already up instead (handy while
working on one scenario; ``python -m bench.infra up --dir DIR`` starts such a pair and keeps it
running until interrupted).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import asyncpg
from aiokafka.errors import GroupCoordinatorNotAvailableError

from devstack import ephemeral
from devstack.kafka import KafkaBroker, kafka_version
from devstack.postgres import PostgresServer
from shared import migrations
from shared.events import Topics
from shared.kafka import ensure_topics
from shared.settings import KafkaSettings

ROOT = Path(__file__).resolve().parent.parent

# PostgreSQL as it comes (durable commits, default buffers) except for the connection limit:
# the benchmark measures the project's statements against a stock server.
POSTGRES_SETTINGS = {"max_connections": "200"}


@dataclass
class Infra:
    """Where the broker and the database server are, and what was started for them."""

    bootstrap_servers: str
    database_url: str  # the server's maintenance database; scenarios make their own
    home: Path
    broker: KafkaBroker | None = None
    postgres: PostgresServer | None = None
    pids: dict[str, int] = field(default_factory=dict)

    def kafka_settings(self, prefix: str | None = None) -> KafkaSettings:
        return KafkaSettings(
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap_servers,
            TOPIC_PREFIX=prefix or f"b{uuid.uuid4().hex[:8]}.",
        )

    async def topics(self, partitions: int | None = None) -> tuple[KafkaSettings, Topics]:
        """A fresh topic prefix with every topic created (event topics have ≥ 2 partitions)."""
        settings = self.kafka_settings()
        topics = Topics(settings.topic_prefix)
        specs = topics.all()
        if partitions is not None:
            from dataclasses import replace

            specs = {
                name: replace(spec, partitions=partitions) if not spec.compacted else spec
                for name, spec in specs.items()
            }
        await ensure_topics(settings, specs)
        return settings, topics

    def server_versions(self) -> dict[str, str]:
        versions = {"Kafka": kafka_version() if self.broker else "external"}
        versions["PostgreSQL"] = asyncio.run(_postgres_version(self.database_url))
        return versions


async def _postgres_version(url: str) -> str:
    conn = await asyncpg.connect(dsn(url))
    try:
        version: str = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return version.split()[0]


def dsn(url: str) -> str:
    """``postgresql+asyncpg://…`` → the form asyncpg takes."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@contextlib.contextmanager
def running(home: Path | None = None) -> Iterator[Infra]:
    """Start (or reuse) the broker and the database; stop whatever was started on the way out."""
    external_kafka = os.environ.get("BENCH_KAFKA_BOOTSTRAP_SERVERS")
    external_db = os.environ.get("BENCH_DATABASE_URL")
    owned = home is None
    home = home or Path(tempfile.mkdtemp(prefix="churnwatch-bench-"))
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM unwinds like Ctrl-C: finally runs
    try:
        with ephemeral.running(
            home,
            external_kafka=external_kafka,
            external_database=external_db,
            postgres_settings=POSTGRES_SETTINGS,
        ) as started:
            infra = Infra(
                bootstrap_servers=started.bootstrap_servers,
                database_url=started.database_url,
                home=home,
                broker=started.kafka,
                postgres=started.postgres,
            )
            for name, server in (("kafka", started.kafka), ("postgres", started.postgres)):
                pid = server.running_pid() if server else None
                if pid:
                    infra.pids[name] = pid
            yield infra
    finally:
        signal.signal(signal.SIGTERM, previous)
        if owned:
            shutil.rmtree(home, ignore_errors=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.asynccontextmanager
async def scratch_database(infra: Infra, *, migrate: bool = True) -> AsyncIterator[str]:
    """A new database on the server (migrated to every service's head); dropped afterwards."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(dsn(infra.database_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = f"{infra.database_url.rpartition('/')[0]}/{name}"
    try:
        if migrate:
            # Alembic's env.py runs its own event loop: give it a thread of its own.
            await asyncio.to_thread(migrations.upgrade_all, url)
        yield url
    finally:
        admin = await asyncpg.connect(dsn(infra.database_url))
        try:
            for _ in range(30):  # an autovacuum worker on it makes the drop wait
                try:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    break
                except asyncpg.InsufficientPrivilegeError:
                    await asyncio.sleep(1)
        finally:
            await admin.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.infra")
    parser.add_argument("command", choices=["up"])
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    with running(args.dir) as infra:
        print(f"export BENCH_KAFKA_BOOTSTRAP_SERVERS={infra.bootstrap_servers}")
        print(f"export BENCH_DATABASE_URL='{infra.database_url}'", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))


async def preload(settings: KafkaSettings, topic: str, pairs: list[tuple[bytes, bytes]]) -> None:
    """Write (key, value) pairs to ``topic`` fast: pre-built batches per partition (Kafka's
    murmur2 partitioner, as every producer of the project), idempotent, acks=all."""
    from aiokafka.partitioner import murmur2

    from shared.kafka import make_producer

    producer = make_producer(settings, linger_ms=50)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        groups: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in partitions}
        for key, value in pairs:
            groups[partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]].append((key, value))
        futures = []
        for partition, items in groups.items():
            batch = producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


class GroupOffsets:
    """Reads a consumer group's committed offsets (one admin connection, kept open)."""

    def __init__(self, settings: KafkaSettings) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        from shared.kafka import client_options

        self._admin = AIOKafkaAdminClient(**client_options(settings))

    async def __aenter__(self) -> GroupOffsets:
        await self._admin.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._admin.close()

    async def total(self, group: str) -> int:
        """The sum of the group's committed offsets over every partition (0 before any, and
        while a fresh broker has no coordinator for the group yet)."""
        try:
            offsets = await self._admin.list_consumer_group_offsets(group)
        except GroupCoordinatorNotAvailableError:
            return 0
        return sum(max(0, meta.offset) for meta in offsets.values())
