"""scoring's background loops (relay, rescoring, sweep) wait and try again whatever way the
database goes away — including asyncpg's ``InternalClientError`` on a connection PostgreSQL is
cutting ("cannot switch to state 15; another operation is in progress"), which the relay did
not catch: during a PostgreSQL restart (issue 9's chaos test) the relay task died and took the
whole scoring process down with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, cast

import asyncpg
import pytest

from services.scoring import model
from services.scoring.relay import Relay
from services.scoring.scorer import RescoreWorker, Scorer
from services.scoring.sweep import Horizons, Sweeper
from shared.clock import SystemClock

FAILURES = [
    asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
    asyncpg.InterfaceError("connection is closed"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    ConnectionResetError(),
]


class GonePool:
    """A pool whose every connection fails with ``error``; counts the attempts."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.attempts = 0

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        self.attempts += 1
        raise self.error
        yield  # pragma: no cover


async def runs_through(loop: Any, attempts: Any, stop: Any) -> None:
    """The loop survives at least two failed attempts and then stops when asked."""
    task = asyncio.create_task(loop())
    deadline = asyncio.get_running_loop().time() + 10
    while attempts() < 2:
        assert not task.done(), f"the loop died: {task.exception()!r}"
        assert asyncio.get_running_loop().time() < deadline, "no second attempt"
        await asyncio.sleep(0.01)
    stop()
    await asyncio.wait_for(task, timeout=5)


@pytest.mark.parametrize("error", FAILURES, ids=lambda e: type(e).__name__)
async def test_the_relay_waits_and_tries_again(error: Exception) -> None:
    pool = GonePool(error)
    relay = Relay(cast(asyncpg.Pool, pool), cast(Any, None), "health", poll_seconds=0.01)
    await runs_through(relay.run, lambda: pool.attempts, relay.stop)


@pytest.mark.parametrize("error", FAILURES, ids=lambda e: type(e).__name__)
async def test_rescoring_waits_and_tries_again(error: Exception) -> None:
    pool = GonePool(error)
    worker = RescoreWorker(
        Scorer(model.load(model.DEFAULT_MODEL_FILE), score_delta=5.0),
        cast(asyncpg.Pool, pool),
        SystemClock(),
        poll_seconds=0.01,
        chunk=10,
        on_changes=lambda: None,
    )
    worker.wake()
    await runs_through(worker.run, lambda: pool.attempts, worker.stop)


@pytest.mark.parametrize("error", FAILURES, ids=lambda e: type(e).__name__)
async def test_the_sweep_waits_and_tries_again(error: Exception) -> None:
    sweeper = Sweeper(
        Scorer(model.load(model.DEFAULT_MODEL_FILE), score_delta=5.0),
        cast(asyncpg.Pool, GonePool(error)),
        SystemClock(),
        interval_seconds=0.01,
        chunk=10,
        horizons=Horizons(
            dedup=timedelta(days=8), daily_rows=timedelta(days=90), history=timedelta(days=90)
        ),
    )
    attempts = 0

    async def run_if_due() -> None:
        nonlocal attempts
        attempts += 1
        raise error

    sweeper.run_if_due = run_if_due  # type: ignore[method-assign]
    await runs_through(sweeper.run, lambda: attempts, sweeper.stop)
