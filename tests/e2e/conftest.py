"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.ephemeral import Infra
from devstack.process import free_port
from devstack.stack import Stack


@pytest.fixture
def local_stack(
    infra: Infra, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    """A ``make up`` stack with a home of its own, free ports, and the session's infrastructure
    (so it starts only the sinks and the services); brought down afterwards."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
        "DATABASE_URL": database_url,
        "CHURNWATCH_LOCAL_DIR": str(tmp_path / "local"),
        "INGEST_PORT": str(free_port()),
        "SCORING_PORT": str(free_port()),
        "ALERTS_PORT": str(free_port()),
        "CONSOLE_PORT": str(free_port()),
        "LOCAL_SLACK_PORT": str(free_port()),
        "LOCAL_SMTP_PORT": str(free_port()),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    stack = Stack(home=tmp_path / "local")
    try:
        yield stack
    finally:
        stack.down()
