"""How well alerts and scores foretold what happened: pure functions over plain data.

Used by the demo's report (on what the pipeline produced) and by ``churnwatch backtest`` (on
what the scoring and rule code compute offline). The ground truth is a list of
:class:`~churnwatch.simulator.GroundTruth`.

**A rule's target.** Risk rules (motions ``adoption``, ``renewal``) are judged against churn;
the ``expansion`` rule against accounts whose story is an expansion, ``advocacy`` against
advocates — each positive account has its *event date* (the churn date, the opportunity date).

**Per rule**, over the accounts of the run:

- *alerted*: accounts the rule alerted on at least once;
- *precision* = alerted accounts that are positives ÷ alerted accounts — was the alert about a
  real problem (or opportunity)?
- *caught*: positives alerted in time — for churn, on a day before the churn date (an alert
  once the customer is gone helps nobody); for an opportunity, at any time in the run;
- *recall* = caught ÷ positives; *late* = positives alerted only on or after their churn date;
- *lead time* of a caught account = its event date − the day of the rule's first alert on it,
  in days (negative for an opportunity noticed after its date); the median is reported.

**AUC of the health score at a horizon** ``h``: each churner's score ``h`` days before its churn
date is compared with the scores of the accounts that did not churn *on that same day*; the AUC
is the share of those (churner, non-churner) pairs in which the churner scores lower, ties
counting one half. 1.0: the score always ranks the churner as riskier; 0.5: no better than
chance. Comparing on the same day keeps seasonality and the age of the data out of it.

:func:`horizon_auc` is that AUC with *observation windows* (the backtest's and the fit report's
definition): an account is compared only on days it is observed — from its first event or record
until the day before its churn date or the end of its data. On day ``t = churn − h`` a churner
(observed on ``t``) is compared with the *controls* of ``t``: accounts observed on ``t`` and known
not to churn by ``t + h`` (an account that did not churn must be observed through ``t + h``; one
that churns later than ``t + h`` is a control until then). Its confidence interval is a
percentile bootstrap over *accounts* (resampled with replacement, seeded): an account drawn twice
counts twice on every day it is compared, as a churner and as a control.

**Alert volume** (:class:`Volume`): new alerts per observed account-month (30.44 days) and per
owner-week (the mean over every owner and every week of the judged period; an owner is an
account's CSM, accounts without one share one "unowned" owner), and the busiest owner-week.
"""

from __future__ import annotations

import random
import statistics
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import accumulate
from operator import itemgetter

from churnwatch.simulator import GroundTruth

RISK_MOTIONS = frozenset({"adoption", "renewal"})
OPPORTUNITY_STORY = {"expansion": "expansion", "advocacy": "advocate"}
ANY_RISK = "any risk alert"
DAYS_PER_MONTH = 30.44
UNOWNED = "(no CSM)"


@dataclass(frozen=True, slots=True)
class Fired:
    """A rule alerted on an account at ``at`` (one row per alert; repeats are fine)."""

    account_id: str
    rule: str
    motion: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Volume:
    """How many new alerts a rule raised over the judged period (see the module docstring)."""

    alerts: int
    account_months: float  # observed account-months in the period
    owners: int
    weeks: float
    busiest_owner_week: int  # the most alerts one owner got in one (Monday-based) week

    @property
    def per_account_month(self) -> float | None:
        return self.alerts / self.account_months if self.account_months else None

    @property
    def per_owner_week(self) -> float | None:
        return self.alerts / (self.owners * self.weeks) if self.owners and self.weeks else None


def volume(
    fired: Iterable[Fired],
    account_days: float,
    owner_of: Mapping[str, str | None],
    owners: int,
    period: tuple[date, date],
) -> Volume:
    """The volume of ``fired`` (one row per new alert) over ``period`` (both days included);
    ``account_days``: observed account-days in the period; ``owners``: how many owners."""
    alerts = 0
    per_owner_week: Counter[tuple[str, date]] = Counter()
    for f in fired:
        alerts += 1
        day = f.at.date()
        week = day - timedelta(days=day.weekday())
        per_owner_week[(owner_of.get(f.account_id) or UNOWNED, week)] += 1
    return Volume(
        alerts=alerts,
        account_months=account_days / DAYS_PER_MONTH,
        owners=owners,
        weeks=((period[1] - period[0]).days + 1) / 7,
        busiest_owner_week=max(per_owner_week.values(), default=0),
    )


@dataclass(frozen=True, slots=True)
class RuleScore:
    rule: str
    target: str  # "churn", "expansion", "advocate"
    positives: int
    alerted: int  # accounts
    true_alerted: int  # alerted accounts that are positives
    caught: int
    late: int
    lead_days: tuple[float, ...]  # one per caught account
    volume: Volume | None = None  # set by the backtest: how many alerts, per account and owner

    @property
    def precision(self) -> float | None:
        return self.true_alerted / self.alerted if self.alerted else None

    @property
    def recall(self) -> float | None:
        return self.caught / self.positives if self.positives else None

    @property
    def median_lead_days(self) -> float | None:
        return statistics.median(self.lead_days) if self.lead_days else None


@dataclass(frozen=True, slots=True)
class Opened:
    """An alert: opened at ``started``, over at ``ended`` (None while still open)."""

    account_id: str
    rule: str
    motion: str
    started: datetime
    ended: datetime | None


def counted_from(opened: Iterable[Opened], begin: datetime) -> list[Fired]:
    """The alerts that count from ``begin`` (the end of an onboarding silence or warm-up): one
    that started earlier counts from ``begin`` if it was still open then (that is when its
    owner heard of it), not at all if it was over by then."""
    fired: list[Fired] = []
    for alert in opened:
        if alert.started >= begin:
            fired.append(Fired(alert.account_id, alert.rule, alert.motion, alert.started))
        elif alert.ended is None or alert.ended > begin:
            fired.append(Fired(alert.account_id, alert.rule, alert.motion, begin))
    return fired


def target_of(rule: str, motion: str) -> str:
    if motion in RISK_MOTIONS:
        return "churn"
    return OPPORTUNITY_STORY.get(motion, OPPORTUNITY_STORY.get(rule, motion))


def event_dates(truth: Iterable[GroundTruth], target: str) -> dict[str, date]:
    """The positives of a target and their event dates."""
    if target == "churn":
        return {t.account_id: t.churn_date for t in truth if t.churned and t.churn_date}
    return {
        t.account_id: t.opportunity_date
        for t in truth
        if t.story == target and t.opportunity_date is not None
    }


def score_rule(
    rule: str, target: str, fired: Sequence[Fired], truth: Sequence[GroundTruth]
) -> RuleScore:
    """Precision, recall, lateness and lead times of one rule (see the module docstring)."""
    positives = event_dates(truth, target)
    known = {t.account_id for t in truth}
    first: dict[str, datetime] = {}
    for f in fired:
        if f.account_id in known and (f.account_id not in first or f.at < first[f.account_id]):
            first[f.account_id] = f.at
    caught: list[float] = []
    late = 0
    for account, when in first.items():
        event = positives.get(account)
        if event is None:
            continue
        if target == "churn" and when.date() >= event:
            late += 1
            continue
        caught.append(float((event - when.date()).days))
    return RuleScore(
        rule=rule,
        target=target,
        positives=len(positives),
        alerted=len(first),
        true_alerted=sum(1 for a in first if a in positives),
        caught=len(caught),
        late=late,
        lead_days=tuple(sorted(caught)),
    )


def score_rules(
    rules: Sequence[tuple[str, str]], fired: Iterable[Fired], truth: Sequence[GroundTruth]
) -> list[RuleScore]:
    """One score per ``(rule, motion)``, in that order, then one for any risk alert at all."""
    by_rule: dict[str, list[Fired]] = {}
    for f in fired:
        by_rule.setdefault(f.rule, []).append(f)
    scores = [
        score_rule(rule, target_of(rule, motion), by_rule.get(rule, []), truth)
        for rule, motion in rules
    ]
    risk = [f for rule, motion in rules if motion in RISK_MOTIONS for f in by_rule.get(rule, [])]
    scores.append(score_rule(ANY_RISK, "churn", risk, truth))
    return scores


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """The share of (positive, negative) pairs in which the positive scores lower (ties: ½).

    Lower is riskier here: a health score. None when either side is empty.
    """
    if not positives or not negatives:
        return None
    ordered = sorted(negatives)
    wins = 0.0
    for score in positives:
        below = _count_below(ordered, score)
        equal = _count_below(ordered, score, inclusive=True) - below
        wins += len(ordered) - below - equal + equal / 2
    return wins / (len(positives) * len(negatives))


def auc_same_day(
    churner_scores: Iterable[tuple[date, float]], others_by_day: Mapping[date, Sequence[float]]
) -> tuple[float | None, int]:
    """AUC comparing each churner's score with the non-churners' scores of the same day.

    Returns the AUC and the number of churners that had comparable scores that day.
    """
    wins = 0.0
    pairs = 0
    churners = 0
    for day, score in churner_scores:
        others = others_by_day.get(day, ())
        if not others:
            continue
        churners += 1
        below = sum(1 for other in others if other < score)
        equal = sum(1 for other in others if other == score)
        wins += len(others) - below - equal + equal / 2
        pairs += len(others)
    return (wins / pairs if pairs else None), churners


def _count_below(ordered: Sequence[float], value: float, *, inclusive: bool = False) -> int:
    low, high = 0, len(ordered)
    while low < high:
        middle = (low + high) // 2
        if ordered[middle] < value or (inclusive and ordered[middle] == value):
            low = middle + 1
        else:
            high = middle
    return low


# ---------------------------------------------------------------------------------------------
# Same-day AUC at a horizon, with observation windows and a bootstrap interval


@dataclass(frozen=True, slots=True)
class HorizonAuc:
    horizon: int  # days before churn
    auc: float | None  # None: no churner could be compared
    low: float | None  # the bootstrap interval (None without resamples or comparisons)
    high: float | None
    churners: int  # churners compared
    pairs: int  # (churner, control) pairs compared


@dataclass(slots=True)
class _Day:
    """One day's comparisons: the controls in score order, the churners' ranks among them."""

    controls: list[int]  # account indices, by score
    churners: list[tuple[int, int, int]]  # (account index, controls below, controls at or below)


def horizon_auc(
    scores: Mapping[str, Mapping[date, float]],
    churn_dates: Mapping[str, date | None],
    observed: Mapping[str, tuple[date, date]],
    horizon: int,
    *,
    resamples: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
    days: tuple[date, date] | None = None,
) -> HorizonAuc:
    """The same-day AUC ``horizon`` days before churn, with observation windows (module
    docstring), and a percentile bootstrap interval over accounts.

    ``scores``: account → day → score, lower is riskier (pass −p for a churn probability p).
    ``churn_dates``: every labelled account, None when it did not churn; accounts missing here
    are not compared. ``observed``: account → (first, last) day it is observed, both included.
    ``days``: only churners whose comparison day falls in this range (a hold-out period).
    """
    ids = sorted(a for a in churn_dates if a in observed)
    index = {a: i for i, a in enumerate(ids)}
    gap = timedelta(days=horizon)
    by_day: dict[date, list[int]] = defaultdict(list)  # comparison day -> churners
    for a in ids:
        churn = churn_dates[a]
        if churn is None:
            continue
        day = churn - gap
        first, last = observed[a]
        if first <= day <= last and day in scores.get(a, {}) and _within(day, days):
            by_day[day].append(index[a])
    compared: list[_Day] = []
    for day, churners in sorted(by_day.items()):
        reach = day + gap
        controls: list[tuple[float, int]] = []
        for a in ids:
            first, last = observed[a]
            churn = churn_dates[a]
            survives = last >= reach if churn is None else churn > reach
            score = scores.get(a, {}).get(day)
            if score is not None and first <= day <= last and survives:
                controls.append((score, index[a]))
        if not controls:
            continue
        controls.sort()
        values = [v for v, _ in controls]
        ranked = []
        for c in churners:
            score = scores[ids[c]][day]
            ranked.append((c, bisect_left(values, score), bisect_right(values, score)))
        compared.append(_Day([i for _, i in controls], ranked))
    ones = [1] * len(ids)
    point = _weighted_auc(compared, ones)
    churner_count = sum(len(d.churners) for d in compared)
    pairs = sum(len(d.churners) * len(d.controls) for d in compared)
    if point is None or resamples <= 0:
        return HorizonAuc(horizon, point, None, None, churner_count, pairs)
    rng = random.Random(seed)
    estimates: list[float] = []
    population = range(len(ids))
    for _ in range(resamples):
        weights = [0] * len(ids)
        for i in rng.choices(population, k=len(ids)):
            weights[i] += 1
        value = _weighted_auc(compared, weights)
        if value is not None:
            estimates.append(value)
    estimates.sort()
    tail = (1.0 - confidence) / 2
    low, high = _quantile(estimates, tail), _quantile(estimates, 1.0 - tail)
    return HorizonAuc(horizon, point, low, high, churner_count, pairs)


def _weighted_auc(compared: Sequence[_Day], weights: Sequence[int]) -> float | None:
    """The AUC where each account counts ``weights[i]`` times (a bootstrap resample)."""
    wins = 0.0
    pairs = 0
    for day in compared:
        churners = [(c, below, upto) for c, below, upto in day.churners if weights[c]]
        if not churners:
            continue
        controls = day.controls
        picked = itemgetter(*controls)(weights) if len(controls) > 1 else (weights[controls[0]],)
        cumulative = [0, *accumulate(picked)]
        total = cumulative[-1]
        for c, below, upto in churners:
            above = total - cumulative[upto]
            equal = cumulative[upto] - cumulative[below]
            wins += weights[c] * (above + equal / 2)
            pairs += weights[c] * total
    return wins / pairs if pairs else None


def _within(day: date, days: tuple[date, date] | None) -> bool:
    return days is None or days[0] <= day <= days[1]


def _quantile(ordered: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of sorted values (linear between neighbours)."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)
