"""``churnwatch fit``: learn a health model from a team's own history and outcomes.

The input is what ``churnwatch backtest`` reads: events (JSONL or CSV), account records, and
the outcomes — a labels file (``account_id,churned,churn_date[,observed_until]``) or, without
one, the account records themselves (an account is lost on the ``updated_at`` of its first
record whose ``lifecycle_stage`` is ``churned``).

**Training data.** The events are folded day by day with scoring's own offline facts
(:class:`services.scoring.facts.Ledger`, held to the live SQL by a parity test); every
``train_step`` days while an account is observed (from its first event or record until its
churn date or the end of its data) and up to ``train_until``, its measure values
(:func:`services.scoring.health.measure_values`) make one row. Its label is the share of the
horizons (7, 14, 30, 60 days) within which it churns — 1 a week before churn, ¼ two months
before — so the score ranks the near churners first and still sees the far ones; the bands
use churn within ``horizon`` (30) days. A row whose outcome is not known by ``train_until`` is
left out: nothing from the hold-out period leaks into the fit.

**What is learned** (scikit-learn, the optional ``fit`` extra, imported only here):

- per measure, a *point curve*: an isotonic regression of the label on the value, forced
  monotone in the component's direction, turned into log-odds and scaled to 0–100 points
  (100 = the lowest risk seen) at up to ``MAX_KNOTS`` quantile knots;
- per component, the measures' shares (a logistic regression with non-negative weights on the
  measure points) and ``missing_points`` (the points whose churn rate matches that of accounts
  whose input is missing, never above 50: missing data never upgrades);
- the component weights: a logistic regression with non-negative weights on the component
  points, scaled to add up to 100 — so the score is a monotone transform of the model's
  log-odds and every contribution stays additive and explainable;
- per tier with enough accounts and churners, a profile with its own weights;
- the band cut-offs: red below the highest score under which the churn rate is at least
  ``red_lift`` × the base rate; green from the lowest score above which it is at most half the
  base rate.

The file keeps the base model's components, directions, data ages, thresholds and sentences,
and is loaded through :func:`services.scoring.model.load` — the service's own validation —
before anything is reported.

**The report** (JSON and HTML) judges on the hold-out — the days after ``train_until`` — with
``churnwatch.evaluation.horizon_auc`` (same-day AUC with observation windows and a bootstrap
interval): naive inactivity (active days of the last 7), the base model, the fitted model and a
black-box reference (scikit-learn gradient boosting on the same measure values), the churn rate
per band against the base rate, and each measure's learned curve as a small chart.

**Feedback on live alerts** (``--feedback feedback.csv``, :mod:`churnwatch.feedback`): the
verdicts are judgements of alerts, not churn outcomes, so they never enter the training label.
The report gains a section that, for each judged alert (its latest verdict), scores the
account with the fitted and the base model at the end of the day the verdict was given, and
says per rule how well each model's score separates the alerts judged useful or already known
from those judged not useful (mean score per verdict, AUC with a bootstrap interval when both
sides have ``FEEDBACK_MIN_PER_CLASS`` alerts) — does the refit agree with the team?
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import math
import random
import statistics
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from churnwatch import evaluation, files
from churnwatch.evaluation import HorizonAuc, horizon_auc
from churnwatch.feedback import CONFIRMING, VERDICTS, Verdict, latest
from services.scoring import health
from services.scoring import model as scoring_model
from services.scoring.facts import Ledger
from services.scoring.health import Facts
from services.scoring.model import CATALOG, Component, Model
from shared.events import AccountRecord, Event

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    FloatArray = NDArray[np.float64]

DEFAULT_HORIZON = 30
DEFAULT_HORIZONS = (7, 14, 30, 60)
RECENCY_MAX_AGE_DAYS = 3650
MAX_TRAINING_ROWS = 150_000  # the default train_step keeps the training rows about this many
MAX_CONTROLS = 600  # hold-out accounts scored a day besides the churners compared
DEFAULT_RED_LIFT = 2.0
MAX_KNOTS = 16
KNOT_TOLERANCE = 0.05  # points: an interior knot this close to the line through its neighbours goes
MIN_VALUES = 30  # fewer known values than this: the measure keeps a flat curve
PROFILE_MIN_ACCOUNTS = 100
PROFILE_MIN_CHURNERS = 25
MEASURES: tuple[tuple[str, str], ...] = tuple(
    (component, measure) for component, spec in CATALOG.items() for measure in spec.measures
)
COMPONENTS: tuple[str, ...] = tuple(CATALOG)
SCORERS = ("naive inactivity", "base model", "fitted model", "black box")
FEEDBACK_SCORERS = ("fitted model", "base model")
FEEDBACK_MIN_PER_CLASS = 5  # alerts on each side (useful or known / not useful) for an AUC
FEEDBACK_CONFIDENCE = 0.95
UNKNOWN_ACCOUNT = "unknown account"  # neither in the events, the records nor the labels
NO_DATA = "no data that day"  # before the account's first data, or after the events end


class FitError(ValueError):
    """The inputs cannot support a fit (no churners, no hold-out, ...)."""


# ---------------------------------------------------------------------------------------------
# Outcomes and observation windows


@dataclass(frozen=True, slots=True)
class Outcome:
    churn_date: date | None
    observed_until: date | None = None  # the last day its data covers, when the labels say


def outcomes_from_labels(
    path: Path, observed_until: Mapping[str, date] | None = None
) -> dict[str, Outcome]:
    until = observed_until if observed_until is not None else files.read_observed_until(path)
    return {
        t.account_id: Outcome(t.churn_date, until.get(t.account_id))
        for t in files.read_labels(path)
    }


def outcomes_from_records(records: Iterable[AccountRecord]) -> dict[str, Outcome]:
    """Every account of the records; lost on the first record that says ``churned``."""
    churned: dict[str, date] = {}
    accounts: set[str] = set()
    for record in sorted(records, key=lambda r: r.updated_at):
        accounts.add(record.account_id)
        if record.lifecycle_stage == "churned" and record.account_id not in churned:
            churned[record.account_id] = record.updated_at.astimezone(UTC).date()
    return {a: Outcome(churned.get(a)) for a in sorted(accounts)}


# ---------------------------------------------------------------------------------------------
# Collecting: one pass over the events, the fit in the middle


@dataclass
class Rows:
    """Training rows: measure values (NaN = none), unscored components, label, account, tier."""

    values: list[list[float]] = field(default_factory=list)
    unscored: list[list[bool]] = field(default_factory=list)
    labels: list[float] = field(default_factory=list)  # share of the horizons it churns within
    band_labels: list[int] = field(default_factory=list)  # churns within the band horizon
    accounts: list[str] = field(default_factory=list)
    tiers: list[str | None] = field(default_factory=list)


def fitting_frame(base: Model) -> Model:
    """The base model as the fit sees it: the same components, except that recency's data is
    never "too old" (``RECENCY_MAX_AGE_DAYS``) — its measures *are* the silence, so the learned
    curve, not a cut-off, says what a long silence costs."""
    components = tuple(
        dataclasses.replace(c, max_data_age_days=max(c.max_data_age_days, RECENCY_MAX_AGE_DAYS))
        if c.name == "recency"
        else c
        for c in base.default.components
    )
    default = dataclasses.replace(base.default, components=components)
    return dataclasses.replace(base, default=default, profiles=())


def row_of(base: Model, facts: Facts, as_of: datetime) -> tuple[list[float], list[bool]]:
    """The measure values (in :data:`MEASURES` order) and which components score as missing
    (their input missing or stale, or no absolute measure with a value) — as the scorer sees."""
    values = health.measure_values(facts, as_of)
    row = [math.nan if (v := values[m]) is None else float(v) for _, m in MEASURES]
    by_name = {c.name: c for c in base.default.components}
    unscored = []
    for name in COMPONENTS:
        component = by_name[name]
        status, _, _ = health.input_status(component, facts, as_of)
        absolute = any(
            values[m.name] is not None for m in component.measures if m.kind == "absolute"
        )
        lost = status == "missing" or (status == "stale" and not component.absence_is_zero)
        unscored.append(lost or not absolute)
    return row, unscored


@dataclass
class Inputs:
    events: Iterable[Event]  # in time order (a list is sorted)
    records: list[AccountRecord]
    outcomes: dict[str, Outcome]
    verdicts: Sequence[Verdict] | None = None  # feedback.csv; None: no feedback section


def every_day(events: Iterable[Event]) -> Iterator[tuple[date, list[Event]]]:
    """Every calendar day from the first event's to the last's, with that day's events.

    Streams: the events must come in time order (as ``churnwatch`` files are written; a list
    is sorted first). An event of an earlier day than the one before it is an error."""
    if isinstance(events, list):
        events = sorted(events, key=lambda e: e.occurred_at)
    day: date | None = None
    todays: list[Event] = []
    for number, event in enumerate(events, start=1):
        at = event.occurred_at.astimezone(UTC).date()
        if day is None:
            day = at
        if at < day:
            raise FitError(
                f"event {number} ({event.event_id}) is of {at}, after events of {day}: the "
                "events must be in time order"
            )
        while at > day:
            yield day, todays
            todays = []
            day += timedelta(days=1)
        todays.append(event)
    if day is not None:
        yield day, todays


def _end_of(day: date) -> datetime:
    return datetime.combine(day, clock_time(23, 59, 59), UTC)


@dataclass
class Observation:
    """When each account is observed: from its first event or record to its last day."""

    first: dict[str, date] = field(default_factory=dict)
    last_day: date | None = None  # None while the data is still being read

    def window(self, account: str, outcome: Outcome) -> tuple[date, date] | None:
        first = self.first.get(account)
        if first is None:
            return None
        last = self.last_day or date.max
        if outcome.observed_until is not None:
            last = min(last, outcome.observed_until)
        if outcome.churn_date is not None:
            last = min(last, outcome.churn_date - timedelta(days=1))
        return (first, last) if first <= last else None


@dataclass
class Holdout:
    """Hold-out scores per (scorer, horizon): account -> day -> score (lower = riskier)."""

    scores: dict[tuple[str, int], dict[str, dict[date, float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(dict))
    )
    bands: dict[str, dict[tuple[str, date], str]] = field(default_factory=lambda: defaultdict(dict))
    features: list[list[float]] = field(default_factory=list)  # the black box's, in batch
    keys: list[tuple[str, date, tuple[int, ...]]] = field(default_factory=list)
    warming_up: int = 0
    rows: int = 0


@dataclass
class Fitted:
    text: str  # the model file
    model: Model
    summary: dict[str, Any]
    black_box: Any  # a fitted scikit-learn classifier
    empty_columns: list[int]  # features never known in training, set to 0 for the black box


@dataclass(frozen=True)
class Judged:
    """One judged alert (its latest verdict) and its account's scores on the verdict's day."""

    verdict: Verdict
    day: date  # the UTC day the verdict was given
    scores: Mapping[str, float]  # scorer (FEEDBACK_SCORERS) -> score; empty when unscored
    unscored: str | None = None  # why not: UNKNOWN_ACCOUNT or NO_DATA


@dataclass
class FeedbackFacts:
    """While the events are folded: each judged account's facts at the end of its verdict's
    day (the fit scores day by day), kept until the fitted model exists to score them."""

    given: int = 0  # rows of feedback.csv
    waiting: dict[date, list[Verdict]] = field(default_factory=lambda: defaultdict(list))
    seen: list[tuple[Verdict, Facts, datetime]] = field(default_factory=list)

    @classmethod
    def of(cls, verdicts: Sequence[Verdict]) -> FeedbackFacts:
        collected = cls(given=len(verdicts))
        for v in latest(verdicts):
            collected.waiting[v.given_at.astimezone(UTC).date()].append(v)
        return collected

    def observe(
        self,
        day: date,
        ledger: Ledger,
        records: Mapping[str, AccountRecord],
        observed: Mapping[str, date],
    ) -> None:
        """Keep the facts of the accounts judged on ``day`` that have data by then."""
        as_of = _end_of(day)
        for v in self.waiting.get(day, ()):
            if v.account_id in observed:
                facts = ledger.facts(v.account_id, as_of, records.get(v.account_id))
                self.seen.append((v, facts, as_of))

    def judged(self, models: Mapping[str, Model], known: Iterable[str]) -> list[Judged]:
        """Every judged alert, scored by each model on its day, or why it could not be."""
        accounts = set(known)
        out = [
            Judged(
                v,
                as_of.date(),
                {n: health.evaluate(m, facts, as_of).snapshot.score for n, m in models.items()},
            )
            for v, facts, as_of in self.seen
        ]
        scored = {j.verdict.alert_id for j in out}
        for day, verdicts in self.waiting.items():
            for v in verdicts:
                if v.alert_id not in scored:
                    why = NO_DATA if v.account_id in accounts else UNKNOWN_ACCOUNT
                    out.append(Judged(v, day, {}, why))
        return sorted(out, key=lambda j: (j.verdict.given_at, j.verdict.alert_id))


def feedback_section(
    judged: Sequence[Judged], *, given: int, train_until: date, resamples: int, seed: int = 0
) -> dict[str, Any]:
    """The report's ``feedback`` section: per rule (and all rules), the verdicts of the scored
    alerts and how each model's score separates useful or known alerts from not useful ones."""
    scored = [j for j in judged if j.unscored is None]
    by_rule: dict[str, list[Judged]] = defaultdict(list)
    for j in scored:
        by_rule[j.verdict.rule].append(j)
    groups = sorted(by_rule.items())
    if groups:
        groups.append(("all rules", scored))
    return {
        "given": given,
        "alerts": len(judged),
        "scored": len(scored),
        "scored_until_train_until": sum(1 for j in scored if j.day <= train_until),
        "unscored": dict(Counter(j.unscored for j in judged if j.unscored is not None)),
        "min_per_class": FEEDBACK_MIN_PER_CLASS,
        "rules": [_rule_feedback(rule, items, resamples, seed) for rule, items in groups],
        "judged": [
            {
                "alert_id": j.verdict.alert_id,
                "account_id": j.verdict.account_id,
                "rule": j.verdict.rule,
                "verdict": j.verdict.verdict,
                "day": j.day.isoformat(),
                "scores": dict(j.scores),
                "unscored": j.unscored,
            }
            for j in judged
        ],
    }


def _rule_feedback(
    rule: str, judged: Sequence[Judged], resamples: int, seed: int
) -> dict[str, Any]:
    counts = {v: sum(1 for j in judged if j.verdict.verdict == v) for v in VERDICTS}
    models = {}
    for name in FEEDBACK_SCORERS:
        said = {v: [j.scores[name] for j in judged if j.verdict.verdict == v] for v in VERDICTS}
        confirming = [s for v in VERDICTS if v in CONFIRMING for s in said[v]]
        rejected = [s for v in VERDICTS if v not in CONFIRMING for s in said[v]]
        models[name] = {
            "mean_score": {v: statistics.fmean(s) if s else None for v, s in said.items()},
            **verdict_auc(confirming, rejected, resamples=resamples, seed=seed),
        }
    return {"rule": rule, **counts, "models": models}


def verdict_auc(
    confirming: Sequence[float], rejected: Sequence[float], *, resamples: int, seed: int = 0
) -> dict[str, Any]:
    """How often an alert judged useful or known scores lower (riskier) than one judged not
    useful (ties ½): :func:`churnwatch.evaluation.auc`, with a percentile bootstrap interval
    (each side resampled on its own, seeded). Fewer than ``FEEDBACK_MIN_PER_CLASS`` alerts on
    a side: no figure, "too few"."""
    if min(len(confirming), len(rejected)) < FEEDBACK_MIN_PER_CLASS:
        return {
            "auc": None,
            "low": None,
            "high": None,
            "note": f"too few: {len(confirming)} useful or known, {len(rejected)} not useful "
            f"(an AUC needs {FEEDBACK_MIN_PER_CLASS} of each)",
        }
    point = evaluation.auc(confirming, rejected)
    if resamples < 2:  # no interval from fewer than two resamples
        return {"auc": point, "low": None, "high": None, "note": None}
    rng = random.Random(seed)
    estimates = []
    for _ in range(resamples):
        value = evaluation.auc(
            rng.choices(confirming, k=len(confirming)), rng.choices(rejected, k=len(rejected))
        )
        assert value is not None  # both sides are non-empty
        estimates.append(value)
    tail = (1.0 - FEEDBACK_CONFIDENCE) / 2
    cuts = statistics.quantiles(estimates, n=round(1 / tail), method="inclusive")
    return {"auc": point, "low": cuts[0], "high": cuts[-1], "note": None}


def _label(outcome: Outcome, day: date, horizon: int, known_until: date) -> int | None:
    """1 when the account churns within ``horizon`` days after ``day``; None if not known."""
    churn = outcome.churn_date
    if churn is not None and churn <= known_until:
        return 1 if day < churn <= day + timedelta(days=horizon) else 0
    if day + timedelta(days=horizon) <= known_until:
        return 0
    return None


def _sampled(account: str, day: date, step: int) -> bool:
    return (day.toordinal() + zlib.crc32(account.encode())) % step == 0


def run(
    inputs: Inputs,
    base: Model,
    *,
    train_until: date,
    version: str,
    horizon: int = DEFAULT_HORIZON,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    train_step: int | None = None,
    label_horizons: Sequence[int] | None = None,
    red_lift: float = DEFAULT_RED_LIFT,
    resamples: int = 200,
) -> Report:
    """Fold the events; at ``train_until`` fit; then score the hold-out and judge."""
    started = time.perf_counter()
    outcomes = inputs.outcomes
    seen: set[str] = set()
    ledger = Ledger()
    frame = fitting_frame(base)
    targets_at = tuple(label_horizons or horizons)
    observation = Observation()
    # An account's earliest record holds from the start (a snapshot exported after the data,
    # or one without updated_at, is the best known); later versions from their updated_at.
    current: dict[str, AccountRecord] = {}
    timeline: list[AccountRecord] = []
    for version_of in sorted(inputs.records, key=lambda r: r.updated_at):
        if version_of.account_id in current:
            timeline.append(version_of)
        else:
            current[version_of.account_id] = version_of
    rows = Rows()
    holdout = Holdout()
    fitted: Fitted | None = None
    # Hold-out: every churner on each of its comparison days (churn − h) is scored; the others
    # are a fixed sample of accounts (by a hash of the id and the day), at most about
    # MAX_CONTROLS a day — the AUC does not change in expectation when one class is sampled.
    cases: dict[date, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for account, outcome in outcomes.items():
        if outcome.churn_date is not None:
            for h in horizons:
                cases[outcome.churn_date - timedelta(days=h)][account].append(h)
    control_step = max(1, math.ceil(len(outcomes) / MAX_CONTROLS))
    said = FeedbackFacts.of(inputs.verdicts) if inputs.verdicts is not None else None
    last_day: date | None = None
    for day, todays in every_day(inputs.events):
        if train_step is None:
            span = max(1, (train_until - day).days)
            train_step = max(1, math.ceil(len(outcomes) * span / MAX_TRAINING_ROWS))
        last_day = day
        ledger.fold_day(todays)
        as_of = _end_of(day)
        while timeline and timeline[0].updated_at <= as_of:
            change = timeline.pop(0)
            current[change.account_id] = change
            observation.first.setdefault(change.account_id, day)
        for event in todays:
            observation.first.setdefault(event.account_id, day)
            seen.add(event.account_id)
        if said is not None:
            said.observe(day, ledger, current, observation.first)
        if day > train_until and fitted is None:
            fitted = fit(
                rows, frame, version=version, red_lift=red_lift, horizon=horizon, targets=targets_at
            )
        todays_cases = cases.get(day, {})
        for account, outcome in outcomes.items():
            window = observation.window(account, outcome)
            if window is None or not window[0] <= day <= window[1]:
                continue
            record = current.get(account)
            if day <= train_until:
                if not _sampled(account, day, train_step):
                    continue
                targets = [_label(outcome, day, h, train_until) for h in (horizon, *targets_at)]
                if None in targets:
                    continue
                facts = ledger.facts(account, as_of, record)
                values, unscored = row_of(frame, facts, as_of)
                rows.values.append(values)
                rows.unscored.append(unscored)
                rows.labels.append(sum(targets[1:]) / len(targets_at))  # type: ignore[arg-type]
                rows.band_labels.append(targets[0] or 0)
                rows.accounts.append(account)
                rows.tiers.append(record.tier if record else None)
            else:
                assert fitted is not None
                sampled = _sampled(account, day, control_step)
                judged = list(horizons) if sampled else todays_cases.get(account, [])
                if not judged:
                    continue
                facts = ledger.facts(account, as_of, record)
                _score_holdout(
                    holdout, fitted, base, frame, facts, as_of, judged, calibrate=sampled
                )
    if last_day is None:
        raise FitError("the event file holds no events")
    if fitted is None:
        raise FitError(f"--train-until {train_until} leaves no hold-out: the data ends {last_day}")
    observation.last_day = last_day
    unmatched = sorted(seen - set(outcomes))
    _score_black_box(holdout, fitted)
    observed = {a: w for a, o in outcomes.items() if (w := observation.window(a, o)) is not None}
    report = _report(
        fitted,
        base,
        holdout,
        outcomes,
        observed,
        rows,
        train_until=train_until,
        last_day=last_day,
        horizon=horizon,
        horizons=horizons,
        resamples=resamples,
        unmatched=unmatched,
        seconds=time.perf_counter() - started,
    )
    if said is not None:
        known = seen | set(outcomes) | {r.account_id for r in inputs.records}
        scorers = {"fitted model": fitted.model, "base model": base}
        report.data["feedback"] = feedback_section(
            said.judged(scorers, known),
            given=said.given,
            train_until=train_until,
            resamples=resamples,
        )
    return report


def _score_holdout(
    holdout: Holdout,
    fitted: Fitted,
    base: Model,
    frame: Model,
    facts: Facts,
    as_of: datetime,
    horizons: Sequence[int],
    *,
    calibrate: bool,
) -> None:
    """Score one account-day with every scorer, for the horizons it is compared at (a sampled
    account at all, a churner only at those whose comparison day this is)."""
    day = as_of.date()
    account = facts.account_id
    holdout.rows += 1
    mine = health.evaluate(fitted.model, facts, as_of)
    shipped = health.evaluate(base, facts, as_of)
    holdout.warming_up += mine.snapshot.warming_up
    values, unscored = row_of(frame, facts, as_of)
    holdout.features.append(values + [float(u) for u in unscored])
    holdout.keys.append((account, day, tuple(horizons)))
    for h in horizons:
        holdout.scores["naive inactivity", h][account][day] = float(facts.active_days_7d)
        holdout.scores["base model", h][account][day] = shipped.snapshot.score
        holdout.scores["fitted model", h][account][day] = mine.snapshot.score
    if calibrate:  # a sampled row (not there because it churns): counted by band
        profile_of = fitted.model.profile_for(facts.tier, facts.lifecycle_stage)
        holdout.bands["fitted model"][account, day] = profile_of.band(mine.snapshot.score)
        base_profile = base.profile_for(facts.tier, facts.lifecycle_stage)
        holdout.bands["base model"][account, day] = base_profile.band(shipped.snapshot.score)


def _score_black_box(holdout: Holdout, fitted: Fitted) -> None:
    """The black box's scores, predicted in one batch (−probability: lower is riskier)."""
    import numpy as np

    if not holdout.keys:
        return
    features = np.array(holdout.features)
    features[:, fitted.empty_columns] = 0.0
    risk = fitted.black_box.predict(features)
    for (account, day, horizons), p in zip(holdout.keys, risk, strict=True):
        for h in horizons:
            holdout.scores["black box", h][account][day] = -float(p)


# ---------------------------------------------------------------------------------------------
# Fitting


@dataclass(frozen=True)
class Curve:
    knots: tuple[tuple[float, float], ...]
    informative: bool


def fit(
    rows: Rows,
    base: Model,
    *,
    version: str,
    red_lift: float,
    horizon: int,
    targets: Sequence[int],
) -> Fitted:
    """Learn curves, shares, missing points, weights, profiles and bands; write and load."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingRegressor

    if not rows.labels:
        raise FitError("no training rows before --train-until (is the date after the data?)")
    x = np.array(rows.values, dtype=float)
    lost = np.array(rows.unscored, dtype=bool)
    y = np.array(rows.labels, dtype=float)
    y_band = np.array(rows.band_labels, dtype=float)
    positives = int((y > 0).sum())
    if positives < 5 or positives == len(y):
        raise FitError(
            f"{positives} of {len(y)} training rows churn within {max(targets)} days: too few to "
            "learn from (is --train-until too early, or are the labels for other accounts?)"
        )
    components = {c.name: c for c in base.default.components}
    curves: dict[str, Curve] = {}
    points = np.full_like(x, np.nan)
    for j, (component, measure) in enumerate(MEASURES):
        present = ~np.isnan(x[:, j]) & ~lost[:, CATALOG_INDEX[component]]
        curve = learn_curve(x[present, j], y[present], components[component].direction)
        curves[measure] = curve
        column = np.interp(x[:, j], [k[0] for k in curve.knots], [k[1] for k in curve.knots])
        points[:, j] = np.where(np.isnan(x[:, j]), np.nan, column)
    shares: dict[str, float] = {}
    missing_points: dict[str, float] = {}
    component_points = np.zeros((len(y), len(COMPONENTS)))
    for c, name in enumerate(COMPONENTS):
        columns = [j for j, (comp, _) in enumerate(MEASURES) if comp == name]
        scored = ~lost[:, c]
        learned = learn_shares(points[scored][:, columns], y[scored], curves, columns)
        shares.update(learned)
        weights_of = np.array([learned[MEASURES[j][1]] for j in columns])
        block = points[:, columns]
        have = ~np.isnan(block)
        denominator = (have * weights_of).sum(axis=1)
        mean = np.where(
            denominator > 0,
            np.nansum(block * weights_of, axis=1) / np.where(denominator > 0, denominator, 1),
            np.nan,
        )
        scored &= ~np.isnan(mean)
        missing_points[name] = learn_missing_points(mean[scored], y[scored], y[~scored])
        component_points[:, c] = np.where(scored, mean, missing_points[name])
    weights = learn_weights(component_points, y)
    profiles = []
    tiers = np.array([t or "" for t in rows.tiers])
    accounts = np.array(rows.accounts)
    for tier in sorted(set(tiers) - {""}):
        mine = tiers == tier
        churners = len(set(accounts[mine & (y == 1)]))
        if len(set(accounts[mine])) < PROFILE_MIN_ACCOUNTS or churners < PROFILE_MIN_CHURNERS:
            continue
        try:
            profiles.append((tier, learn_weights(component_points[mine], y[mine])))
        except FitError:
            continue
    score = component_points @ np.array([weights[n] for n in COMPONENTS]) / 100.0
    for tier, tier_weights in profiles:
        mine = tiers == tier
        score[mine] = component_points[mine] @ np.array([tier_weights[n] for n in COMPONENTS]) / 100
    red, green, band_notes = learn_bands(score, y_band, red_lift)
    summary = {
        "training_rows": len(y),
        "training_accounts": len(set(rows.accounts)),
        "training_positives": positives,
        "base_rate": float(y_band.mean()),
        "label_horizons": list(targets),
        "weights": weights,
        "profiles": {tier: w for tier, w in profiles},
        "shares": shares,
        "missing_points": missing_points,
        "bands": {"red": [0, red], "yellow": [red, green], "green": [green, 100]},
        "band_choice": band_notes,
        "curves": {m: [list(k) for k in c.knots] for m, c in curves.items()},
        "uninformative": sorted(m for m, c in curves.items() if not c.informative),
    }
    text = model_text(
        base,
        version=version,
        horizon=horizon,
        curves=curves,
        shares=shares,
        missing_points=missing_points,
        weights=weights,
        profiles=profiles,
        bands=(red, green),
        summary=summary,
    )
    loaded = scoring_model.parse(text, source=f"{version} (fitted)")
    features = np.hstack([x, lost.astype(float)])
    empty = np.isnan(features).all(axis=0)  # a measure never known: a constant column
    features[:, empty] = 0.0
    black_box = HistGradientBoostingRegressor(  # on the same (soft) label as the scorecard
        max_iter=300, learning_rate=0.05, max_leaf_nodes=31, l2_regularization=1.0, random_state=0
    ).fit(features, y)
    return Fitted(text, loaded, summary, black_box, [int(i) for i in np.nonzero(empty)[0]])


CATALOG_INDEX = {name: i for i, name in enumerate(COMPONENTS)}


def learn_curve(values: FloatArray, labels: FloatArray, direction: str) -> Curve:
    """A monotone curve of points: isotonic churn rate → log-odds → 0–100 at quantile knots."""
    import numpy as np
    from sklearn.isotonic import IsotonicRegression

    rising_risk = direction == "lower_is_better"
    if len(values) < MIN_VALUES or labels.min() == labels.max():
        low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
        if high <= low:
            high = low + 1.0
        return Curve(((_round(low), 100.0), (_round(high), 100.0)), informative=False)
    iso = IsotonicRegression(increasing=rising_risk, out_of_bounds="clip").fit(values, labels)
    # knots where the data is, and where the churners are (a tail the rows seldom reach)
    steps = np.linspace(0.0, 1.0, 4 * MAX_KNOTS + 1)
    grid = np.unique(
        np.concatenate([np.quantile(values, steps), np.quantile(values[labels > 0], steps)])
    )
    if len(grid) < 2:
        grid = np.array([grid[0], grid[0] + 1.0])
    # the rate with a little shrinkage to the mean: no infinite log-odds at the ends
    prior = float(labels.mean())
    rate = (iso.predict(grid) * len(values) / len(grid) + prior) / (len(values) / len(grid) + 1)
    logit = np.log(rate / (1 - rate))
    spread = float(logit.max() - logit.min())
    if spread < 1e-6:
        return Curve(((_round(grid[0]), 100.0), (_round(grid[-1]), 100.0)), informative=False)
    # points: 100 at the lowest risk, 0 at the highest — monotone because the rate is
    pts = 100.0 * (logit.max() - logit) / spread
    knots = _simplify([(float(v), float(p)) for v, p in zip(grid, pts, strict=True)])
    return Curve(knots, informative=True)


def _round(value: float) -> float:
    return float(f"{value:.4g}")


def _simplify(knots: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """At most MAX_KNOTS knots: keep the ends and the points where the slope changes most,
    round values to 4 significant digits (kept ascending) and points to 0.1 (kept monotone)."""
    rounded: list[tuple[float, float]] = []
    for v, p in knots:
        value, pts = _round(v), round(p, 1)
        if rounded and value <= rounded[-1][0]:
            continue
        rounded.append((value, pts))
    # drop interior knots on a straight line (within KNOT_TOLERANCE) until few enough
    while len(rounded) > 2:
        errors = []
        for i in range(1, len(rounded) - 1):
            (v0, p0), (v1, p1), (v2, p2) = rounded[i - 1], rounded[i], rounded[i + 1]
            line = p0 + (p2 - p0) * (v1 - v0) / (v2 - v0)
            errors.append((abs(line - p1), i))
        error, i = min(errors)
        if error > KNOT_TOLERANCE and len(rounded) <= MAX_KNOTS:
            break
        del rounded[i]
    return tuple(rounded)


def learn_shares(
    points: FloatArray, labels: FloatArray, curves: Mapping[str, Curve], columns: Sequence[int]
) -> dict[str, float]:
    """The measures' shares in their component: non-negative logistic weights on the points
    (a missing measure takes the mean of the present ones, as the component's mean does)."""
    import numpy as np

    names = [MEASURES[j][1] for j in columns]
    if len(labels) == 0 or labels.min() == labels.max():
        return {n: 1.0 for n in names}
    filled = points.copy()
    row_mean = np.nanmean(np.where(np.isnan(filled).all(axis=1, keepdims=True), 50.0, filled), 1)
    holes = np.isnan(filled)
    filled[holes] = np.take(row_mean, np.nonzero(holes)[0])
    coefficients = _nonnegative_logistic(filled / 100.0, labels)
    total = float(coefficients.sum())
    shares = {}
    for n, c in zip(names, coefficients, strict=True):
        share = float(c) / total if total > 0 else 1.0 / len(names)
        if not curves[n].informative:
            share = 0.0
        shares[n] = round(max(share, 0.01), 3)  # a share is > 0 in the file
    return shares


def learn_missing_points(
    present: FloatArray, present_labels: FloatArray, lost: FloatArray
) -> float:
    """The points whose churn rate (among present rows) matches the rate of the rows whose input
    is missing — at most 50 (neutral): missing data never upgrades a score."""
    import numpy as np
    from sklearn.isotonic import IsotonicRegression

    if len(lost) < MIN_VALUES or len(present) < MIN_VALUES:
        return 0.0
    if present_labels.min() == present_labels.max():
        return 0.0
    iso = IsotonicRegression(increasing=False, out_of_bounds="clip").fit(present, present_labels)
    grid = np.arange(0.0, 50.5, 0.5)
    rate = iso.predict(grid)  # falls as the points rise
    target = float(lost.mean())
    at_least = grid[rate >= target]
    return float(at_least.max()) if len(at_least) else 0.0


def learn_weights(component_points: FloatArray, labels: FloatArray) -> dict[str, float]:
    """Component weights adding up to 100: non-negative logistic weights on the points."""
    coefficients = _nonnegative_logistic(component_points / 100.0, labels)
    total = float(coefficients.sum())
    if total <= 0:
        raise FitError("no component separates the churners from the others")
    raw = [100.0 * float(c) / total for c in coefficients]
    weights = [round(w, 1) for w in raw]
    top = max(range(len(weights)), key=lambda i: weights[i])
    weights[top] = round(weights[top] + 100.0 - sum(weights), 1)
    return dict(zip(COMPONENTS, weights, strict=True))


def _nonnegative_logistic(features: FloatArray, labels: FloatArray) -> FloatArray:
    """Logistic regression whose coefficients on health (higher = healthier) are ≥ 0 against
    churn: fitted on −features with non-negative bounds (L-BFGS-B), a free intercept, a light
    L2 penalty and balanced classes."""
    import numpy as np
    from scipy.optimize import minimize

    n, k = features.shape
    positive = float(labels.mean())  # labels may be soft (0–1): each side weighs half
    w1, w0 = 0.5 / positive, 0.5 / (1 - positive)
    design = -features
    penalty = 1e-3

    def loss(theta: FloatArray) -> tuple[float, FloatArray]:
        z = design @ theta[:k] + theta[k]
        p = 1.0 / (1.0 + np.exp(-z))
        eps = 1e-12
        value = -np.mean(w1 * labels * np.log(p + eps) + w0 * (1 - labels) * np.log(1 - p + eps))
        residual = (w1 * labels * (p - 1) + w0 * (1 - labels) * p) / n
        grad = np.concatenate([design.T @ residual, [residual.sum()]])
        value += penalty * float(theta[:k] @ theta[:k])
        grad[:k] += 2 * penalty * theta[:k]
        return float(value), grad

    start = np.concatenate([np.full(k, 0.1), [0.0]])
    bounds = [(0.0, None)] * k + [(None, None)]
    result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    coefficients: FloatArray = np.maximum(result.x[:k], 0.0)
    return coefficients


def learn_bands(score: FloatArray, labels: FloatArray, red_lift: float) -> tuple[int, int, str]:
    """The cut-offs from the churn rate *at* each score (an isotonic regression of churn on the
    score, falling as the score rises): red where it is at least ``red_lift`` × the base rate,
    green where it is at most half the base rate, yellow between."""
    import numpy as np
    from sklearn.isotonic import IsotonicRegression

    base = float(labels.mean())
    iso = IsotonicRegression(increasing=False, out_of_bounds="clip").fit(score, labels)
    grid = np.arange(0, 101)
    rate = iso.predict(grid.astype(float))
    notes = []
    high = grid[rate >= red_lift * base]
    red = int(high.max()) + 1 if len(high) else 0
    if red == 0 or red >= 99:
        red = max(1, min(98, int(np.quantile(score, 0.1))))
        notes.append(
            f"the churn rate is {'never' if not len(high) else 'everywhere'} ≥ {red_lift:g}× "
            "the base rate at a score: red is the lowest tenth of the training scores"
        )
    low = grid[(rate <= 0.5 * base) & (grid > red)]
    green = int(low.min()) if len(low) else 0
    if green == 0:
        green = min(99, max(red + 1, int(np.quantile(score, 0.5))))
        notes.append("the churn rate never falls to half the base rate: green is the upper half")
    green = max(green, red + 1)
    rate_red = float(labels[score < red].mean()) if (score < red).any() else float("nan")
    return (
        red,
        green,
        "; ".join(notes)
        or (
            f"red below {red}: the churn rate at those scores is ≥ {red_lift:g}× the base rate "
            f"({rate_red / base:.1f}× over the whole red band in training); green from {green}: "
            "at most half the base rate"
        ),
    )


# ---------------------------------------------------------------------------------------------
# The model file


def _number(value: float) -> str:
    return f"{value:g}" if value == int(value) or abs(value) >= 1e-4 else repr(value)


def model_text(
    base: Model,
    *,
    version: str,
    horizon: int,
    curves: Mapping[str, Curve],
    shares: Mapping[str, float],
    missing_points: Mapping[str, float],
    weights: Mapping[str, float],
    profiles: Sequence[tuple[str, Mapping[str, float]]],
    bands: tuple[int, int],
    summary: Mapping[str, Any],
) -> str:
    red, green = bands
    lines = [
        f"# The churnwatch health model {version}, learned by `churnwatch fit`.",
        "#",
        f"# Trained on {summary['training_rows']:,} account-days of "
        f"{summary['training_accounts']:,} accounts; label: the share of the horizons "
        f"{'/'.join(map(str, summary['label_horizons']))} days within which the account churns;",
        f"# bands from the churn within {horizon} days (base rate {summary['base_rate']:.1%}).",
        "# Curves: (value, points) knots, linear between, flat beyond; monotone in the",
        "# component's direction. docs/scoring.md and docs/fit.md explain each field.",
        "",
        f'version = "{version}"',
        'description = "Learned from history by churnwatch fit: curves, shares, weights and '
        'bands from the data (docs/fit.md)."',
        f"top_reasons = {base.top_reasons}",
        f"reason_below_points = {_number(base.reason_below_points)}",
        f"warm_up_days = {base.warm_up_days}",
        "",
        f'[[bands]]\nname = "red"\nfrom = 0\nto = {red}\n',
        f'[[bands]]\nname = "yellow"\nfrom = {red}\nto = {green}\n',
        f'[[bands]]\nname = "green"\nfrom = {green}\nto = 100\n',
    ]
    for component in base.default.components:
        lines += _component_text(component, weights, curves, shares, missing_points)
    for tier, tier_weights in profiles:
        listing = ", ".join(f"{n} = {_number(tier_weights[n])}" for n in COMPONENTS)
        lines += [
            "[[profiles]]",
            f'name = "tier-{tier}"',
            f"tier = [{json.dumps(tier)}]",
            f"weights = {{ {listing} }}",
            "",
        ]
    return "\n".join(lines) + "\n"


def _component_text(
    component: Component,
    weights: Mapping[str, float],
    curves: Mapping[str, Curve],
    shares: Mapping[str, float],
    missing_points: Mapping[str, float],
) -> list[str]:
    lines = [
        f"[components.{component.name}]",
        f"weight = {_number(weights[component.name])}",
        f'direction = "{component.direction}"',
        f"max_data_age_days = {_number(component.max_data_age_days)}",
        f"threshold_points = {_number(component.threshold_points)}",
        f"missing_points = {_number(missing_points[component.name])}",
        "measures = [",
    ]
    for measure in component.measures:
        knots = ", ".join(f"[{_number(v)}, {_number(p)}]" for v, p in curves[measure.name].knots)
        lines.append(
            f'  {{ name = "{measure.name}", kind = "{measure.kind}", '
            f"share = {_number(shares[measure.name])}, curve = [{knots}] }},"
        )
    return [*lines, "]", ""]


# ---------------------------------------------------------------------------------------------
# The report


@dataclass
class Report:
    fitted: Fitted
    data: dict[str, Any]


def _report(
    fitted: Fitted,
    base: Model,
    holdout: Holdout,
    outcomes: Mapping[str, Outcome],
    observed: Mapping[str, tuple[date, date]],
    rows: Rows,
    *,
    train_until: date,
    last_day: date,
    horizon: int,
    horizons: Sequence[int],
    resamples: int,
    unmatched: Sequence[str],
    seconds: float,
) -> Report:
    churn_dates = {a: o.churn_date for a, o in outcomes.items()}
    period = (train_until + timedelta(days=1), last_day)
    aucs: dict[str, list[dict[str, Any]]] = {}
    for name in SCORERS:
        aucs[name] = [
            _auc_json(
                horizon_auc(
                    holdout.scores[name, h],
                    churn_dates,
                    observed,
                    h,
                    resamples=resamples,
                    days=period,
                )
            )
            for h in horizons
        ]
    targets = _targets(aucs, horizons)
    calibration = {
        name: _calibration(bands, outcomes, horizon, last_day)
        for name, bands in holdout.bands.items()
    }
    data = {
        "version": fitted.model.version,
        "label_horizon_days": horizon,
        "train_until": train_until.isoformat(),
        "holdout": [period[0].isoformat(), period[1].isoformat()],
        "accounts": len(outcomes),
        "churners": sum(1 for o in outcomes.values() if o.churn_date is not None),
        "unmatched_accounts": len(unmatched),
        "holdout_rows": holdout.rows,
        "holdout_rows_warming_up": holdout.warming_up,
        "seconds": round(seconds, 1),
        "fit": fitted.summary,
        "auc": aucs,
        "targets": targets,
        "calibration": calibration,
        "base_model": base.version,
    }
    return Report(fitted, data)


def _auc_json(result: HorizonAuc) -> dict[str, Any]:
    return {
        "horizon": result.horizon,
        "auc": result.auc,
        "low": result.low,
        "high": result.high,
        "churners": result.churners,
        "pairs": result.pairs,
    }


def _targets(
    aucs: Mapping[str, list[dict[str, Any]]], horizons: Sequence[int]
) -> list[dict[str, Any]]:
    """Per horizon: fitted within 0.01 of the black box, and ≥ 0.08 above naive inactivity."""
    out = []
    for i, h in enumerate(horizons):
        fitted = aucs["fitted model"][i]["auc"]
        box = aucs["black box"][i]["auc"]
        naive = aucs["naive inactivity"][i]["auc"]
        vs_box = fitted - box if fitted is not None and box is not None else None
        vs_naive = fitted - naive if fitted is not None and naive is not None else None
        out.append(
            {
                "horizon": h,
                "fitted_minus_black_box": vs_box,
                "within_0.01_of_black_box": vs_box is not None and vs_box >= -0.01,
                "fitted_minus_naive": vs_naive,
                "at_least_0.08_above_naive": vs_naive is not None and vs_naive >= 0.08,
            }
        )
    return out


def _calibration(
    bands: Mapping[tuple[str, date], str],
    outcomes: Mapping[str, Outcome],
    horizon: int,
    last_day: date,
) -> dict[str, Any]:
    """Churn within ``horizon`` days per band on the sampled hold-out days, vs the base rate."""
    counts: dict[str, list[int]] = {b: [0, 0] for b in ("red", "yellow", "green")}
    for (account, day), band in bands.items():
        label = _label(outcomes[account], day, horizon, last_day)
        if label is None:
            continue
        counts[band][0] += 1
        counts[band][1] += label
    total = sum(c[0] for c in counts.values())
    churned = sum(c[1] for c in counts.values())
    base = churned / total if total else None
    return {
        "base_rate": base,
        "rows": total,
        "bands": {
            b: {
                "rows": n,
                "churn_rate": (k / n) if n else None,
                "lift": (k / n / base) if n and base else None,
            }
            for b, (n, k) in counts.items()
        },
    }


def write_report(report: Report, json_path: Path, html_path: Path) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report.data, indent=2, default=str) + "\n")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(render_html(report))


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render_html(report: Report) -> str:
    d = report.data
    fit_summary = d["fit"]
    esc = html.escape
    head = (
        "<!doctype html><meta charset='utf-8'><title>churnwatch fit — "
        f"{esc(d['version'])}</title><style>body{{font:14px system-ui;margin:2em;max-width:70em}}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}th{background:#f4f4f4}.ok{color:#070}.miss{color:#b00}"
        "figure{display:inline-block;margin:6px;font-size:12px}</style>"
    )
    out = [
        head,
        f"<h1>churnwatch fit: {esc(d['version'])}</h1>",
        f"<p>Trained until {d['train_until']} on {fit_summary['training_rows']:,} account-days of "
        f"{fit_summary['training_accounts']:,} accounts (label: the share of the horizons "
        f"{'/'.join(map(str, fit_summary['label_horizons']))} days within which the account "
        f"churns; bands and calibration: churn within {d['label_horizon_days']} days, base "
        f"rate {fit_summary['base_rate']:.1%}); judged on "
        f"the hold-out {d['holdout'][0]} – {d['holdout'][1]} ({d['holdout_rows']:,} account-days "
        f"scored, {d['holdout_rows_warming_up']:,} of them warming up). {d['accounts']:,} "
        f"accounts, {d['churners']:,} churners.</p>",
        "<h2>Hold-out AUC per horizon</h2>",
        "<p>Same-day AUC of the score h days before churn against the accounts observed that "
        "day that do not churn within h days; 95 % bootstrap interval over accounts.</p>",
        "<table><tr><th>scorer</th>",
    ]
    horizons = [a["horizon"] for a in next(iter(d["auc"].values()))]
    out += [f"<th>{h} days</th>" for h in horizons] + ["</tr>"]
    for name, results in d["auc"].items():
        cells = "".join(
            f"<td>{_fmt(r['auc'])} <small>[{_fmt(r['low'])}–{_fmt(r['high'])}]"
            f" n={r['churners']}</small></td>"
            for r in results
        )
        out.append(f"<tr><th>{esc(name)}</th>{cells}</tr>")
    out.append(
        "</table><h3>Targets</h3><table><tr><th>horizon</th><th>fitted − black box</th>"
        "<th>≥ −0.01</th><th>fitted − naive</th><th>≥ 0.08</th></tr>"
    )
    for t in d["targets"]:
        out.append(
            f"<tr><td>{t['horizon']}</td><td>{_fmt(t['fitted_minus_black_box'])}</td>"
            f"{_verdict(t['within_0.01_of_black_box'])}<td>{_fmt(t['fitted_minus_naive'])}</td>"
            f"{_verdict(t['at_least_0.08_above_naive'])}</tr>"
        )
    out.append(
        "</table><h2>Calibration by band (hold-out)</h2><p>A hashed sample of hold-out "
        "account-days, banded by score (an account still warming up would be shown yellow "
        "instead of red); churn within the band horizon per band against the base rate.</p>"
    )
    out.append(f"<p>{esc(fit_summary['band_choice'])}.</p>")
    for name, cal in d["calibration"].items():
        out.append(
            f"<h3>{esc(name)}</h3><table><tr><th>band</th><th>account-days</th>"
            f"<th>churn within {d['label_horizon_days']} days</th><th>× base rate</th></tr>"
        )
        for band, row in cal["bands"].items():
            out.append(
                f"<tr><td>{band}</td><td>{row['rows']:,}</td><td>{_pct(row['churn_rate'])}</td>"
                f"<td>{_fmt(row['lift'], 2)}</td></tr>"
            )
        out.append(
            f"<tr><th>all</th><td>{cal['rows']:,}</td><td>{_pct(cal['base_rate'])}</td>"
            "<td>1.00</td></tr></table>"
        )
    out.append("<h2>Weights</h2><table><tr><th>profile</th>")
    out += [f"<th>{c}</th>" for c in COMPONENTS] + ["</tr>"]
    for profile, weights in [("default", fit_summary["weights"]), *fit_summary["profiles"].items()]:
        out.append(
            f"<tr><th>{esc(profile)}</th>"
            + "".join(f"<td>{weights[c]:g}</td>" for c in COMPONENTS)
            + "</tr>"
        )
    if "feedback" in d:
        out += _feedback_html(d["feedback"], d["train_until"])
    out.append("</table><h2>Learned shapes (points by value)</h2>")
    for component, measure in MEASURES:
        knots = fit_summary["curves"][measure]
        share = fit_summary["shares"][measure]
        out.append(
            f"<figure>{curve_svg(knots)}<figcaption>{esc(component)}.{esc(measure)} "
            f"(share {share:g})</figcaption></figure>"
        )
    return "".join(out) + "\n"


def _feedback_html(section: Mapping[str, Any], train_until: str) -> list[str]:
    esc = html.escape
    unscored = ", ".join(f"{n} {esc(why)}" for why, n in sorted(section["unscored"].items()))
    out = [
        "</table><h2>Feedback on live alerts</h2>",
        f"<p>{section['given']:,} verdicts in the file, {section['alerts']:,} alerts judged (each "
        f"by its latest verdict), {section['scored']:,} scored"
        + (f" ({unscored})" if unscored else "")
        + f"; {section['scored_until_train_until']:,} of them on or before {esc(train_until)}. "
        "Each account is scored by both models at the end of the day the verdict was given. AUC: "
        "how often an alert judged useful or already known scores lower (riskier) than one "
        "judged not useful — agreement with the team's verdicts, not churn; 0.5 is none. "
        f"It needs {section['min_per_class']} alerts on each side. The verdicts are never part "
        "of the training label.</p>",
    ]
    if not section["rules"]:
        return [*out, "<p>No scored verdicts to judge by.</p><table>"]
    out.append(
        "<table><tr><th rowspan='2'>rule</th>"
        + "".join(f"<th rowspan='2'>{_said(v)}</th>" for v in VERDICTS)
        + "".join(f"<th colspan='2'>{esc(n)}</th>" for n in FEEDBACK_SCORERS)
        + "</tr><tr>"
        + f"<th>mean score ({' / '.join(map(_said, VERDICTS))})</th><th>AUC [95 %]</th>" * 2
        + "</tr>"
    )
    for row in section["rules"]:
        cells = []
        for name in FEEDBACK_SCORERS:
            m = row["models"][name]
            means = " / ".join(_fmt(m["mean_score"][v], 1) for v in VERDICTS)
            figure = (
                f"{_fmt(m['auc'])} <small>[{_fmt(m['low'])}–{_fmt(m['high'])}]</small>"
                if m["auc"] is not None
                else esc(m["note"])
            )
            cells.append(f"<td>{means}</td><td>{figure}</td>")
        out.append(
            f"<tr><th>{esc(row['rule'])}</th>"
            + "".join(f"<td>{row[v]:,}</td>" for v in VERDICTS)
            + "".join(cells)
            + "</tr>"
        )
    return out


def _said(verdict: str) -> str:
    return verdict.replace("_", " ")


def _verdict(ok: bool) -> str:
    return "<td class='ok'>met</td>" if ok else "<td class='miss'>missed</td>"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def curve_svg(knots: Sequence[Sequence[float]], width: int = 180, height: int = 90) -> str:
    """A small inline SVG of a curve: points (0–100) up, the value across."""
    low, high = knots[0][0], knots[-1][0]
    span = (high - low) or 1.0
    pad = 4

    def xy(v: float, p: float) -> str:
        x = pad + (width - 2 * pad) * (v - low) / span
        y = height - pad - (height - 2 * pad) * p / 100.0
        return f"{x:.1f},{y:.1f}"

    path = " ".join(xy(v, p) for v, p in knots)
    return (
        f"<svg width='{width}' height='{height + 14}' viewBox='0 0 {width} {height + 14}' "
        "xmlns='http://www.w3.org/2000/svg'>"
        f"<rect x='0' y='0' width='{width}' height='{height}' fill='#fafafa' stroke='#ddd'/>"
        f"<polyline points='{path}' fill='none' stroke='#2563eb' stroke-width='2'/>"
        f"<text x='2' y='{height + 11}' font-size='10'>{low:g}</text>"
        f"<text x='{width - 2}' y='{height + 11}' font-size='10' text-anchor='end'>{high:g}</text>"
        "</svg>"
    )


# ---------------------------------------------------------------------------------------------
# The command


def add_arguments(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("events", type=Path, help="events (.jsonl or .csv)")
    cmd.add_argument(
        "--labels",
        type=Path,
        help="labels.csv (account_id,churned,churn_date[,observed_until]); default: churn from "
        "the account records' lifecycle_stage",
    )
    cmd.add_argument(
        "--accounts",
        type=Path,
        action="append",
        help="account records (CSV); default: accounts.csv and account-changes.csv beside EVENTS",
    )
    cmd.add_argument(
        "--train-until",
        type=date.fromisoformat,
        required=True,
        help="last day of the training period (YYYY-MM-DD); later days are the hold-out",
    )
    cmd.add_argument("--out", type=Path, required=True, help="the model file to write")
    cmd.add_argument("--version", help="the model's version (default: the file name's stem)")
    cmd.add_argument("--base", type=Path, help="the model to start from (default: the service's)")
    cmd.add_argument(
        "--horizon",
        type=int,
        default=DEFAULT_HORIZON,
        help="bands and calibration: churn within N days (default 30)",
    )
    cmd.add_argument(
        "--horizons",
        default="7,14,30,60",
        help="days before churn: the label's horizons and the hold-out AUC's (default 7,14,30,60)",
    )
    cmd.add_argument(
        "--train-step",
        type=int,
        help="days between an account's training rows (default: about 150,000 rows in all)",
    )
    cmd.add_argument(
        "--red-lift", type=float, default=DEFAULT_RED_LIFT, help="red: churn ≥ this × base"
    )
    cmd.add_argument("--resamples", type=int, default=200, help="bootstrap resamples (0: none)")
    cmd.add_argument(
        "--report", type=Path, help="the report's HTML (JSON beside it); default: OUT's"
    )
    cmd.add_argument(
        "--feedback",
        type=Path,
        help="feedback.csv (churnwatch feedback export): the report says per rule how the fitted "
        "and the base model's scores separate alerts judged useful or known from not useful; "
        "never part of the training label",
    )


def _beside(events: Path) -> list[Path]:
    names = ("accounts.csv", "account-changes.csv")
    return [p for p in (events.with_name(n) for n in names) if p.exists()]


def command(args: argparse.Namespace, out: TextIO) -> int:
    """``churnwatch fit``: raises :class:`ValueError` subclasses for bad input (exit 2)."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise FitError(
            "churnwatch fit needs the `fit` extra: pip install 'churnwatch[fit]' "
            "(or the dev lock, requirements-dev.lock)"
        ) from None
    said = files.read_feedback(args.feedback) if args.feedback is not None else None
    base = scoring_model.load(args.base or scoring_model.DEFAULT_MODEL_FILE)
    now = datetime.now(UTC)
    account_files = args.accounts or _beside(args.events)
    records = [r for f in account_files for r in files.read_accounts(f, now=now)]
    events = files.read_events(args.events)  # streamed: the files are in time order
    if args.labels is not None:
        outcomes = outcomes_from_labels(args.labels)
    else:
        outcomes = outcomes_from_records(records)
        if not any(o.churn_date for o in outcomes.values()):
            raise FitError("no --labels and no account record says lifecycle_stage = churned")
    version = args.version or args.out.stem
    horizons = [int(h) for h in args.horizons.split(",") if h.strip()]
    report = run(
        Inputs(events, records, outcomes, said),
        base,
        train_until=args.train_until,
        version=version,
        horizon=args.horizon,
        horizons=horizons,
        train_step=args.train_step,
        red_lift=args.red_lift,
        resamples=args.resamples,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report.fitted.text)
    scoring_model.load(args.out)  # what the service will load, validated the same way
    html_path = args.report or args.out.with_suffix(".html")
    json_path = html_path.with_suffix(".json")
    write_report(report, json_path, html_path)
    out.write(summary_text(report, args.out, html_path, json_path) + "\n")
    return 0


def summary_text(report: Report, model_path: Path, html_path: Path, json_path: Path) -> str:
    d = report.data
    lines = [
        f"Fitted {d['version']} → {model_path} (trained until {d['train_until']}, "
        f"hold-out {d['holdout'][0]} – {d['holdout'][1]}, {d['seconds']} s)",
        f"  report: {html_path}, {json_path}",
        "  hold-out AUC   " + "".join(f"{a['horizon']:>8}d" for a in d["auc"]["fitted model"]),
    ]
    for name, results in d["auc"].items():
        lines.append(f"  {name:<15}" + "".join(f"{_fmt(r['auc']):>9}" for r in results))
    for t in d["targets"]:
        lines.append(
            f"  {t['horizon']}d: fitted − black box {_fmt(t['fitted_minus_black_box'])} "
            f"({'met' if t['within_0.01_of_black_box'] else 'MISSED'}), fitted − naive "
            f"{_fmt(t['fitted_minus_naive'])} "
            f"({'met' if t['at_least_0.08_above_naive'] else 'MISSED'})"
        )
    if d["unmatched_accounts"]:
        lines.append(f"  warning: {d['unmatched_accounts']} accounts with events have no label")
    if "feedback" in d:
        lines += feedback_lines(d["feedback"])
    return "\n".join(lines)


def feedback_lines(section: Mapping[str, Any]) -> list[str]:
    """The feedback section in a few lines: per rule, each model's AUC or why there is none."""
    unscored = ", ".join(f"{n} {why}" for why, n in sorted(section["unscored"].items()))
    lines = [
        f"  feedback: {section['alerts']} alerts judged, {section['scored']} scored"
        + (f" ({unscored})" if unscored else "")
        + "; AUC of useful or known against not useful (lower score = riskier):"
    ]
    if not section["rules"]:
        lines.append("    no verdicts to judge by")
    for row in section["rules"]:
        cells = []
        for name in FEEDBACK_SCORERS:
            m = row["models"][name]
            figure = (
                f"{_fmt(m['auc'])} [{_fmt(m['low'])}–{_fmt(m['high'])}]"
                if m["auc"] is not None
                else m["note"]
            )
            cells.append(f"{name} {figure}")
        counts = "/".join(str(row[v]) for v in VERDICTS)
        lines.append(f"    {row['rule']} ({counts} {'/'.join(VERDICTS)}): " + "; ".join(cells))
    return lines
