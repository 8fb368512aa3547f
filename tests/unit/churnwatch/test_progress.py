"""The CLI's progress bar: the rate, the time left, a line per tenth when not on a terminal."""

from __future__ import annotations

import io

from churnwatch.progress import Bar, duration


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_a_line_per_tenth_with_rate_and_time_left() -> None:
    out, clock = io.StringIO(), Ticks()
    bar = Bar("load", 1000, unit="events", out=out, clock=clock, tty=False)
    for done in range(0, 1001, 50):  # 20 updates, 1 s apart
        clock.now += 1
        bar.update(done, done * 2)
    bar.finish("new 2,000")
    lines = out.getvalue().splitlines()
    assert len(lines) == 11  # 0 % … 90 %, then the final line
    assert lines[5].startswith("load [############............]  50% · 1,000 events")
    assert "91 events/s" in lines[5]  # 1,000 counted in 11 s
    assert "0:11 left" in lines[5]  # as long again as it took for the first half
    assert lines[-1].endswith("took 0:21 · new 2,000")


def test_on_a_terminal_the_line_is_rewritten_in_place() -> None:
    out, clock = io.StringIO(), Ticks()
    bar = Bar("scores", 10, unit="accounts", out=out, clock=clock, tty=True)
    for done in range(1, 11):
        clock.now += 0.5
        bar.update(done, done)
    bar.finish()
    text = out.getvalue()
    assert text.count("\r") == 11
    assert text.endswith("\n")
    assert "\n" not in text[:-1]


def test_durations_read_as_clock_times() -> None:
    assert duration(7) == "0:07"
    assert duration(3725) == "1:02:05"
