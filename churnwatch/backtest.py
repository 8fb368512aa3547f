"""``churnwatch backtest``: the scoring and alerts services' own pure code, offline, over events.

No Kafka, no database. The data's own clock drives it, as the live sweep does: every calendar
day from the first event's day to the last one's, that day's events are folded (scoring's facts,
:class:`services.scoring.facts.Ledger`) and every *observed* account is scored at the end of the
day (23:59:59 UTC) by ``services.scoring.health.assess`` with each model file. Every health
change goes to the alert rules (``services.alerts.rules.evaluate``) and the alerts' own
lifecycle (``services.alerts.lifecycle.apply_verdicts``, ``resolve`` once ``keep_firing_for``
has passed), with the day's end as the fixed clock; like the alerts service, the rules see the
scores of earlier *changes* as the account's score history.

**Time passing.** As the alerts scheduler does, a day without a health change still judges the
account's latest change as of the day's end when time alone may have changed a verdict — a
renewal window opening, ``no_activity``'s steps, advocacy's green days, a score peak leaving
``score_dropped``'s window (``services.alerts.rules.next_evaluation``, ``as_time_passes``) —
or when its renewal date changed. ``time_rules=False`` turns this off (health changes only, as
before issue 14). :func:`replay_alerts` does the same between kept changes, at the end of each
day a crossing falls on (with the renewal date of the latest change).

**Observed.** An account is scored and judged from its first event (or the first account record
with an ``updated_at``) until the day before its churn date, the ``observed_until`` day of its
label, or the last day of the data, whichever comes first. After that it is gone from every
comparison and gets no alerts.

**Warm-up.** While an account's data does not cover the model's baseline window, its score is
``warming_up`` (``services.scoring.health.warm_up``): the risk rules do not fire, and those days
are not judged (no AUC).

**Judged period.** ``judged=(from, until)`` folds and scores everything, but judges only that
period: the AUC of churners whose comparison day falls in it, alerts opened in it (an alert still
open when it starts counts from its first day), churners whose churn date falls in it — a time
hold-out for a model fitted on the earlier data.

What it reports (:mod:`churnwatch.evaluation` defines every figure): per horizon the same-day AUC
with observation windows and a bootstrap interval over accounts; per rule precision, recall,
median lead time and alert volume (per observed account-month and per owner-week). With
``keep_changes`` every health change is kept (compactly) for :mod:`churnwatch.tune`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from churnwatch.evaluation import (
    ANY_RISK,
    RISK_MOTIONS,
    UNOWNED,
    Fired,
    HorizonAuc,
    Opened,
    RuleScore,
    counted_from,
    horizon_auc,
    score_rules,
    volume,
)
from churnwatch.simulator import GroundTruth
from services.alerts import lifecycle
from services.alerts import rules as alert_rules
from services.alerts.routing import Route
from services.scoring import facts as scoring_facts
from services.scoring import health
from services.scoring.facts import Ledger
from services.scoring.health import SENTIMENT_TREND_DAYS, SENTIMENT_WINDOW_DAYS
from services.scoring.model import Model
from shared.events import AccountRecord, Event, HealthChange, HealthSnapshot

DEFAULT_HORIZONS = (7, 14, 30)
DEFAULT_SCORE_DELTA = 10.0  # SCORING_SCORE_DELTA_POINTS' default
DEFAULT_RESAMPLES = 200
END_OF_DAY = time(23, 59, 59)
_NO_ROUTE = Route((), ())
MAX_EXAMPLES = 5


class EventsOutOfOrder(ValueError):
    """An event's day comes before a day already scored: the events are not in time order."""


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class Change:
    """What the rules read of one health change (kept for tuning, without the components)."""

    change: HealthChange
    renewal_date: date | None


@dataclass(frozen=True)
class ModelResult:
    model_version: str
    path: str
    aucs: tuple[HorizonAuc, ...]
    rules: tuple[RuleScore, ...]
    alerts: int  # alerts counted in the judged period
    changes: int  # health changes over the whole run


@dataclass(frozen=True)
class BacktestResult:
    events: int
    accounts: int  # accounts seen (events or records)
    first_day: date
    last_day: date
    judged: tuple[date, date]  # the judged period, both days included
    labelled: int  # labelled accounts observed in the judged period
    churners: int  # of those, churned in the judged period
    account_days: int  # observed, not warming up, in the judged period
    warnings: tuple[str, ...]
    results: tuple[ModelResult, ...]
    # for churnwatch.tune: per model, every account's changes in time order (keep_changes)
    changes: tuple[dict[str, list[Change]], ...] = ()
    truth: tuple[GroundTruth, ...] = ()  # the labels as judged in the period
    owners: Mapping[str, str | None] = field(default_factory=dict)
    observed: Mapping[str, tuple[date, date]] = field(default_factory=dict)
    time_rules: bool = True  # the rules were also judged as time passed (the scheduler's way)

    @property
    def base_rate(self) -> float | None:
        return self.churners / self.labelled if self.labelled else None


# ---------------------------------------------------------------------------------------------
# One model's scores and alerts, day by day


@dataclass
class _ModelRun:
    model: Model
    ruleset: alert_rules.RuleSet
    keep_changes: bool
    previous: dict[str, health.Previous] = field(default_factory=dict)
    scores: dict[str, dict[date, float]] = field(default_factory=lambda: defaultdict(dict))
    history: dict[str, list[tuple[datetime, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    alerts: dict[str, dict[str, lifecycle.Alert]] = field(
        default_factory=lambda: defaultdict(dict)
    )  # open alerts by account, rule
    opened: list[Opened] = field(default_factory=list)
    index: dict[tuple[str, str], int] = field(default_factory=dict)  # open alert -> opened[i]
    kept: dict[str, list[Change]] = field(default_factory=lambda: defaultdict(list))
    changes: int = 0
    time_rules: bool = True
    # the alerts service's view for time-driven evaluations: latest change, when to look again
    latest: dict[str, HealthChange] = field(default_factory=dict)
    next_eval: dict[str, datetime | None] = field(default_factory=dict)
    renewal_used: dict[str, date | None] = field(default_factory=dict)
    time_evaluations: int = 0

    def assess(
        self,
        facts: health.Facts,
        record: AccountRecord | None,
        as_of: datetime,
        score_delta: float,
    ) -> None:
        account_id = facts.account_id
        self.resolve_due(account_id, as_of)
        assessed = health.assess(
            self.model, facts, self.previous.get(account_id), as_of, score_delta=score_delta
        )
        if assessed is None:
            return
        snapshot = assessed.snapshot
        self.previous[account_id] = assessed.previous(self.model.version, as_of)
        if not snapshot.warming_up:
            self.scores[account_id][as_of.date()] = snapshot.score
        change = assessed.change
        renewal = record.renewal_date if record else None
        if change is None:
            self.pass_time(account_id, renewal, as_of)
            return
        self.changes += 1
        if self.keep_changes:
            self.kept[account_id].append(Change(_compact(change), renewal))
        self.judge(account_id, change, renewal)

    def judge(self, account_id: str, change: HealthChange, renewal: date | None) -> None:
        """A health change, as the alerts service's consumer judges it (its ``as_of`` is the
        clock); then when time alone may next change a verdict."""
        history = self.history[account_id]
        context = alert_rules.Context(renewal_date=renewal, score_history=history)
        verdicts = alert_rules.evaluate(self.ruleset, change, context)
        self.apply(account_id, verdicts, change.as_of)
        history.append((change.as_of, change.after.score))
        self.latest[account_id] = change
        self.schedule(account_id, renewal, change.as_of)

    def schedule(self, account_id: str, renewal: date | None, since: datetime) -> None:
        if not self.time_rules:
            return
        latest = self.latest[account_id]
        context = alert_rules.Context(renewal_date=renewal, score_history=self.history[account_id])
        self.next_eval[account_id] = alert_rules.next_evaluation(
            self.ruleset, latest.after, latest.as_of, context, since
        )
        self.renewal_used[account_id] = renewal

    def pass_time(self, account_id: str, renewal: date | None, now: datetime) -> None:
        """The alerts scheduler's time-driven evaluation of the latest change, when due by
        ``now`` (or the renewal date changed)."""
        latest = self.latest.get(account_id)
        if not self.time_rules or latest is None:
            return
        due = self.next_eval.get(account_id)
        if renewal == self.renewal_used.get(account_id) and (due is None or due > now):
            return
        change = alert_rules.as_time_passes(
            account_id, latest.model_version, latest.after, latest.as_of, now
        )
        context = alert_rules.Context(renewal_date=renewal, score_history=self.history[account_id])
        self.apply(account_id, alert_rules.evaluate(self.ruleset, change, context), now)
        self.time_evaluations += 1
        self.schedule(account_id, renewal, now)

    def pass_time_until(self, account_id: str, until: datetime, *, inclusive: bool) -> None:
        """Every day-end time-driven evaluation before ``until`` (or at it, ``inclusive``), as
        a daily run with no change on those days would have made them."""
        while (due := self.next_eval.get(account_id)) is not None:
            at = datetime.combine(due.astimezone(UTC).date(), END_OF_DAY, UTC)
            if at > until or (at == until and not inclusive):
                return
            self.resolve_due(account_id, at)
            self.pass_time(account_id, self.renewal_used.get(account_id), at)

    def apply(self, account_id: str, verdicts: list[alert_rules.Verdict], now: datetime) -> None:
        """The alerts service's lifecycle with ``now`` as the clock: open, keep, clear."""
        current = self.alerts[account_id]
        by_name = {r.name: r for r in self.ruleset.rules}
        for alert in lifecycle.apply_verdicts(current, verdicts, by_name, _route, account_id, now):
            key = (account_id, alert.rule)
            if alert.is_open:
                if alert.rule not in current:
                    self.index[key] = len(self.opened)
                    self.opened.append(
                        Opened(account_id, alert.rule, alert.motion, alert.started_at, None)
                    )
                current[alert.rule] = alert
            else:
                self.close(key, alert.resolved_at or now)

    def resolve_due(self, account_id: str, now: datetime) -> None:
        """Alerts whose condition stayed away for ``keep_firing_for`` resolve (the scheduler)."""
        current = self.alerts.get(account_id)
        if not current:
            return
        for name, alert in list(current.items()):
            if alert.resolves_at is not None and alert.resolves_at <= now:
                resolved = lifecycle.resolve(alert, "rule", alert.resolves_at)
                self.close((account_id, name), resolved.resolved_at or now)

    def close(self, key: tuple[str, str], at: datetime) -> None:
        self.alerts[key[0]].pop(key[1], None)
        i = self.index.pop(key, None)
        if i is not None:
            alert = self.opened[i]
            self.opened[i] = Opened(alert.account_id, alert.rule, alert.motion, alert.started, at)

    def end(self, account_id: str, at: datetime) -> None:
        """The account is no longer observed: its open alerts end with it."""
        for name in list(self.alerts.get(account_id, {})):
            self.close((account_id, name), at)


def _route(_motion: alert_rules.Motion) -> Route:
    return _NO_ROUTE  # who would get it does not change whether it fires


def _compact(change: HealthChange) -> HealthChange:
    """The change without what no rule reads (components, reasons): a tenth of the memory."""

    def slim(s: HealthSnapshot | None) -> HealthSnapshot | None:
        if s is None:
            return None
        return HealthSnapshot(
            score=s.score, band=s.band, components=[], signals=s.signals, warming_up=s.warming_up
        )

    after = slim(change.after)
    assert after is not None
    return HealthChange(
        change_id="",
        account_id=change.account_id,
        as_of=change.as_of,
        model_version=change.model_version,
        before=slim(change.before),
        after=after,
        triggers=change.triggers,
    )


# ---------------------------------------------------------------------------------------------
# Facts, recomputed only when they can have changed

# Days after an event day on which it enters or leaves one of the facts' windows (a window of
# days ``newest``..``oldest`` before as_of: it enters on ``newest``, leaves on ``oldest + 1``).
_WINDOW_EDGES = frozenset(
    {0, 7, 14, 21, 28, 30, 35, 60, SENTIMENT_TREND_DAYS, SENTIMENT_WINDOW_DAYS}
)


def window_edges() -> frozenset[int]:
    """Every day offset at which a windowed count of the facts can change: the facts module's
    own windows (``services.scoring.facts.COUNTS``) when it defines them, and the known ones."""
    edges = set(_WINDOW_EDGES)
    for count in getattr(scoring_facts, "COUNTS", ()):
        windows = [count.window]
        if count.how == "weekly":
            windows += count.window.weeks()
        for window in windows:
            edges.update((window.newest, window.oldest + 1))
    return frozenset(edges)


class FactsCache:
    """An account's facts, recomputed by the ledger only on a day they can differ from the
    previous ones: it got events that day, its record changed, or one of its event days
    enters or leaves a window (:func:`window_edges`). Otherwise yesterday's facts are today's —
    every fact is a count over whole days or a moment, none reads the time of day."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._edges = sorted(window_edges() - {0})
        self._days: dict[str, set[int]] = defaultdict(set)
        self._fresh: set[str] = set()  # accounts with events on the day being scored
        self._cached: dict[str, tuple[health.Facts, AccountRecord | None]] = {}
        self.computed = 0
        self.reused = 0

    def folded(self, events: Sequence[Event], day: date) -> None:
        n = day.toordinal()
        self._fresh = {e.account_id for e in events}
        for account in self._fresh:
            self._days[account].add(n)

    def facts(
        self, account: str, day: date, as_of: datetime, record: AccountRecord | None
    ) -> health.Facts:
        cached = self._cached.get(account)
        if cached is not None and cached[1] is record and account not in self._fresh:
            n = day.toordinal()
            days = self._days.get(account, ())
            if not any((n - edge) in days for edge in self._edges):
                self.reused += 1
                return cached[0]
        facts = self._ledger.facts(account, as_of, record)
        self._cached[account] = (facts, record)
        self.computed += 1
        return facts


# ---------------------------------------------------------------------------------------------
# The run


def days_of(events: Iterable[Event]) -> Iterator[tuple[date, list[Event]]]:
    """The events grouped by UTC day of ``occurred_at``, for events in time order (by day);
    raises :class:`EventsOutOfOrder` at the first event of a day already passed."""
    day: date | None = None
    todays: list[Event] = []
    for event in events:
        d = event.occurred_at.astimezone(UTC).date()
        if d != day:
            if day is not None:
                if d < day:
                    raise EventsOutOfOrder(
                        f"an event of {d} ({event.event_id}) comes after events of {day}"
                    )
                yield day, todays
            day, todays = d, []
        todays.append(event)
    if day is not None:
        yield day, todays


def calendar(days: Iterable[tuple[date, list[Event]]]) -> Iterator[tuple[date, list[Event]]]:
    """Every calendar day from the first day to the last, empty days included."""
    previous: date | None = None
    for day, todays in days:
        if previous is not None:
            gap = previous + timedelta(days=1)
            while gap < day:
                yield gap, []
                gap += timedelta(days=1)
        yield day, todays
        previous = day


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # an account record without an updated_at: always


def run(
    events: Iterable[Event],
    labels: Sequence[GroundTruth],
    models: Sequence[tuple[Path, Model]],
    ruleset: alert_rules.RuleSet,
    *,
    records: Sequence[AccountRecord] = (),
    observed_until: Mapping[str, date] | None = None,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    judged: tuple[date | None, date | None] = (None, None),
    score_delta: float = DEFAULT_SCORE_DELTA,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    keep_changes: bool = False,
    time_rules: bool = True,
) -> BacktestResult:
    """Score every observed account at the end of every day with each model; judge the
    judged period. Events must come in time order (by day); records in any order."""
    observed_until = observed_until or {}
    churn_of = {t.account_id: t.churn_date for t in labels if t.churned and t.churn_date}
    ledger = Ledger()
    cache = FactsCache(ledger)
    runs = [_ModelRun(model, ruleset, keep_changes, time_rules=time_rules) for _, model in models]
    timeline = sorted(records, key=lambda r: r.updated_at)
    current: dict[str, AccountRecord] = {}
    first_seen: dict[str, date] = {}
    ended: dict[str, date] = {}  # account -> its last observed day, once passed
    live: set[str] = set()
    count = 0
    first_day: date | None = None
    last_day: date | None = None
    for day, todays in calendar(days_of(events)):
        first_day = first_day or day
        last_day = day
        count += len(todays)
        ledger.fold_day(todays)
        cache.folded(todays, day)
        as_of = datetime.combine(day, END_OF_DAY, UTC)
        for event in todays:
            account = event.account_id
            if account not in first_seen:
                first_seen[account] = day
                live.add(account)
        while timeline and timeline[0].updated_at <= as_of:
            changed = timeline.pop(0)
            current[changed.account_id] = changed
            if changed.account_id not in first_seen and changed.updated_at > EPOCH:
                first_seen[changed.account_id] = day
                live.add(changed.account_id)
        for account in sorted(live):
            last = _last_observed(account, churn_of, observed_until)
            if last is not None and day > last:
                live.discard(account)
                ended[account] = last
                end = datetime.combine(last, END_OF_DAY, UTC)
                for model_run in runs:
                    model_run.end(account, end)
                continue
            record = current.get(account)
            facts = cache.facts(account, day, as_of, record)
            for model_run in runs:
                model_run.assess(facts, record, as_of, score_delta)
    if first_day is None or last_day is None:
        raise ValueError("the event file holds no events")
    period = (judged[0] or first_day, judged[1] or last_day)
    if period[0] > period[1]:
        raise ValueError(f"the judged period is empty: {period[0]} to {period[1]}")
    observed = {
        a: (start, min(ended.get(a, last_day), observed_until.get(a, last_day)))
        for a, start in first_seen.items()
    }
    warnings = _label_warnings(labels, observed)
    truth = _truth_in(labels, observed, period)
    owners = {a: (r.team.csm or None) for a, r in current.items()}
    in_period = {t.account_id for t in truth}
    owner_count = len({owners.get(a) or UNOWNED for a in in_period})
    churn_dates = {t.account_id: t.churn_date for t in labels if t.account_id in observed}
    churn_dates = {a: (d if a in churn_of else None) for a, d in churn_dates.items()}
    begin = datetime.combine(period[0], time(), UTC)
    stop = datetime.combine(period[1] + timedelta(days=1), time(), UTC)
    rule_list = [(r.name, r.motion) for r in ruleset.rules]
    results = []
    account_days = 0
    for (path, model), model_run in zip(models, runs, strict=True):
        account_days = sum(
            1 for a in in_period for d in model_run.scores.get(a, {}) if period[0] <= d <= period[1]
        )
        fired = [f for f in counted_from(model_run.opened, begin) if f.at < stop]
        new = [  # opened in the period: what the owners would have received then
            Fired(o.account_id, o.rule, o.motion, o.started)
            for o in model_run.opened
            if begin <= o.started < stop and o.account_id in in_period
        ]
        scores = score_rules(rule_list, fired, truth)
        results.append(
            ModelResult(
                model_version=model.version,
                path=str(path),
                aucs=tuple(
                    horizon_auc(
                        model_run.scores,
                        churn_dates,
                        observed,
                        h,
                        resamples=resamples,
                        seed=seed,
                        days=period,
                    )
                    for h in horizons
                ),
                rules=tuple(
                    _with_volume(s, new, rule_list, account_days, owners, owner_count, period)
                    for s in scores
                ),
                alerts=len(fired),
                changes=model_run.changes,
            )
        )
    return BacktestResult(
        events=count,
        accounts=len(first_seen),
        first_day=first_day,
        last_day=last_day,
        judged=period,
        labelled=len(truth),
        churners=sum(1 for t in truth if t.churned),
        account_days=account_days,
        warnings=tuple(warnings),
        results=tuple(results),
        changes=tuple(dict(r.kept) for r in runs) if keep_changes else (),
        truth=tuple(truth),
        owners=owners,
        observed=observed,
        time_rules=time_rules,
    )


def _last_observed(
    account: str, churn_of: Mapping[str, date], observed_until: Mapping[str, date]
) -> date | None:
    churn = churn_of.get(account)
    until = observed_until.get(account)
    ends = [d for d in (churn - timedelta(days=1) if churn else None, until) if d is not None]
    return min(ends) if ends else None


def _truth_in(
    labels: Sequence[GroundTruth],
    observed: Mapping[str, tuple[date, date]],
    period: tuple[date, date],
) -> list[GroundTruth]:
    """The labelled accounts observed in the period; a churn outside it does not count."""
    truth = []
    for t in labels:
        window = observed.get(t.account_id)
        if window is None or window[1] < period[0] or window[0] > period[1]:
            continue
        churned = bool(t.churned and t.churn_date and period[0] <= t.churn_date <= period[1])
        truth.append(
            GroundTruth(
                t.account_id,
                t.story,
                churned,
                t.churn_date if churned else None,
                t.opportunity_date,
            )
        )
    return truth


def _label_warnings(
    labels: Sequence[GroundTruth], observed: Mapping[str, tuple[date, date]]
) -> list[str]:
    labelled = {t.account_id for t in labels}
    unmatched = sorted(labelled - set(observed))
    unlabelled = sorted(set(observed) - labelled)
    warnings = []
    if unmatched:
        warnings.append(
            f"{len(unmatched)} label(s) match no account of the data, left out: "
            + ", ".join(unmatched[:MAX_EXAMPLES])
            + (" …" if len(unmatched) > MAX_EXAMPLES else "")
        )
    if unlabelled:
        warnings.append(
            f"{len(unlabelled)} account(s) have no label, not judged: "
            + ", ".join(unlabelled[:MAX_EXAMPLES])
            + (" …" if len(unlabelled) > MAX_EXAMPLES else "")
        )
    return warnings


def _with_volume(
    score: RuleScore,
    new: Sequence[Fired],
    rules: Sequence[tuple[str, str]],
    account_days: int,
    owners: Mapping[str, str | None],
    owner_count: int,
    period: tuple[date, date],
) -> RuleScore:
    if score.rule == ANY_RISK:
        names = {name for name, motion in rules if motion in RISK_MOTIONS}
    else:
        names = {score.rule}
    mine = [f for f in new if f.rule in names]
    return replace(score, volume=volume(mine, account_days, owners, owner_count, period))


def replay_alerts(
    changes: Mapping[str, Sequence[Change]],
    ruleset: alert_rules.RuleSet,
    observed: Mapping[str, tuple[date, date]],
    *,
    time_rules: bool = True,
) -> list[Opened]:
    """The alerts ``ruleset`` opens over kept health changes (the rules and the lifecycle only,
    no rescoring): what :mod:`churnwatch.tune` tries each candidate threshold with. With
    ``time_rules`` the days between changes are judged as time passes, as in :func:`run`."""
    replay = _ModelRun(
        model=None,  # type: ignore[arg-type]
        ruleset=ruleset,
        keep_changes=False,
        time_rules=time_rules,
    )
    for account, kept in changes.items():
        for item in kept:
            change = item.change
            replay.pass_time_until(account, change.as_of, inclusive=False)
            replay.resolve_due(account, change.as_of)
            replay.judge(account, change, item.renewal_date)
        window = observed.get(account)
        if window is not None:
            end = datetime.combine(window[1], END_OF_DAY, UTC)
            replay.pass_time_until(account, end, inclusive=True)
            replay.resolve_due(account, end)
            replay.end(account, end)
    return replay.opened
