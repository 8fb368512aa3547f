"""The one place a service reads the time.

Pure code takes ``now`` as an argument; only entrypoints (loops, request handlers at the edge)
call ``clock.now()`` and pass the value down. In production the clock is the system clock.
For the demo, which plays months of a simulated portfolio in minutes, every process gets the
same *scaled* clock from the environment:

    CLOCK_SIM_START=2026-07-01T00:00:00Z   simulated time at the anchor
    CLOCK_REAL_ANCHOR=1795000000.0         wall-clock epoch seconds of the anchor
    CLOCK_SPEED=34560                      simulated seconds per real second

so ingest, scoring and alerts agree on "now" without talking to each other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    def real_seconds_for(self, clock_seconds: float) -> float:
        """The real (wall-clock) seconds in which this clock advances ``clock_seconds``.

        Used to size real waits (poll intervals, sweeps) that are meant in clock time.
        """
        ...


def utc_now() -> datetime:
    """The wall-clock time, timezone-aware (UTC)."""
    return datetime.now(UTC)


class SystemClock:
    def now(self) -> datetime:
        return utc_now()

    def real_seconds_for(self, clock_seconds: float) -> float:
        return clock_seconds


SYSTEM_CLOCK = SystemClock()


@dataclass(frozen=True)
class ScaledClock:
    """Simulated time: ``sim_start`` at wall-clock ``real_anchor``, ``speed`` times faster."""

    sim_start: datetime
    real_anchor: float
    speed: float

    def now(self) -> datetime:
        elapsed = (time.time() - self.real_anchor) * self.speed
        return self.sim_start + timedelta(seconds=elapsed)

    def real_seconds_for(self, clock_seconds: float) -> float:
        return clock_seconds / self.speed


@dataclass
class FixedClock:
    """For tests: time stands still until the test moves it."""

    current: datetime

    def now(self) -> datetime:
        return self.current

    def real_seconds_for(self, clock_seconds: float) -> float:
        return clock_seconds

    def advance(self, delta: timedelta) -> None:
        self.current += delta


class ClockSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    clock_sim_start: datetime | None = Field(None, validation_alias="CLOCK_SIM_START")
    clock_real_anchor: float | None = Field(None, validation_alias="CLOCK_REAL_ANCHOR")
    clock_speed: float = Field(1.0, gt=0, validation_alias="CLOCK_SPEED")

    def build_clock(self) -> Clock:
        if self.clock_sim_start is None:
            return SystemClock()
        start = self.clock_sim_start
        if start.tzinfo is None:
            raise ValueError("CLOCK_SIM_START needs a UTC offset")
        anchor = self.clock_real_anchor if self.clock_real_anchor is not None else time.time()
        return ScaledClock(start.astimezone(UTC), anchor, self.clock_speed)
