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
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from devstack import ephemeral
from devstack.ephemeral import Infra
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
    home = Path(tempfile.mkdtemp(prefix="churnwatch-test-"))
    try:
        with ephemeral.running(
            home,
            external_kafka=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
            external_database=os.environ.get("DATABASE_URL"),
            # Durability across an OS crash is not what tests check; a restart stays clean.
            postgres_settings={
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
            },
            say=lambda line: _say(pytestconfig, line),
        ) as started:
            yield started
    finally:
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
