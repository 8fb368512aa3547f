"""``make up`` / ``make status`` / ``make down`` through ``devstack.stack.Stack`` on the session's
Kafka and PostgreSQL: every service that exists starts (the console too;
``devstack.process.ServiceProcess``, not tied to the command), a second ``up`` starts nothing
new, ``down`` ends every one of them."""

from __future__ import annotations

from pathlib import Path

import httpx

from devstack import process
from devstack.stack import SERVICES, Stack


def _pids(home: Path) -> list[int | None]:
    return [process.read_pid(home / "services" / f"{s.name}.pid") for s in SERVICES if s.exists()]


def test_up_twice_then_down_leaves_nothing_running(local_stack: Stack, tmp_path: Path) -> None:
    home = tmp_path / "local"
    local_stack.up()
    assert local_stack.status() == 0
    for s in SERVICES:
        if not s.exists():
            continue
        assert httpx.get(f"{s.url}/readyz").status_code == 200, s.name
    pids = _pids(home)
    assert all(pids)
    local_stack.up()  # again: nothing new starts
    assert _pids(home) == pids
    local_stack.down()
    assert local_stack.status() == 1
    assert not any(process.alive(p) for p in pids if p)
