"""``churnwatch backtest``: the scoring service's own pure code, offline, over an event file.

No Kafka, no database. The events are folded day by day with scoring's own
``services.scoring.aggregate.coalesce``; at the end of every day each account known so far is
scored by ``services.scoring.health.assess`` with the model file — the facts it needs are
computed here from the folded aggregates exactly as scoring's facts query computes them from
its tables (windows ending on the day of ``as_of``). Every health change is judged by the
alerts service's own rules (``services.alerts.rules.evaluate``), which open and clear alerts.

What it reports (``churnwatch.evaluation`` defines each figure): for every horizon, the AUC
of the health score *h* days before churn against the accounts that did not churn, that same
day; for every rule, precision, recall, late alerts and the median lead time. Alerts opened
during the first ``warmup_days`` (the accounts have no baseline yet) count only if they were
still open at the end of the warm-up, from then — as the demo's onboarding silence does.
Several model files are compared side by side in one pass over the events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from churnwatch.evaluation import (
    Opened,
    RuleScore,
    auc_same_day,
    counted_from,
    score_rules,
)
from churnwatch.simulator import GroundTruth
from services.alerts import rules as alert_rules
from services.scoring import aggregate, health
from services.scoring.aggregate import DayMask, SurveyCounts, TicketState
from services.scoring.health import SENTIMENT_TREND_DAYS, SENTIMENT_WINDOW_DAYS, Facts
from services.scoring.model import Model
from shared.events import AccountRecord, Event, SurveyEvent, UsageEvent

DEFAULT_HORIZONS = (7, 14, 30)
DEFAULT_WARMUP_DAYS = 14
DEFAULT_SCORE_DELTA = 10.0  # SCORING_SCORE_DELTA_POINTS' default
_CLOSED = frozenset({"solved", "closed"})


# ---------------------------------------------------------------------------------------------
# What scoring holds about one account, kept in memory


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
            return sum(1 for m in s.users.values() if _active_in(m, n, newest, oldest))

        def features(newest: int, oldest: int) -> int:
            return sum(1 for m in s.features.values() if _active_in(m, n, newest, oldest))

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


def _active_in(mask: DayMask, as_of_day: int, newest: int, oldest: int) -> bool:
    """Scoring's ``active_in``: active on a day from ``oldest`` to ``newest`` days before."""
    shift = as_of_day - mask.anchor
    relative = mask.bits << shift if shift >= 0 else mask.bits >> -shift
    return bool((relative >> newest) & ((1 << (oldest - newest + 1)) - 1))


def _least(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a


def _greatest(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


# ---------------------------------------------------------------------------------------------
# Scoring and alerting, day by day


@dataclass
class _ModelRun:
    """One model's scores and alerts over the run."""

    model: Model
    previous: dict[str, health.Previous] = field(default_factory=dict)
    scores: dict[str, dict[date, float]] = field(default_factory=lambda: defaultdict(dict))
    history: dict[str, list[tuple[datetime, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    open_alerts: dict[tuple[str, str], int] = field(default_factory=dict)  # -> index in opened
    opened: list[Opened] = field(default_factory=list)
    # Alerts whose condition cleared: when they resolve unless it returns (keep_firing_for).
    clearing: dict[tuple[str, str], datetime] = field(default_factory=dict)
    changes: int = 0

    def close(self, key: tuple[str, str], at: datetime) -> None:
        self.clearing.pop(key, None)
        index = self.open_alerts.pop(key)
        alert = self.opened[index]
        self.opened[index] = Opened(alert.account_id, alert.rule, alert.motion, alert.started, at)


@dataclass(frozen=True)
class ModelResult:
    model_version: str
    path: str
    aucs: tuple[tuple[int, float | None, int], ...]  # (horizon, AUC, churners compared)
    rules: tuple[RuleScore, ...]
    alerts: int  # alerts counted
    changes: int  # health changes


@dataclass(frozen=True)
class BacktestResult:
    events: int
    accounts: int
    first_day: date
    last_day: date
    churners: int
    counted_from: datetime
    results: tuple[ModelResult, ...]


def days_of(events: Iterable[Event]) -> Iterator[tuple[date, list[Event]]]:
    """The events grouped by UTC day of ``occurred_at``, days in order (any input order)."""
    by_day: dict[date, list[Event]] = defaultdict(list)
    for event in events:
        by_day[event.occurred_at.astimezone(UTC).date()].append(event)
    for day in sorted(by_day):
        yield day, by_day[day]


def run(
    events: Iterable[Event],
    labels: Sequence[GroundTruth],
    models: Sequence[tuple[Path, Model]],
    ruleset: alert_rules.RuleSet,
    *,
    records: Sequence[AccountRecord] = (),
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    warmup_days: int = DEFAULT_WARMUP_DAYS,
    score_delta: float = DEFAULT_SCORE_DELTA,
) -> BacktestResult:
    """Score every account at the end of every day with each model; judge the results."""
    ledger = Ledger()
    runs = [_ModelRun(model) for _, model in models]
    timeline = sorted(records, key=lambda r: r.updated_at)
    current: dict[str, AccountRecord] = {}
    count = 0
    first_day: date | None = None
    last_day: date | None = None
    for day, todays in days_of(events):
        first_day = first_day or day
        last_day = day
        count += len(todays)
        ledger.fold_day(todays)
        as_of = datetime.combine(day, time(23, 59, 59), UTC)
        while timeline and timeline[0].updated_at <= as_of:
            record = timeline.pop(0)
            current[record.account_id] = record
        known = sorted(set(ledger.accounts) | set(current))
        for account_id in known:
            facts = ledger.facts(account_id, as_of, current.get(account_id))
            for model_run in runs:
                _assess(model_run, ruleset, facts, current.get(account_id), as_of, score_delta)
    if first_day is None or last_day is None:
        raise ValueError("the event file holds no events")
    begin = datetime.combine(first_day + timedelta(days=warmup_days), time(), UTC)
    rule_list = [(r.name, r.motion) for r in ruleset.rules]
    results = []
    for (path, model), model_run in zip(models, runs, strict=True):
        fired = counted_from(model_run.opened, begin)
        results.append(
            ModelResult(
                model_version=model.version,
                path=str(path),
                aucs=tuple((h, *auc_at_horizon(model_run.scores, labels, h)) for h in horizons),
                rules=tuple(score_rules(rule_list, fired, labels)),
                alerts=len(fired),
                changes=model_run.changes,
            )
        )
    return BacktestResult(
        events=count,
        accounts=len(ledger.accounts),
        first_day=first_day,
        last_day=last_day,
        churners=sum(1 for t in labels if t.churned),
        counted_from=begin,
        results=tuple(results),
    )


def _assess(
    model_run: _ModelRun,
    ruleset: alert_rules.RuleSet,
    facts: Facts,
    record: AccountRecord | None,
    as_of: datetime,
    score_delta: float,
) -> None:
    account_id = facts.account_id
    previous = model_run.previous.get(account_id)
    assessed = health.assess(model_run.model, facts, previous, as_of, score_delta=score_delta)
    if assessed is None:
        return
    snapshot = assessed.snapshot
    model_run.previous[account_id] = health.Previous(
        snapshot=snapshot,
        model_version=model_run.model.version,
        as_of=as_of,
        band_since=assessed.band_since,
    )
    model_run.scores[account_id][as_of.date()] = snapshot.score
    for kept in ruleset.rules:  # cleared long enough: resolved, as the alerts service does
        ends = model_run.clearing.get((account_id, kept.name))
        if ends is not None and ends <= as_of:
            model_run.close((account_id, kept.name), ends)
    history = model_run.history[account_id]
    change = assessed.change
    if change is not None:
        model_run.changes += 1
        context = alert_rules.Context(
            renewal_date=record.renewal_date if record else None, score_history=tuple(history)
        )
        for verdict in alert_rules.evaluate(ruleset, change, context):
            key = (account_id, verdict.rule)
            rule = ruleset.by_name(verdict.rule)
            if verdict.outcome in ("fire", "sustain"):
                model_run.clearing.pop(key, None)  # it returned: the same alert
            if verdict.outcome == "fire" and key not in model_run.open_alerts and rule:
                model_run.open_alerts[key] = len(model_run.opened)
                model_run.opened.append(Opened(account_id, rule.name, rule.motion, as_of, None))
            elif verdict.outcome == "clear" and key in model_run.open_alerts and rule:
                ends = model_run.clearing.setdefault(key, as_of + rule.keep_firing_for)
                if ends <= as_of:
                    model_run.close(key, as_of)
    history.append((as_of, snapshot.score))


def auc_at_horizon(
    scores: dict[str, dict[date, float]], labels: Sequence[GroundTruth], horizon: int
) -> tuple[float | None, int]:
    """The same-day AUC of the scores ``horizon`` days before each churn date."""
    churned = {t.account_id for t in labels if t.churned}
    others_by_day: dict[date, list[float]] = defaultdict(list)
    for t in labels:
        if t.account_id in churned:
            continue
        for day, score in scores.get(t.account_id, {}).items():
            others_by_day[day].append(score)
    churner_scores = []
    for t in labels:
        if not t.churned or t.churn_date is None:
            continue
        day = t.churn_date - timedelta(days=horizon)
        churner_score = scores.get(t.account_id, {}).get(day)
        if churner_score is not None:
            churner_scores.append((day, churner_score))
    return auc_same_day(churner_scores, others_by_day)
