"""The CLI's progress display: a bar with the rate and the time left, on stderr.

On a terminal the line is rewritten in place (at most five times a second); elsewhere (a log,
a pipe) a line is written at every tenth of the way, so a CI log shows ten lines, not
thousands. The rate is of what the caller counts (events, days, accounts) and the time left
is estimated from the work done so far (``done`` of ``total``, in units of the caller's own —
bytes of input, say — which need not be what is counted).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 24


def duration(seconds: float) -> str:
    """``1:02:03`` / ``2:03`` — hours only when there are some."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Bar:
    """``label [#######.......]  45% · 123,456 events · 41,000 events/s · 0:07 left · extra``."""

    def __init__(
        self,
        label: str,
        total: float,
        *,
        unit: str,
        out: TextIO = sys.stderr,
        clock: Callable[[], float] = time.monotonic,
        tty: bool | None = None,
    ) -> None:
        self.label = label
        self.total = max(total, 1e-9)
        self.unit = unit
        self.out = out
        self.clock = clock
        self.tty = out.isatty() if tty is None else tty
        self.started = clock()
        self.last_drawn = -1.0
        self.shown_tenth = -1
        self.width = 0
        self.done = 0.0
        self.count = 0
        self.finished = False

    def line(self, extra: str = "") -> str:
        share = min(1.0, self.done / self.total)
        filled = int(share * BAR_WIDTH)
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.count / elapsed
        parts = [
            f"{self.label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {share:4.0%}",
            f"{self.count:,} {self.unit}",
            f"{rate:,.0f} {self.unit}/s",
        ]
        if self.finished:
            parts.append(f"took {duration(elapsed)}")
        elif share > 0:
            parts.append(f"{duration(elapsed * (1 - share) / share)} left")
        if extra:
            parts.append(extra)
        return " · ".join(parts)

    def update(self, done: float, count: int, extra: str = "") -> None:
        """``done`` of ``total`` units so far, ``count`` things counted so far."""
        self.done, self.count = done, count
        now = self.clock()
        if self.tty:
            if now - self.last_drawn >= 0.2:
                self.last_drawn = now
                self._draw(extra)
        elif self.shown_tenth < (tenth := int(min(1.0, done / self.total) * 10)) < 10:
            self.shown_tenth = tenth
            self.out.write(self.line(extra) + "\n")
            self.out.flush()

    def finish(self, extra: str = "") -> None:
        """The final line (the whole way, the time it took); call once."""
        if self.finished:
            return
        self.finished = True
        self.done = self.total
        if self.tty:
            self._draw(extra)
            self.out.write("\n")
        else:
            self.out.write(self.line(extra) + "\n")
        self.out.flush()

    def _draw(self, extra: str) -> None:
        text = self.line(extra)
        self.width = max(self.width, len(text))
        self.out.write("\r" + text.ljust(self.width))
        self.out.flush()
