"""``make up`` / ``make status`` / ``make down`` through ``devstack.stack.Stack`` on the session's
Kafka and PostgreSQL: the three services start (``devstack.process.ServiceProcess``, not tied
to the command), a second ``up`` starts nothing new, ``down`` ends every one of them."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from devstack import process
from devstack.ephemeral import Infra
from devstack.process import free_port
from devstack.stack import SERVICES, Stack


def _pids(home: Path) -> list[int | None]:
    return [process.read_pid(home / "services" / f"{s.name}.pid") for s in SERVICES]


def test_up_twice_then_down_leaves_nothing_running(
    infra: Infra, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
        "DATABASE_URL": database_url,
        "CHURNWATCH_LOCAL_DIR": str(tmp_path / "local"),
        "INGEST_PORT": str(free_port()),
        "SCORING_PORT": str(free_port()),
        "ALERTS_PORT": str(free_port()),
        "LOCAL_SLACK_PORT": str(free_port()),
        "LOCAL_SMTP_PORT": str(free_port()),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    stack = Stack(home=tmp_path / "local")
    try:
        stack.up()
        assert stack.status() == 0
        for s in SERVICES:
            assert httpx.get(f"{s.url}/readyz").status_code == 200, s.name
        pids = _pids(tmp_path / "local")
        assert all(pids)
        stack.up()  # again: nothing new starts
        assert _pids(tmp_path / "local") == pids
    finally:
        stack.down()
    assert stack.status() == 1
    assert not any(process.alive(p) for p in pids if p)
