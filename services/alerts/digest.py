"""The daily digest: when each person's is due (09:00 in their own time zone) and what it says.

Pure: ``now`` is passed in. A digest is due at the first ``hour``:00 local time after the last
one; a digest whose slot was missed (the service was down) is still sent within
``MAX_LATENESS`` of its slot, never a day late, and never twice for one local date (the outbox
key is the person and the local date).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

MAX_LATENESS = timedelta(hours=12)


def _slot(day: date, hour: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=zone)


def next_digest_at(time_zone: str, hour: int, after: datetime) -> datetime:
    """The first ``hour``:00 in ``time_zone`` strictly after ``after`` (an aware datetime)."""
    zone = ZoneInfo(time_zone)
    local = after.astimezone(zone)
    for offset in range(0, 3):
        slot = _slot(local.date() + timedelta(days=offset), hour, zone)
        if slot > after:
            return slot.astimezone(after.tzinfo)
    raise AssertionError("unreachable: a day always has the hour")  # pragma: no cover


def due_slot(time_zone: str, hour: int, now: datetime) -> datetime | None:
    """The slot to send now: the latest ``hour``:00 local ≤ ``now``, unless it is too old."""
    zone = ZoneInfo(time_zone)
    local = now.astimezone(zone)
    slot = _slot(local.date(), hour, zone)
    if slot > now:
        slot = _slot(local.date() - timedelta(days=1), hour, zone)
    return slot if now - slot <= MAX_LATENESS else None


def local_date(time_zone: str, at: datetime) -> date:
    return at.astimezone(ZoneInfo(time_zone)).date()


@dataclass(frozen=True)
class AccountLine:
    account_id: str
    name: str
    score: float
    band: str
    as_of: datetime
    score_week_ago: float | None = None
    days_since_activity: float | None = None  # as of ``as_of``
    reasons: tuple[str, ...] = ()
    tier: str | None = None
    arr: float | None = None
    renewal_date: date | None = None
    moved_by: tuple[Mapping[str, Any], ...] = ()  # the latest change's attribution, as stored

    def silent_days(self, now: datetime) -> float | None:
        if self.days_since_activity is None:
            return None
        return self.days_since_activity + max(0.0, (now - self.as_of).total_seconds() / 86_400)

    @property
    def moved(self) -> float | None:
        return None if self.score_week_ago is None else self.score - self.score_week_ago


@dataclass(frozen=True)
class HeldAlert:
    alert_id: int
    account_id: str
    account_name: str
    rule: str
    severity: str
    summary: str
    new: bool


@dataclass(frozen=True)
class Digest:
    person_id: str
    person_name: str
    local_date: date
    red: list[AccountLine] = field(default_factory=list)
    yellow: list[AccountLine] = field(default_factory=list)
    movers: list[AccountLine] = field(default_factory=list)
    silent: list[tuple[AccountLine, float]] = field(default_factory=list)
    held: list[HeldAlert] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.red or self.yellow or self.movers or self.silent or self.held)


def build(
    person_id: str,
    person_name: str,
    day: date,
    accounts: Sequence[AccountLine],
    held: Sequence[HeldAlert],
    *,
    now: datetime,
    silent_days: float,
    movers: int = 5,
    min_move: float = 5.0,
) -> Digest:
    """The digest of one person's portfolio."""
    red = sorted((a for a in accounts if a.band == "red"), key=lambda a: a.score)
    yellow = sorted((a for a in accounts if a.band == "yellow"), key=lambda a: a.score)
    moved = [a for a in accounts if a.moved is not None and abs(a.moved) >= min_move]
    moved.sort(key=lambda a: -abs(a.moved or 0))
    silent = [
        (a, days)
        for a in accounts
        if (days := a.silent_days(now)) is not None and days >= silent_days
    ]
    silent.sort(key=lambda pair: -pair[1])
    return Digest(
        person_id=person_id,
        person_name=person_name,
        local_date=day,
        red=red,
        yellow=yellow,
        movers=moved[:movers],
        silent=silent,
        held=sorted(held, key=lambda h: (not h.new, h.account_name, h.rule)),
    )
