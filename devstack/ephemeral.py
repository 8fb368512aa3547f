"""A Kafka broker and a PostgreSQL server of a run's own — the test session's, the benchmark's:
free ports, a directory of their own, processes tied to the caller, stopped at the end (also
when the run fails). Either is skipped when the caller names existing infrastructure.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from devstack import process
from devstack.kafka import KafkaBroker
from devstack.postgres import PostgresServer


@dataclass(frozen=True)
class Infra:
    bootstrap_servers: str
    database_url: str  # of the server's maintenance database
    kafka: KafkaBroker | None  # None when external
    postgres: PostgresServer | None


@contextlib.contextmanager
def running(
    home: Path,
    *,
    external_kafka: str | None = None,
    external_database: str | None = None,
    postgres_settings: Mapping[str, str] | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> Iterator[Infra]:
    """Start what is not external under ``home``, wait until both answer, stop them after."""
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o755)  # the postgres system user must reach its cluster directory
    broker = None
    if not external_kafka:
        broker = KafkaBroker(
            home / "kafka",
            port=process.free_port(),
            controller_port=process.free_port(),
            tied_to_parent=True,
        )
    server = None
    if not external_database:
        server = PostgresServer(
            home / "postgres",
            port=process.free_port(),
            tied_to_parent=True,
            settings=dict(postgres_settings or {}),
        )
    started = time.monotonic()
    try:
        if broker:
            broker.start()
            say(
                f"Kafka broker starting on {broker.bootstrap_servers} "
                f"(pid {broker.running_pid()}, data in {broker.home})"
            )
        if server:
            server.start()
            say(
                f"PostgreSQL starting on 127.0.0.1:{server.port} "
                f"(pid {server.running_pid()}, data in {server.home})"
            )
        if broker:
            broker.wait_ready()
        if server:
            server.wait_ready()
        say(f"infrastructure ready in {time.monotonic() - started:.1f}s")
        yield Infra(
            bootstrap_servers=external_kafka or (broker.bootstrap_servers if broker else ""),
            database_url=external_database or (server.url if server else ""),
            kafka=broker,
            postgres=server,
        )
    finally:
        if broker and broker.stop():
            say("Kafka broker stopped")
        if server and server.stop():
            say("PostgreSQL stopped")
