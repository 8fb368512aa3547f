"""Test-suite wiring.

- Tests under ``tests/unit`` cannot reach infrastructure: opening a network connection fails.
- Tests under ``tests/integration`` and ``tests/e2e`` are marked ``integration`` and use the real
  Kafka broker and PostgreSQL server this test session starts once — on free ports, in a
  temporary directory, tied to this process — and stops at the end, even when tests fail.
  With ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` set, the session uses those instead.
- Each integration test is isolated: its own topic prefix (so its own topics and groups) and
  its own database.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from devstack import process
from devstack.kafka import KafkaBroker
from devstack.postgres import PostgresServer
from shared.events import Topics
from shared.kafka import ensure_topics
from shared.settings import DatabaseSettings, KafkaSettings

ROOT = Path(__file__).resolve().parent.parent
INTEGRATION_DIRS = ("integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in INTEGRATION_DIRS:
            item.add_marker(pytest.mark.integration)


# -- unit tests cannot reach infrastructure ----------------------------------------------------

_real_connect = socket.socket.connect


@pytest.fixture(autouse=True)
def _no_network_in_unit_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if request.node.get_closest_marker("integration"):
        return

    def refuse(self: socket.socket, address: Any) -> None:
        if self.family == socket.AF_UNIX:
            _real_connect(self, address)
            return
        raise RuntimeError(
            f"unit tests cannot reach infrastructure (tried {address!r}); "
            "put the test under tests/integration"
        )

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


# -- the session's infrastructure --------------------------------------------------------------


@dataclass(frozen=True)
class Infra:
    bootstrap_servers: str
    database_url: str  # of the server's maintenance database; tests get their own database
    kafka: KafkaBroker | None  # None when external
    postgres: PostgresServer | None


def _say(config: pytest.Config, line: str) -> None:
    """Print past output capture, so the run's log shows what the session started and stopped."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"[infra] {line}")


@pytest.fixture(scope="session")
def infra(pytestconfig: pytest.Config) -> Iterator[Infra]:
    external_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    external_db = os.environ.get("DATABASE_URL")
    home = Path(tempfile.mkdtemp(prefix="churnwatch-test-"))
    home.chmod(0o755)  # the postgres system user must reach its cluster directory
    broker = (
        None
        if external_kafka
        else KafkaBroker(
            home / "kafka",
            port=process.free_port(),
            controller_port=process.free_port(),
            tied_to_parent=True,
        )
    )
    server = (
        None
        if external_db
        else PostgresServer(
            home / "postgres",
            port=process.free_port(),
            tied_to_parent=True,
            # Durability across an OS crash is not what tests check; a restart stays clean.
            settings={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
        )
    )
    started = time.monotonic()
    try:
        if broker:
            broker.start()
            _say(
                pytestconfig,
                f"Kafka broker starting on {broker.bootstrap_servers} "
                f"(pid {broker.running_pid()}, data in {broker.home})",
            )
        if server:
            server.start()
            _say(
                pytestconfig,
                f"PostgreSQL starting on 127.0.0.1:{server.port} "
                f"(pid {server.running_pid()}, data in {server.home})",
            )
        if broker:
            broker.wait_ready()
        if server:
            server.wait_ready()
        _say(pytestconfig, f"infrastructure ready in {time.monotonic() - started:.1f}s")
        yield Infra(
            bootstrap_servers=external_kafka or (broker.bootstrap_servers if broker else ""),
            database_url=external_db or (server.url if server else ""),
            kafka=broker,
            postgres=server,
        )
    finally:
        if broker and broker.stop():
            _say(pytestconfig, "Kafka broker stopped")
        if server and server.stop():
            _say(pytestconfig, "PostgreSQL stopped")
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
async def kafka_settings(infra: Infra) -> KafkaSettings:
    """Settings with a topic prefix of this test's own; its topics exist."""
    settings = KafkaSettings(
        KAFKA_BOOTSTRAP_SERVERS=infra.bootstrap_servers,
        TOPIC_PREFIX=f"t{uuid.uuid4().hex[:10]}.",
    )
    await ensure_topics(settings, Topics(settings.topic_prefix).all())
    return settings


@pytest.fixture
def topics(kafka_settings: KafkaSettings) -> Topics:
    return Topics(kafka_settings.topic_prefix)


@pytest.fixture
async def database_url(infra: Infra) -> AsyncIterator[str]:
    """A fresh, empty database of this test's own; dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin_dsn = infra.database_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = infra.database_url.rpartition("/")
    yield f"{base}/{name}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
def database_settings(database_url: str) -> DatabaseSettings:
    return DatabaseSettings(DATABASE_URL=database_url)
