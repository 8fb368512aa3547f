"""Folding events into per-account aggregates: pure, order-independent, idempotent to merge.

A batch of new (deduplicated) events becomes a handful of row sets, one per table, each
coalesced per key so the store writes every table with one set-based statement:

- per account and **day of ``occurred_at``** (UTC): usage, ticket and survey counters — added;
- per account and user, and per account and feature: the set of days they were active, as a
  62-day bitmask (:class:`DayMask`) — merged by union, so the same user on the same day counts
  once however often the event comes (distinct users stay exact under redelivery);
- per ticket: its latest state, last writer wins by ``(occurred_at, event_id)``;
- per account: first seen times (least), the *day* of the newest usage and feature use
  (greatest; the exact newest time is kept in that day's row) and the latest NPS answer — so
  a steady stream of usage changes an account's row at most once a day.

Every merge here is commutative and associative, and the SQL upserts in ``store`` apply the
same merges, so the aggregates — and the scores computed from them — do not depend on how
events were batched or in which order they arrived.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple, TypeVar

from shared.events import Event, SurveyEvent, TicketEvent, UsageEvent
from shared.kafka import Rejection

MASK_DAYS = 62  # bit i of a mask is the day `anchor - i`; older days fall off
_FULL = (1 << MASK_DAYS) - 1
HIGH_URGENT = frozenset({"high", "urgent"})

T = TypeVar("T", datetime, date, tuple[datetime, str, int])


# ---------------------------------------------------------------------------------------------
# Admission: the lateness window


def admit(
    event: Event, now: datetime, *, max_age: timedelta, future_tolerance: timedelta
) -> Rejection | None:
    """Refuse an event older than the retention horizon or too far in the future."""
    if event.occurred_at < now - max_age:
        return Rejection(
            "too_old",
            f"occurred_at {event.occurred_at.isoformat()} is older than the retention horizon "
            f"of {max_age.days} days",
        )
    if event.occurred_at > now + future_tolerance:
        return Rejection(
            "from_the_future",
            f"occurred_at {event.occurred_at.isoformat()} is more than "
            f"{int(future_tolerance.total_seconds())}s ahead of the clock",
        )
    return None


# ---------------------------------------------------------------------------------------------
# Day masks


def day_number(day: date) -> int:
    return day.toordinal()


class DayMask(NamedTuple):
    """The days (within ``MASK_DAYS`` of the newest) on which something was active.

    A named tuple, not a frozen dataclass: the fold builds one per new user and feature of a
    batch, and a frozen dataclass's constructor costs several times a tuple's.
    """

    anchor: int  # day number of bit 0
    bits: int

    @classmethod
    def of(cls, day: date) -> DayMask:
        return cls(day_number(day), 1)

    def merge(self, other: DayMask) -> DayMask:
        anchor = max(self.anchor, other.anchor)
        return DayMask(anchor, _shift(self, anchor) | _shift(other, anchor))

    def days(self) -> set[int]:
        return {self.anchor - i for i in range(MASK_DAYS) if self.bits >> i & 1}

    def covers(self, other: DayMask) -> bool:
        """Whether merging ``other`` into this would change nothing."""
        return self.merge(other) == self


def _shift(mask: DayMask, anchor: int) -> int:
    by = anchor - mask.anchor
    return 0 if by >= MASK_DAYS else (mask.bits << by) & _FULL


# ---------------------------------------------------------------------------------------------
# The coalesced rows


@dataclass(slots=True)
class DayCounts:
    usage_events: int = 0
    usage_quantity: float = 0.0
    tickets_opened: int = 0
    high_urgent_opened: int = 0
    escalations: int = 0
    reopens: int = 0
    last_usage_at: datetime | None = None  # the newest usage of the day
    last_feature_at: datetime | None = None  # the newest feature use of the day

    def add(self, other: DayCounts) -> None:
        """Merge as the store merges a day's row: counters add, the newest times win."""
        _add(self, other, DAY_COUNTERS)
        self.last_usage_at = _greatest(self.last_usage_at, other.last_usage_at)
        self.last_feature_at = _greatest(self.last_feature_at, other.last_feature_at)


@dataclass(slots=True)
class SurveyCounts:
    nps_sum: int = 0
    nps_answers: int = 0
    nps_promoters: int = 0
    nps_detractors: int = 0
    csat_sum: int = 0
    csat_answers: int = 0

    def add(self, other: SurveyCounts) -> None:
        """Merge as the store merges a day's answers: every sum and count adds."""
        _add(self, other, SURVEY_COUNTERS)


# The fields that add when two rows of one key merge (the store's upserts add the same ones).
DAY_COUNTERS = tuple(n for n in DayCounts.__slots__ if not n.startswith("last_"))
SURVEY_COUNTERS: tuple[str, ...] = SurveyCounts.__slots__


def _add(into: object, other: object, names: Iterable[str]) -> None:
    for name in names:
        setattr(into, name, getattr(into, name) + getattr(other, name))


@dataclass(frozen=True, slots=True)
class TicketState:
    priority: str
    status: str
    action: str
    updated_at: datetime
    event_id: str

    def newer_than(self, other: TicketState) -> bool:
        """Last writer wins by (time, event id), then the state itself: a total order, so two
        sources sending one id at the same moment give one winner whatever the arrival order
        (the store compares the same way)."""
        return self._order() > other._order()

    def _order(self) -> tuple[datetime, str, str, str, str]:
        return (self.updated_at, self.event_id, self.status, self.priority, self.action)


@dataclass(slots=True)
class Activity:
    """Per account: when it was first seen, the days of its newest usage and feature use, and
    its latest NPS answer. Every field merges monotonically (least or greatest)."""

    known_since: datetime
    first_usage_at: datetime | None = None
    last_usage_day: date | None = None
    first_feature_at: datetime | None = None
    last_feature_day: date | None = None
    last_ticket_at: datetime | None = None
    last_survey_at: datetime | None = None
    nps_latest: tuple[datetime, str, int] | None = None  # (occurred_at, event_id, score)

    def merge(self, other: Activity) -> None:
        self.known_since = min(self.known_since, other.known_since)
        self.first_usage_at = _least(self.first_usage_at, other.first_usage_at)
        self.last_usage_day = _greatest(self.last_usage_day, other.last_usage_day)
        self.first_feature_at = _least(self.first_feature_at, other.first_feature_at)
        self.last_feature_day = _greatest(self.last_feature_day, other.last_feature_day)
        self.last_ticket_at = _greatest(self.last_ticket_at, other.last_ticket_at)
        self.last_survey_at = _greatest(self.last_survey_at, other.last_survey_at)
        self.nps_latest = _greatest(self.nps_latest, other.nps_latest)

    def covers(self, other: Activity) -> bool:
        """Whether merging ``other`` into this would change nothing."""
        return (
            self.known_since <= other.known_since
            and _at_or_before(self.first_usage_at, other.first_usage_at)
            and _le(other.last_usage_day, self.last_usage_day)
            and _at_or_before(self.first_feature_at, other.first_feature_at)
            and _le(other.last_feature_day, self.last_feature_day)
            and _le(other.last_ticket_at, self.last_ticket_at)
            and _le(other.last_survey_at, self.last_survey_at)
            and _le(other.nps_latest, self.nps_latest)
        )


def _le(low: T | None, high: T | None) -> bool:
    """For a greatest-merged field: whether ``low`` adds nothing to ``high`` (None adds nothing,
    and adds to nothing)."""
    if low is None:
        return True
    return high is not None and low <= high


def _at_or_before(held: T | None, other: T | None) -> bool:
    """For a least-merged field: whether ``other`` adds nothing to ``held``."""
    if other is None:
        return True
    return held is not None and held <= other


def _least(a: T | None, b: T | None) -> T | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _greatest(a: T | None, b: T | None) -> T | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


@dataclass(slots=True)
class Coalesced:
    """One batch's effects, one entry per table row they touch."""

    days: dict[tuple[str, date], DayCounts] = field(default_factory=dict)
    surveys: dict[tuple[str, date], SurveyCounts] = field(default_factory=dict)
    users: dict[tuple[str, str], DayMask] = field(default_factory=dict)
    features: dict[tuple[str, str], DayMask] = field(default_factory=dict)
    tickets: dict[tuple[str, str], TicketState] = field(default_factory=dict)
    activity: dict[str, Activity] = field(default_factory=dict)

    @property
    def accounts(self) -> list[str]:
        return sorted(self.activity)


def coalesce(events: Iterable[Event]) -> Coalesced:
    """Fold (already deduplicated) events into per-key rows.

    The hot loop of consumption: usage events (nearly all of them) take the first branch with
    every lookup bound to a local.
    """
    out = Coalesced()
    days, users, features, activity = out.days, out.users, out.features, out.activity
    for event in events:
        if type(event) is not UsageEvent:
            _fold_other(out, event)
            continue
        account = event.account_id
        at = event.occurred_at
        day = (at if at.tzinfo is UTC else at.astimezone(UTC)).date()
        counts = days.get((account, day))
        if counts is None:
            counts = days[(account, day)] = DayCounts()
        counts.usage_events += 1
        counts.usage_quantity += event.quantity
        if counts.last_usage_at is None or at > counts.last_usage_at:
            counts.last_usage_at = at
        seen = activity.get(account)
        if seen is None:
            seen = activity[account] = Activity(
                known_since=at, first_usage_at=at, last_usage_day=day
            )
        else:
            if at < seen.known_since:
                seen.known_since = at
            if seen.first_usage_at is None or at < seen.first_usage_at:
                seen.first_usage_at = at
            if seen.last_usage_day is None or day > seen.last_usage_day:
                seen.last_usage_day = day
        number = day.toordinal()
        _mark(users, (account, event.user_id), number)
        if event.feature:
            _mark(features, (account, event.feature), number)
            if counts.last_feature_at is None or at > counts.last_feature_at:
                counts.last_feature_at = at
            if seen.first_feature_at is None or at < seen.first_feature_at:
                seen.first_feature_at = at
            if seen.last_feature_day is None or day > seen.last_feature_day:
                seen.last_feature_day = day
    return out


def _fold_other(out: Coalesced, event: Event) -> None:
    """Tickets and surveys."""
    account = event.account_id
    at = event.occurred_at
    day = at.astimezone(UTC).date()
    seen = out.activity.get(account)
    if seen is None:
        seen = out.activity[account] = Activity(known_since=at)
    elif at < seen.known_since:
        seen.known_since = at
    if isinstance(event, TicketEvent):
        counts = _day(out, account, day)
        if event.action == "opened":
            counts.tickets_opened += 1
            if event.priority in HIGH_URGENT:
                counts.high_urgent_opened += 1
        elif event.action == "escalated":
            counts.escalations += 1
        elif event.action == "reopened":
            counts.reopens += 1
        state = TicketState(event.priority, event.status, event.action, at, event.event_id)
        key = (account, event.ticket_id)
        current = out.tickets.get(key)
        if current is None or state.newer_than(current):
            out.tickets[key] = state
        seen.last_ticket_at = _greatest(seen.last_ticket_at, at)
    elif isinstance(event, SurveyEvent):
        survey = out.surveys.get((account, day))
        if survey is None:
            survey = out.surveys[(account, day)] = SurveyCounts()
        if event.kind == "nps":
            survey.nps_sum += event.score
            survey.nps_answers += 1
            survey.nps_promoters += event.score >= 9
            survey.nps_detractors += event.score <= 6
            seen.nps_latest = _greatest(seen.nps_latest, (at, event.event_id, event.score))
        else:
            survey.csat_sum += event.score
            survey.csat_answers += 1
        seen.last_survey_at = _greatest(seen.last_survey_at, at)


def _day(out: Coalesced, account: str, day: date) -> DayCounts:
    counts = out.days.get((account, day))
    if counts is None:
        counts = out.days[(account, day)] = DayCounts()
    return counts


def _mark(masks: dict[tuple[str, str], DayMask], key: tuple[str, str], day: int) -> None:
    """Set ``day`` in the mask of ``key`` (most events repeat a day already set)."""
    current = masks.get(key)
    if current is None:
        masks[key] = DayMask(day, 1)
    elif current.anchor != day or not current.bits & 1:
        masks[key] = current.merge(DayMask(day, 1))
