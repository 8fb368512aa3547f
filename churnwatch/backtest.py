"""``churnwatch backtest``: the scoring service's own pure code, offline, over an event file.

No Kafka, no database. The events are folded day by day with scoring's own
``services.scoring.aggregate.coalesce``; at the end of every day each account known so far is
scored by ``services.scoring.health.assess`` with the model file — the facts it needs are
computed by ``services.scoring.facts.Ledger``, the offline definition that scoring's facts query
is held to (windows ending on the day of ``as_of``). Every health change is judged by the
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
from services.scoring import health
from services.scoring.facts import Ledger
from services.scoring.health import Facts
from services.scoring.model import Model
from shared.events import AccountRecord, Event

DEFAULT_HORIZONS = (7, 14, 30)
DEFAULT_WARMUP_DAYS = 14
DEFAULT_SCORE_DELTA = 10.0  # SCORING_SCORE_DELTA_POINTS' default


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
