"""Helpers for tests: waiting on a condition with a deadline (never a bare sleep), and running
a service as a real process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from devstack import process

ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    timeout_s: float = 30.0,
    interval_s: float = 0.1,
    what: str = "condition",
) -> T:
    """Call ``probe`` until it returns a truthy value, and return that value.

    Fails the test with ``what`` and the last value when ``timeout_s`` passes first.
    """
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not hold within {timeout_s}s (last: {last!r})")
        await asyncio.sleep(interval_s)


class ServiceProcess(process.ServiceProcess):
    """``devstack.process.ServiceProcess`` (the one launcher), its log named by its port (tests
    start several of one service in one folder); ``stop()`` is the graceful SIGTERM."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        super().__init__(name, env, log_dir, log_name=f"{name}-pending")
        self.log_file = log_dir / f"{name}-{self.port}.log"
        self._pid_file = log_dir / f"{name}-{self.port}.pid"

    async def start(self, *, ready_timeout_s: float = 60.0) -> ServiceProcess:
        await super().start(ready_timeout_s=ready_timeout_s)
        return self

    async def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM and wait; returns the exit code (None if it had to be killed)."""
        return await self.terminate(timeout_s)

    async def __aenter__(self) -> ServiceProcess:
        return await self.start()
