"""Background work, written one way in every service.

A **worker** is a loop a service runs beside its HTTP side: claim and send outbox rows, rescore
dirty accounts, relay changes to Kafka, follow a topic. Each is a :class:`Worker` subclass
that says what one pass does (:meth:`Worker.step`) and how long to rest after it; the base
class owns the loop and its three controls:

- ``run()``   pass after pass until ``stop()``;
- ``stop()``  finish the current pass, then return (a rest in progress ends at once);
- ``wake()``  cut the current rest short: there is work now (a NOTIFY, a committed batch).

A pass that fails with an error the worker calls *transient* (``Worker.transient``: the
database or Kafka is away) is logged and tried again after a :class:`Backoff`; any other
error ends ``run()`` with it. A worker never swallows a bug.

The **supervision policy** is :class:`Supervisor`: a service starts its background tasks
through one, and a task that dies (raises) stops the process — a SIGTERM to itself, so the
runner drains HTTP, the lifespan shuts down in order, and the orchestrator starts a fresh
process. ``Supervisor.alive`` is False from then on, for the readiness check. The same in
every service: a dead loop is never left behind a process that still says it is fine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


def backoff_seconds(
    attempts: int, initial: float, maximum: float, rng: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with jitter: in [d/2, d] where d = initial·2^(attempts−1) ≤ max."""
    ceiling = min(maximum, initial * 2 ** max(0, attempts - 1))
    return float(ceiling / 2 + rng() * ceiling / 2)


class Backoff:
    """The waits between attempts of something that keeps failing: ``initial``, doubling up to
    ``maximum``; with ``jitter`` each wait is drawn from its upper half. ``reset()`` after a
    success."""

    def __init__(
        self,
        initial: float = 0.25,
        maximum: float = 10.0,
        *,
        jitter: bool = False,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self._jitter = jitter
        self._rng = rng
        self.attempts = 0

    def next(self) -> float:
        """The wait before the next attempt (and count this failure)."""
        self.attempts += 1
        if self._jitter:
            return backoff_seconds(self.attempts, self.initial, self.maximum, self._rng)
        return float(min(self.maximum, self.initial * 2 ** (self.attempts - 1)))

    def reset(self) -> None:
        self.attempts = 0


class Worker:
    """A background loop; see the module's docstring. Subclasses implement :meth:`step`."""

    name = "worker"
    """For logs and the supervisor (an instance may set its own)."""

    def __init__(self, *, backoff: Backoff | None = None) -> None:
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._backoff = backoff or Backoff()
        self.idle = False  # resting between passes (tests wait on it)

    async def step(self) -> float:
        """One pass; returns how long to rest before the next one (0: go on at once)."""
        raise NotImplementedError

    def transient(self, error: Exception) -> bool:
        """Whether ``error`` is a dependency being away (retry), not a bug (end the loop)."""
        return False

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                rest = await self.step()
            except Exception as exc:
                if not self.transient(exc):
                    raise
                delay = self._backoff.next()
                log.warning(
                    "a background pass failed; retrying",
                    extra={"worker": self.name, "error": repr(exc), "retry_in_seconds": delay},
                )
                await self.pause(delay)
                continue
            self._backoff.reset()
            if rest > 0:
                await self.rest(rest)

    async def rest(self, seconds: float) -> None:
        """Wait ``seconds``, or less when woken or stopped; the wake-up is used up."""
        if self._wake.is_set() or self._stopping.is_set():
            self._wake.clear()
            return
        self.idle = True
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), seconds)
        finally:
            self.idle = False
            self._wake.clear()

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds`` or until stopped (a wake-up does not cut it short)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


def _terminate() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


class Supervisor:
    """A service's background tasks, and what happens when one dies (see the module)."""

    def __init__(self, on_failure: Callable[[], None] = _terminate) -> None:
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._on_failure = on_failure
        self.failed: list[str] = []

    def start(self, name: str, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(self._ended)
        self.tasks[name] = task
        return task

    @property
    def alive(self) -> bool:
        """No task died (a task that finished because it was stopped is fine)."""
        return not self.failed

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        self.failed.append(task.get_name())
        log.critical(
            "background task crashed; stopping the service",
            exc_info=task.exception(),
            extra={"task": task.get_name()},
        )
        self._on_failure()

    async def finish(self, name: str, seconds: float) -> None:
        """Wait for a task to end after it was asked to stop; cancel it past ``seconds``."""
        task = self.tasks.pop(name, None)
        if task is None:
            return
        await asyncio.wait({task}, timeout=seconds)  # a failure was logged by _ended already
        if not task.done():
            log.error("a background task did not stop in time", extra={"task": name})
            task.cancel()

    async def finish_all(self, seconds: float) -> None:
        await asyncio.gather(*(self.finish(name, seconds) for name in list(self.tasks)))
