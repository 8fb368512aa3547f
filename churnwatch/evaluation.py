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
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from churnwatch.simulator import GroundTruth

RISK_MOTIONS = frozenset({"adoption", "renewal"})
OPPORTUNITY_STORY = {"expansion": "expansion", "advocacy": "advocate"}
ANY_RISK = "any risk alert"


@dataclass(frozen=True, slots=True)
class Fired:
    """A rule alerted on an account at ``at`` (one row per alert; repeats are fine)."""

    account_id: str
    rule: str
    motion: str
    at: datetime


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
