"""``shared.worker``: one background-loop idiom (run / stop / wake, backoff on a transient
failure, a bug ends the loop) and one supervision policy (a dead task stops the process);
``shared.db.database_gone``: one predicate for asyncpg's and SQLAlchemy's errors."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc

from shared.db import database_gone, is_bad_data
from shared.worker import Backoff, Supervisor, Worker, backoff_seconds
from tests.support import eventually


class Counting(Worker):
    """Counts passes; fails with the errors it is given, first."""

    name = "counting"

    def __init__(self, failures: list[Exception], rest: float = 60.0) -> None:
        super().__init__(backoff=Backoff(0.001, 0.002))
        self.failures = failures
        self.passes = 0
        self._rest_seconds = rest

    async def step(self) -> float:
        if self.failures:
            raise self.failures.pop(0)
        self.passes += 1
        return self._rest_seconds

    def transient(self, error: Exception) -> bool:
        return isinstance(error, ConnectionError)


def test_backoff_doubles_up_to_its_maximum_and_starts_over_after_a_success() -> None:
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5
    jittered = Backoff(1.0, 10.0, jitter=True, rng=lambda: 0.0)
    assert [jittered.next() for _ in range(3)] == [0.5, 1.0, 2.0]
    assert backoff_seconds(10, 2.0, 600.0, rng=lambda: 1.0) == 600.0


async def test_a_worker_rests_until_woken_and_stops_when_asked() -> None:
    worker = Counting([])
    task = asyncio.create_task(worker.run())

    async def resting_after(passes: int) -> bool:
        return worker.passes == passes and worker.idle

    await eventually(lambda: resting_after(1), timeout_s=5, what="one pass, then a long rest")
    worker.wake()
    await eventually(lambda: resting_after(2), timeout_s=5, what="a second pass when woken")
    worker.stop()
    await asyncio.wait_for(task, 5)
    assert worker.passes == 2


async def test_a_transient_failure_is_retried_and_a_bug_ends_the_loop() -> None:
    worker = Counting([ConnectionError("down"), ConnectionError("down")])
    task = asyncio.create_task(worker.run())

    async def recovered() -> bool:
        return worker.passes == 1

    await eventually(recovered, timeout_s=5, what="a pass after two transient failures")
    worker.stop()
    await asyncio.wait_for(task, 5)

    buggy = Counting([KeyError("bug")])
    with pytest.raises(KeyError):
        await asyncio.wait_for(buggy.run(), 5)


async def test_a_task_that_dies_stops_the_process_and_a_stopped_one_does_not() -> None:
    stopped: list[str] = []
    supervisor = Supervisor(on_failure=lambda: stopped.append("SIGTERM"))
    calm = Counting([])
    supervisor.start("calm", calm.run())
    supervisor.start("buggy", Counting([KeyError("bug")]).run())

    async def died() -> bool:
        return stopped == ["SIGTERM"]

    await eventually(died, timeout_s=5, what="the supervisor to react to the dead task")
    assert not supervisor.alive
    assert supervisor.failed == ["buggy"]
    calm.stop()
    await supervisor.finish_all(5)
    assert stopped == ["SIGTERM"]  # the calm worker ended because it was stopped
    assert supervisor.tasks == {}


def test_the_database_gone_predicate_covers_asyncpg_and_sqlalchemy_errors() -> None:
    wrapped = sa_exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))
    assert database_gone(ConnectionRefusedError("refused"))
    assert database_gone(asyncpg.exceptions.CannotConnectNowError("starting up"))
    assert database_gone(wrapped)
    assert database_gone(sa_exc.TimeoutError("pool exhausted"))
    assert not database_gone(KeyError("a bug"))
    assert not is_bad_data(wrapped)
