"""People's hours — pure working-time arithmetic in a person's own time zone (IANA, zoneinfo).

- :class:`WorkingHours` — the weekdays and the local times a person works (``mon-fri
  09:00-18:00``). Non-critical alerts wait for them (:func:`next_working`); escalation timers
  count only them (:func:`add_working`).
- :class:`QuietHours` — a nightly local window (``22:00-07:00``, it may cross midnight) in
  which nothing is sent to the person, critical alerts included (:func:`quiet_until`).

Every function takes the instant as an aware ``datetime`` and returns an aware UTC one. Local
times are turned into instants per local date, so a day that is 23 or 25 hours long (a DST
change) has the working hours its wall clock says. A local time the clocks skip (02:30 on a
spring-forward night) is read as the same time after the jump (03:30); one that happens twice
(autumn) as its first occurrence.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = r"([01]\d|2[0-3]):([0-5]\d)"
_DAY = "|".join(DAYS)
_WORKING = re.compile(
    rf"^((?:{_DAY})(?:-(?:{_DAY}))?(?:,(?:{_DAY})(?:-(?:{_DAY}))?)*) {_TIME}-{_TIME}$"
)
_QUIET = re.compile(rf"^{_TIME}-{_TIME}$")


@dataclass(frozen=True)
class WorkingHours:
    """Working days (0 = Monday) and the local start and end time of each (start < end)."""

    days: frozenset[int]
    start: time
    end: time

    def __post_init__(self) -> None:
        if not self.days or not self.days <= set(range(7)):
            raise ValueError("working hours need at least one weekday (0 = Monday … 6 = Sunday)")
        if not self.start < self.end:
            raise ValueError(
                f"working hours must start before they end on the same day "
                f"({self.start:%H:%M}-{self.end:%H:%M})"
            )

    def __str__(self) -> str:
        days = ",".join(DAYS[d] for d in sorted(self.days))
        return f"{days} {self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class QuietHours:
    """A daily local window; ``end`` ≤ ``start`` means it ends the next day (22:00-07:00)."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError(f"quiet hours start and end at the same time ({self.start:%H:%M})")

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_working(text: str) -> WorkingHours:
    """``mon-fri 09:00-18:00``, ``mon,wed,fri 08:30-12:00``, ``sun-thu 08:00-16:00``."""
    found = _WORKING.match(text.strip().lower())
    if found is None:
        raise ValueError(
            f"working hours {text!r}: expected days and times like 'mon-fri 09:00-18:00'"
        )
    days: set[int] = set()
    for part in found.group(1).split(","):
        first, _, last = part.partition("-")
        a, b = DAYS.index(first), DAYS.index(last or first)
        days |= {d % 7 for d in range(a, b + 1 if b >= a else b + 8)}
    start = time(int(found.group(2)), int(found.group(3)))
    end = time(int(found.group(4)), int(found.group(5)))
    return WorkingHours(frozenset(days), start, end)


def parse_quiet(text: str) -> QuietHours:
    """``22:00-07:00`` (crossing midnight) or ``12:00-13:00``."""
    found = _QUIET.match(text.strip())
    if found is None:
        raise ValueError(f"quiet hours {text!r}: expected local times like '22:00-07:00'")
    return QuietHours(
        time(int(found.group(1)), int(found.group(2))),
        time(int(found.group(3)), int(found.group(4))),
    )


def working_text(days: list[str], start: str, end: str) -> str:
    """The text form (stored, and read by :func:`parse_working`) of a person record's hours."""
    return str(parse_working(f"{','.join(days)} {start}-{end}"))


def _instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The instant of local ``day`` ``at`` (PEP 495 ``fold=0``: see the module docstring)."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _periods(
    hours: WorkingHours, zone: ZoneInfo, after: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """The working periods (UTC) that end after ``after``, in order, without end."""
    day = after.astimezone(zone).date() - timedelta(days=1)
    while True:
        if day.weekday() in hours.days:
            start, end = _instant(day, hours.start, zone), _instant(day, hours.end, zone)
            if end > after:
                yield start, end
        day += timedelta(days=1)


def is_working(hours: WorkingHours, time_zone: str, at: datetime) -> bool:
    return next_working(hours, time_zone, at) == at.astimezone(UTC)


def next_working(hours: WorkingHours, time_zone: str, at: datetime) -> datetime:
    """``at`` if it is within working hours, else the start of the next working period."""
    start, _end = next(_periods(hours, ZoneInfo(time_zone), at))
    return max(start, at.astimezone(UTC))


def add_working(
    hours: WorkingHours, time_zone: str, start: datetime, duration: timedelta
) -> datetime:
    """The instant at which ``duration`` of working time has passed since ``start`` (time
    outside working hours does not count). A zero duration gives the first working instant."""
    if duration < timedelta(0):
        raise ValueError("a working-time duration cannot be negative")
    left = duration
    for period_start, period_end in _periods(hours, ZoneInfo(time_zone), start):
        begin = max(period_start, start.astimezone(UTC))
        if begin + left <= period_end:
            return begin + left
        left -= period_end - begin
    raise AssertionError("unreachable: working periods never end")  # pragma: no cover


def quiet_until(quiet: QuietHours, time_zone: str, at: datetime) -> datetime | None:
    """When the quiet hours around ``at`` end; None when ``at`` is not in quiet hours."""
    zone = ZoneInfo(time_zone)
    today = at.astimezone(zone).date()
    wraps = quiet.end <= quiet.start
    for day in (today - timedelta(days=1), today):
        begin = _instant(day, quiet.start, zone)
        end = _instant(day + timedelta(days=1) if wraps else day, quiet.end, zone)
        if begin <= at < end:
            return end
    return None


def local_date(time_zone: str, at: datetime) -> date:
    return at.astimezone(ZoneInfo(time_zone)).date()
