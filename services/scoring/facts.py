"""The facts the health model reads, computed offline from events held in memory.

The one pure definition of scoring's facts: :class:`Ledger` folds events with scoring's own
``services.scoring.aggregate.coalesce`` and merges them as the store does (day masks unite, the
newest ticket state wins); :meth:`Ledger.facts` returns what the facts query in
``services.scoring.store.facts_sql`` computes from the tables, for the same windows (they end on the day
of ``as_of``; ``services.scoring.health.Facts`` names them). The offline tools (``churnwatch
backtest``, ``churnwatch fit``, ``churnwatch import-history``) use it; a property-based test
holds the SQL and this code to identical facts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.scoring import aggregate
from services.scoring.aggregate import DayMask, SurveyCounts, TicketState
from services.scoring.health import SENTIMENT_TREND_DAYS, SENTIMENT_WINDOW_DAYS, Facts
from shared.events import AccountRecord, Event, SurveyEvent, UsageEvent

_CLOSED = frozenset({"solved", "closed"})


@dataclass(slots=True)
class _Days:
    usage_events: int = 0
    tickets_opened: int = 0
    high_urgent_opened: int = 0
    escalations: int = 0
    reopens: int = 0


@dataclass(slots=True)
class AccountState:
    """The folded aggregates of one account (what scoring's tables hold for it)."""

    known_since: datetime | None = None
    first_usage_at: datetime | None = None
    last_usage_at: datetime | None = None
    first_feature_at: datetime | None = None
    last_feature_at: datetime | None = None
    last_survey_at: datetime | None = None
    nps_latest: tuple[datetime, str, int] | None = None
    days: dict[int, _Days] = field(default_factory=dict)  # by day number
    surveys: dict[int, SurveyCounts] = field(default_factory=dict)
    users: dict[str, DayMask] = field(default_factory=dict)
    features: dict[str, DayMask] = field(default_factory=dict)
    tickets: dict[str, TicketState] = field(default_factory=dict)


class Ledger:
    """Every account's aggregates, fed one day of events at a time."""

    def __init__(self) -> None:
        self.accounts: dict[str, AccountState] = defaultdict(AccountState)

    def fold_day(self, events: Sequence[Event]) -> None:
        """Fold one day's events (all of them, once) with scoring's own ``coalesce``, then
        merge as its store does (day masks unite, the newest ticket state wins)."""
        batch = aggregate.coalesce(events)
        for (account, day), counts in batch.days.items():
            row = self.accounts[account].days.setdefault(day.toordinal(), _Days())
            row.usage_events += counts.usage_events
            row.tickets_opened += counts.tickets_opened
            row.high_urgent_opened += counts.high_urgent_opened
            row.escalations += counts.escalations
            row.reopens += counts.reopens
        for (account, day), survey in batch.surveys.items():
            self.accounts[account].surveys[day.toordinal()] = survey  # a day is folded once
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
        for event in events:
            self._times(self.accounts[event.account_id], event)

    @staticmethod
    def _times(state: AccountState, event: Event) -> None:
        """First and last moments (least / greatest), as scoring's activity row keeps them."""
        at = event.occurred_at
        state.known_since = at if state.known_since is None else min(state.known_since, at)
        if isinstance(event, UsageEvent):
            state.first_usage_at = _least(state.first_usage_at, at)
            state.last_usage_at = _greatest(state.last_usage_at, at)
            if event.feature:
                state.first_feature_at = _least(state.first_feature_at, at)
                state.last_feature_at = _greatest(state.last_feature_at, at)
        elif isinstance(event, SurveyEvent):
            state.last_survey_at = _greatest(state.last_survey_at, at)
            if event.kind == "nps":
                latest = (at, event.event_id, event.score)
                if state.nps_latest is None or latest > state.nps_latest:
                    state.nps_latest = latest

    def facts(self, account_id: str, as_of: datetime, record: AccountRecord | None) -> Facts:
        """What scoring's facts query returns for the account as of ``as_of``."""
        s = self.accounts.get(account_id) or AccountState()
        n = as_of.date().toordinal()
        recent = [s.days[d] for d in range(n - 6, n + 1) if d in s.days]
        prior = [s.days[d] for d in range(n - 34, n - 6) if d in s.days]
        month = [s.days[d] for d in range(n - 29, n + 1) if d in s.days]
        open_tickets = [t for t in s.tickets.values() if t.status not in _CLOSED]
        high = [t for t in open_tickets if t.priority in aggregate.HIGH_URGENT]
        surveys = {d: v for d, v in s.surveys.items() if n - SENTIMENT_WINDOW_DAYS < d <= n}
        newer = {d: v for d, v in surveys.items() if d > n - SENTIMENT_TREND_DAYS}
        older = {d: v for d, v in surveys.items() if d <= n - SENTIMENT_TREND_DAYS}

        def users(newest: int, oldest: int) -> int:
            return sum(1 for m in s.users.values() if active_in(m, n, newest, oldest))

        def features(newest: int, oldest: int) -> int:
            return sum(1 for m in s.features.values() if active_in(m, n, newest, oldest))

        return Facts(
            account_id=account_id,
            known_since=s.known_since,
            tier=record.tier if record else None,
            lifecycle_stage=record.lifecycle_stage if record else None,
            seats=record.seats if record else None,
            renewal_date=record.renewal_date if record else None,
            first_usage_at=s.first_usage_at,
            last_usage_at=s.last_usage_at,
            usage_events_7d=sum(d.usage_events for d in recent),
            usage_events_prior_4w=sum(d.usage_events for d in prior),
            active_days_7d=sum(1 for d in recent if d.usage_events > 0),
            active_days_prior_4w=sum(1 for d in prior if d.usage_events > 0),
            active_users_7d=users(0, 6),
            active_users_prior_4w=sum(users(a, a + 6) for a in (7, 14, 21, 28)),
            active_users_30d=users(0, 29),
            active_users_prior_30d=users(30, 59),
            first_feature_at=s.first_feature_at,
            last_feature_at=s.last_feature_at,
            features_30d=features(0, 29),
            features_prior_30d=features(30, 59),
            tickets_opened_7d=sum(d.tickets_opened for d in recent),
            tickets_opened_prior_4w=sum(d.tickets_opened for d in prior),
            high_urgent_opened_7d=sum(d.high_urgent_opened for d in recent),
            escalations_30d=sum(d.escalations for d in month),
            reopens_30d=sum(d.reopens for d in month),
            open_tickets=len(open_tickets),
            open_high_urgent=len(high),
            oldest_open_high_urgent_update=min((t.updated_at for t in high), default=None),
            last_survey_at=s.last_survey_at,
            nps_answers=sum(v.nps_answers for v in surveys.values()),
            nps_promoters=sum(v.nps_promoters for v in surveys.values()),
            nps_detractors=sum(v.nps_detractors for v in surveys.values()),
            nps_recent_sum=sum(v.nps_sum for v in newer.values()),
            nps_recent_answers=sum(v.nps_answers for v in newer.values()),
            nps_prior_sum=sum(v.nps_sum for v in older.values()),
            nps_prior_answers=sum(v.nps_answers for v in older.values()),
            csat_sum=sum(v.csat_sum for v in surveys.values()),
            csat_answers=sum(v.csat_answers for v in surveys.values()),
            nps_latest=s.nps_latest[2] if s.nps_latest else None,
        )


def active_in(mask: DayMask, as_of_day: int, newest: int, oldest: int) -> bool:
    """Scoring's ``active_in``: active on a day from ``oldest`` to ``newest`` days before."""
    shift = as_of_day - mask.anchor
    relative = mask.bits << shift if shift >= 0 else mask.bits >> -shift
    return bool((relative >> newest) & ((1 << (oldest - newest + 1)) - 1))


def _least(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a


def _greatest(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a
