"""Helpers for tests: waiting on a condition with a deadline (never a bare sleep), and running
a service as a real process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import httpx

from devstack.process import free_port

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


class ServiceProcess:
    """A service run for real as ``python -m services.<name>`` on a free port.

    Its output goes to ``log_file``; ``stop()`` sends SIGTERM (the graceful path) and waits.
    Use as an async context manager, or call ``start()`` / ``stop()`` / ``kill()`` directly
    (chaos tests SIGKILL and restart it).
    """

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.env = {
            **os.environ,
            **env,
            f"{name.upper()}_PORT": str(self.port),
            f"{name.upper()}_HOST": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
        }
        self.log_file = log_dir / f"{name}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, *, ready_timeout_s: float = 60.0) -> ServiceProcess:
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                [sys.executable, "-m", f"services.{self.name}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=ROOT,
            )

        async def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited early:\n{self.logs()[-3000:]}")
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    return (await client.get(f"{self.url}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(
            ready,
            timeout_s=ready_timeout_s,
            interval_s=0.2,
            what=f"{self.name} ready on {self.url}",
        )
        return self

    async def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM and wait; returns the exit code (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.proc.wait, timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def logs(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    async def __aenter__(self) -> ServiceProcess:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
