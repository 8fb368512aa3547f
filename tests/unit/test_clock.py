from datetime import UTC, datetime, timedelta

import pytest

from shared.clock import ClockSettings, FixedClock, ScaledClock, SystemClock


def test_system_clock_is_used_unless_a_simulation_is_configured() -> None:
    clock = ClockSettings().build_clock()
    assert isinstance(clock, SystemClock)
    assert abs((clock.now() - datetime.now(UTC)).total_seconds()) < 5
    assert clock.real_seconds_for(30) == 30


def test_scaled_clock_runs_faster_from_its_anchor(monkeypatch: pytest.MonkeyPatch) -> None:
    start = datetime(2026, 7, 1, tzinfo=UTC)
    clock = ScaledClock(start, real_anchor=1_000.0, speed=86_400)
    monkeypatch.setattr("shared.clock.time.time", lambda: 1_002.5)
    assert clock.now() == start + timedelta(days=2.5)
    assert clock.real_seconds_for(86_400) == 1.0


def test_processes_given_the_same_settings_agree_on_the_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {
        "CLOCK_SIM_START": "2026-07-01T00:00:00Z",
        "CLOCK_REAL_ANCHOR": "500",
        "CLOCK_SPEED": "60",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("shared.clock.time.time", lambda: 560.0)
    one, other = ClockSettings().build_clock(), ClockSettings().build_clock()
    assert one.now() == other.now() == datetime(2026, 7, 1, 1, 0, tzinfo=UTC)


def test_fixed_clock_moves_only_when_told() -> None:
    clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
    clock.advance(timedelta(hours=4))
    assert clock.now() == datetime(2026, 1, 1, 4, tzinfo=UTC)
