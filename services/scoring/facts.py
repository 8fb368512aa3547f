"""The facts the health model reads: their one definition, and their offline computation.

**One definition.** :data:`COUNTS` lists every windowed count of
:class:`~services.scoring.health.Facts`: the aggregate it is counted from (a table of scoring's
store), how (a sum of a column, the days with a non-zero column, the users or features active
in the window), and its :class:`Window` of days before the day of ``as_of``. Both computations
read this table: the live facts query (``services.scoring.store.facts_sql``) generates its
``FILTER`` clauses from it, and :class:`Ledger` below counts from it. The counts that are not
windowed (open tickets) and the latest values (first / last times, the account record) are
plain in both.

**Offline.** :class:`Ledger` folds events with scoring's own ``services.scoring.aggregate
.coalesce``, counts each event once by scoring's dedup key, and merges as the store does
(counters add, day masks unite, the newest ticket state wins); :meth:`Ledger.facts` returns
what the facts query computes from the tables. The offline tools (``churnwatch backtest``,
``churnwatch fit``, ``churnwatch import-history``) use it. A property-based test on the real
PostgreSQL (``tests/integration/scoring/test_facts_parity.py``) feeds random event streams to
both and requires identical facts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, Literal

from services.scoring import aggregate
from services.scoring.aggregate import Activity, DayCounts, DayMask, SurveyCounts, TicketState
from services.scoring.health import (
    BASELINE_WEEKS,
    SENTIMENT_TREND_DAYS,
    SENTIMENT_WINDOW_DAYS,
    Facts,
)
from services.scoring.store.dedup import event_key
from shared.events import MAX_TICKET_IDS, AccountRecord, Event

DEDUP_DAYS = 35  # the Ledger counts an event once if its copies occur within this many days
# of the newest day folded — far more than the live path admits (SCORING_MAX_EVENT_AGE_DAYS)
CLOSED = frozenset({"solved", "closed"})  # a ticket in these states is not open
HIGH_URGENT = aggregate.HIGH_URGENT


# ---------------------------------------------------------------------------------------------
# The definition of the windowed counts


@dataclass(frozen=True, slots=True)
class Window:
    """Days before the day of ``as_of``, both ends included: 0 is that day itself."""

    newest: int
    oldest: int

    def days(self, as_of_day: int) -> range:
        """The day numbers (``date.toordinal()``) of the window ending on ``as_of_day``."""
        return range(as_of_day - self.oldest, as_of_day - self.newest + 1)

    def weeks(self) -> list[Window]:
        """The window cut into weeks (its length is a whole number of weeks)."""
        if (self.oldest - self.newest + 1) % 7:
            raise ValueError(f"{self} is not a whole number of weeks")
        return [Window(n, n + 6) for n in range(self.newest, self.oldest, 7)]


WEEK = Window(0, 6)  # ``_7d``: the day of as_of and the six before
BASELINE = Window(7, 7 * (BASELINE_WEEKS + 1) - 1)  # ``_prior_4w``: the weeks before those
MONTH = Window(0, 29)  # ``_30d``
PRIOR_MONTH = Window(30, 59)  # ``_prior_30d``
SENTIMENT = Window(0, SENTIMENT_WINDOW_DAYS - 1)  # the answers counted at all
SENTIMENT_RECENT = Window(0, SENTIMENT_TREND_DAYS - 1)  # ``nps_recent_*``
SENTIMENT_PRIOR = Window(SENTIMENT_TREND_DAYS, SENTIMENT_WINDOW_DAYS - 1)  # ``nps_prior_*``

Table = Literal["account_days", "survey_days", "account_users", "account_features"]
How = Literal["sum", "days", "active", "weekly"]


@dataclass(frozen=True, slots=True)
class Count:
    """One windowed count of :class:`~services.scoring.health.Facts`.

    ``how``: ``sum`` adds ``column`` over the window's days; ``days`` counts the days whose
    ``column`` is above zero; ``active`` counts the keys (users, features) active on at least
    one day of the window; ``weekly`` adds the ``active`` count of each week of the window.
    """

    fact: str
    table: Table
    how: How
    window: Window
    column: str = ""


COUNTS: tuple[Count, ...] = (
    Count("usage_events_7d", "account_days", "sum", WEEK, "usage_events"),
    Count("usage_events_prior_4w", "account_days", "sum", BASELINE, "usage_events"),
    Count("active_days_7d", "account_days", "days", WEEK, "usage_events"),
    Count("active_days_prior_4w", "account_days", "days", BASELINE, "usage_events"),
    Count("tickets_opened_7d", "account_days", "sum", WEEK, "tickets_opened"),
    Count("tickets_opened_prior_4w", "account_days", "sum", BASELINE, "tickets_opened"),
    Count("high_urgent_opened_7d", "account_days", "sum", WEEK, "high_urgent_opened"),
    Count("escalations_30d", "account_days", "sum", MONTH, "escalations"),
    Count("reopens_30d", "account_days", "sum", MONTH, "reopens"),
    Count("active_users_7d", "account_users", "active", WEEK),
    Count("active_users_prior_4w", "account_users", "weekly", BASELINE),
    Count("active_users_30d", "account_users", "active", MONTH),
    Count("active_users_prior_30d", "account_users", "active", PRIOR_MONTH),
    Count("features_30d", "account_features", "active", MONTH),
    Count("features_prior_30d", "account_features", "active", PRIOR_MONTH),
    Count("nps_answers", "survey_days", "sum", SENTIMENT, "nps_answers"),
    Count("nps_promoters", "survey_days", "sum", SENTIMENT, "nps_promoters"),
    Count("nps_detractors", "survey_days", "sum", SENTIMENT, "nps_detractors"),
    Count("nps_recent_sum", "survey_days", "sum", SENTIMENT_RECENT, "nps_sum"),
    Count("nps_recent_answers", "survey_days", "sum", SENTIMENT_RECENT, "nps_answers"),
    Count("nps_prior_sum", "survey_days", "sum", SENTIMENT_PRIOR, "nps_sum"),
    Count("nps_prior_answers", "survey_days", "sum", SENTIMENT_PRIOR, "nps_answers"),
    Count("csat_sum", "survey_days", "sum", SENTIMENT, "csat_sum"),
    Count("csat_answers", "survey_days", "sum", SENTIMENT, "csat_answers"),
)


def span(table: Table) -> Window:
    """The days of ``table`` any count reads: from as_of's day to the oldest window's end."""
    return Window(0, max(c.window.oldest for c in COUNTS if c.table == table))


# ---------------------------------------------------------------------------------------------
# The offline computation


@dataclass(slots=True)
class AccountState:
    """The folded aggregates of one account (what scoring's tables hold for it)."""

    activity: Activity | None = None
    days: dict[int, DayCounts] = field(default_factory=dict)  # by day number
    surveys: dict[int, SurveyCounts] = field(default_factory=dict)
    users: dict[str, DayMask] = field(default_factory=dict)
    features: dict[str, DayMask] = field(default_factory=dict)
    tickets: dict[str, TicketState] = field(default_factory=dict)


class Ledger:
    """Every account's aggregates, fed batches of events in any order and grouping."""

    def __init__(self, *, dedup_days: int = DEDUP_DAYS) -> None:
        self.accounts: dict[str, AccountState] = defaultdict(AccountState)
        # scoring's dedup keys of the events counted, by UTC day of occurred_at; the days more
        # than ``dedup_days`` before the newest one are forgotten (memory stays bounded)
        self._seen: dict[bytes, int] = {}  # key → day
        self._by_day: dict[int, list[bytes]] = {}
        self._dedup_days = dedup_days
        self._newest = 0
        self.duplicates = 0

    def fold_day(self, events: Sequence[Event]) -> None:
        """Fold a batch of events (a day's, or any other): each event counts once by scoring's
        dedup key; merged as the store merges (counters add, day masks unite, the newest
        ticket state wins), so the result does not depend on the batching or the order."""
        fresh = list(self._fresh(events))
        batch = aggregate.coalesce(fresh)
        for (account, day), counts in batch.days.items():
            self.accounts[account].days.setdefault(day.toordinal(), DayCounts()).add(counts)
        for (account, day), survey in batch.surveys.items():
            self.accounts[account].surveys.setdefault(day.toordinal(), SurveyCounts()).add(survey)
        for (account, user), mask in batch.users.items():
            users = self.accounts[account].users
            users[user] = users[user].merge(mask) if user in users else mask
        for (account, feature), mask in batch.features.items():
            features = self.accounts[account].features
            features[feature] = features[feature].merge(mask) if feature in features else mask
        for (account, ticket), state in batch.tickets.items():
            tickets = self.accounts[account].tickets
            if ticket not in tickets or state.newer_than(tickets[ticket]):
                tickets[ticket] = state
        for account, seen in batch.activity.items():
            held = self.accounts[account]
            if held.activity is None:
                held.activity = seen
            else:
                held.activity.merge(seen)

    def _fresh(self, events: Iterable[Event]) -> Iterable[Event]:
        seen, by_day = self._seen, self._by_day
        for event in events:
            key = event_key(event)
            if key in seen:
                self.duplicates += 1
                continue
            day = event.occurred_at.astimezone(UTC).toordinal()
            seen[key] = day
            by_day.setdefault(day, []).append(key)
            self._newest = max(self._newest, day)
            yield event
        for day in [d for d in by_day if d < self._newest - self._dedup_days]:
            for key in by_day.pop(day):
                del seen[key]

    def facts(self, account_id: str, as_of: datetime, record: AccountRecord | None) -> Facts:
        """What scoring's facts query returns for the account as of ``as_of``."""
        s = self.accounts.get(account_id) or AccountState()
        n = as_of.date().toordinal()
        open_tickets = [t for t in s.tickets.values() if t.status not in CLOSED]
        high = [t for t in open_tickets if t.priority in HIGH_URGENT]
        counts: dict[str, Any] = {c.fact: _count(s, c, n) for c in COUNTS}
        return Facts(
            account_id=account_id,
            tier=record.tier if record else None,
            lifecycle_stage=record.lifecycle_stage if record else None,
            seats=record.seats if record else None,
            renewal_date=record.renewal_date if record else None,
            open_tickets=len(open_tickets),
            open_high_urgent=len(high),
            oldest_open_high_urgent_update=min((t.updated_at for t in high), default=None),
            open_high_urgent_ids=tuple(
                i
                for _, i in sorted(
                    (t.updated_at, i)
                    for i, t in s.tickets.items()
                    if t.status not in CLOSED and t.priority in HIGH_URGENT
                )
            )[:MAX_TICKET_IDS],
            **_moments(s),
            **counts,
        )


def _moments(state: AccountState) -> dict[str, Any]:
    """First and last moments, as the facts query reads them: from the activity row, the last
    usage and feature use to the instant from that day's row (else the day's start)."""
    seen = state.activity
    if seen is None:
        return {}

    def last(day: date | None, instant: Callable[[DayCounts], datetime | None]) -> datetime | None:
        if day is None:
            return None
        row = state.days.get(day.toordinal())
        at = instant(row) if row is not None else None
        return at or datetime.combine(day, time(), UTC)

    return {
        "known_since": seen.known_since,
        "first_usage_at": seen.first_usage_at,
        "last_usage_at": last(seen.last_usage_day, lambda d: d.last_usage_at),
        "first_feature_at": seen.first_feature_at,
        "last_feature_at": last(seen.last_feature_day, lambda d: d.last_feature_at),
        "last_survey_at": seen.last_survey_at,
        "nps_latest": seen.nps_latest[2] if seen.nps_latest else None,
    }


def _count(state: AccountState, count: Count, as_of_day: int) -> int:
    """One of :data:`COUNTS` for one account, as the facts query counts it."""
    window = count.window
    if count.table == "account_days" or count.table == "survey_days":
        held = state.days if count.table == "account_days" else state.surveys
        values = [getattr(held[d], count.column) for d in window.days(as_of_day) if d in held]
        return sum(values) if count.how == "sum" else sum(1 for v in values if v > 0)
    masks = (state.users if count.table == "account_users" else state.features).values()
    windows = window.weeks() if count.how == "weekly" else [window]
    return sum(1 for w in windows for m in masks if active_in(m, as_of_day, w.newest, w.oldest))


def active_in(mask: DayMask, as_of_day: int, newest: int, oldest: int) -> bool:
    """Scoring's ``active_in``: active on a day from ``oldest`` to ``newest`` days before."""
    shift = as_of_day - mask.anchor
    relative = mask.bits << shift if shift >= 0 else mask.bits >> -shift
    return bool((relative >> newest) & ((1 << (oldest - newest + 1)) - 1))
