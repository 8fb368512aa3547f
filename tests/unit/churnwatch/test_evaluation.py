"""Precision, recall, lead time and AUC on hand-made examples whose answers are worked out in
the docstrings."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from churnwatch.evaluation import (
    ANY_RISK,
    Fired,
    auc,
    auc_same_day,
    horizon_auc,
    score_rule,
    score_rules,
)
from churnwatch.simulator import GroundTruth


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


TRUTH = [
    GroundTruth("a", "slow_decay", True, date(2026, 8, 20), None),
    GroundTruth("b", "silent_drop_off", True, date(2026, 8, 10), None),
    GroundTruth("c", "ticket_storm", True, date(2026, 8, 30), None),
    GroundTruth("d", "healthy", False, None, None),
    GroundTruth("e", "healthy", False, None, None),
    GroundTruth("f", "expansion", False, None, date(2026, 8, 5)),
    GroundTruth("g", "advocate", False, None, date(2026, 8, 15)),
]

FIRED = [
    Fired("a", "no_activity", "adoption", at(8, 6)),
    Fired("a", "no_activity", "adoption", at(8, 15)),  # a repeat: the first one counts
    Fired("b", "no_activity", "adoption", at(8, 12)),  # after b churned: late
    Fired("d", "no_activity", "adoption", at(8, 1)),  # d never churns: a false alarm
    Fired("a", "band_worsened", "adoption", at(8, 1)),
    Fired("c", "band_worsened", "adoption", at(8, 20)),
    Fired("b", "band_worsened", "adoption", at(8, 9, 23)),
    Fired("f", "expansion", "expansion", at(8, 8)),
    Fired("d", "expansion", "expansion", at(8, 1)),
    Fired("zz", "expansion", "expansion", at(8, 1)),  # not an account of the run: ignored
]


def test_a_rule_that_warns_some_churners_in_time_and_one_too_late() -> None:
    """no_activity: churners a, b, c (3 positives). Alerted accounts: a, b, d (3), of which a and
    b churn → precision 2/3. Caught in time: only a (08-06, churn 08-20 → 14 days ahead);
    b's alert came two days after it churned → late. Recall 1/3, median lead 14 days."""
    score = score_rule("no_activity", "churn", [f for f in FIRED if f.rule == "no_activity"], TRUTH)

    assert (score.positives, score.alerted, score.true_alerted) == (3, 3, 2)
    assert score.precision == pytest.approx(2 / 3)
    assert (score.caught, score.late) == (1, 1)
    assert score.recall == pytest.approx(1 / 3)
    assert score.median_lead_days == 14


def test_a_rule_that_warns_every_churner_in_time_has_full_precision_and_recall() -> None:
    """band_worsened: a 08-01 (churn 08-20: 19 days), b 08-09 at 23:00 (churn 08-10: 1 day),
    c 08-20 (churn 08-30: 10 days). Precision 3/3, recall 3/3, leads 1, 10, 19 → median 10."""
    score = score_rule(
        "band_worsened", "churn", [f for f in FIRED if f.rule == "band_worsened"], TRUTH
    )

    assert score.precision == 1.0
    assert score.recall == 1.0
    assert score.lead_days == (1.0, 10.0, 19.0)
    assert score.median_lead_days == 10


def test_opportunity_rules_are_judged_against_their_story_and_may_come_after_the_date() -> None:
    """expansion: positives are expansion stories (f, opportunity 08-05). Alerted: f and d
    (zz is not an account of the run) → precision 1/2. f was noticed 3 days after its date:
    caught, lead −3."""
    [expansion, _any] = score_rules([("expansion", "expansion")], FIRED, TRUTH)

    assert expansion.target == "expansion"
    assert (expansion.positives, expansion.alerted) == (1, 2)
    assert expansion.precision == 0.5
    assert expansion.recall == 1.0
    assert expansion.median_lead_days == -3


def test_any_risk_alert_is_the_union_of_the_risk_rules() -> None:
    """Risk alerts per account, first one: a 08-01, b 08-09, c 08-20, d 08-01 (expansion is not
    a risk rule). Precision 3/4; every churner caught; leads 19, 1, 10 → median 10."""
    scores = score_rules(
        [("no_activity", "adoption"), ("band_worsened", "adoption"), ("expansion", "expansion")],
        FIRED,
        TRUTH,
    )
    union = scores[-1]

    assert union.rule == ANY_RISK
    assert union.precision == 0.75
    assert union.recall == 1.0
    assert union.median_lead_days == 10


def test_a_rule_that_never_fires_has_no_precision_and_zero_recall() -> None:
    score = score_rule("ticket_surge", "churn", [], TRUTH)

    assert score.precision is None
    assert score.recall == 0.0
    assert score.median_lead_days is None


def test_auc_counts_pairs_where_the_churner_scores_lower_and_ties_as_half() -> None:
    """Churners score 10 and 40, the others 20, 40, 60. Pairs: 10 is below all three (3);
    40 is above 20 (0), ties 40 (½), below 60 (1) → 1.5. AUC = 4.5 / 6 = 0.75."""
    assert auc([10, 40], [20, 40, 60]) == 0.75
    assert auc([10], [20, 30]) == 1.0
    assert auc([50], [20, 30]) == 0.0
    assert auc([], [1.0]) is None


def test_same_day_auc_compares_each_churner_with_that_days_scores_only() -> None:
    """Day 1: a churner at 30 against 50, 30, 10 → 1 + ½ + 0 = 1.5 of 3 pairs. Day 2: a
    churner at 5 against 20 → 1 of 1. Day 3 has no other scores: skipped. AUC = 2.5 / 4."""
    d1, d2, d3 = date(2026, 8, 1), date(2026, 8, 2), date(2026, 8, 3)
    value, churners = auc_same_day(
        [(d1, 30.0), (d2, 5.0), (d3, 1.0)], {d1: [50.0, 30.0, 10.0], d2: [20.0]}
    )

    assert value == 0.625
    assert churners == 2


def test_horizon_auc_compares_a_churner_only_with_accounts_observed_and_surviving_the_horizon() -> (
    None
):
    """Horizon 2; churner ``c`` churns on the 10th → compared on the 8th, score 30. Controls on
    the 8th: ``n1`` (50, observed to the 20th: survives the 10th) → a win; ``n2`` (20, observed
    to the 9th only: not known to survive the 10th) → left out; ``late`` (churns on the 15th,
    after the 10th: a control) at 30 → a tie; ``gone`` (observed until the 5th) → left out.
    AUC = (1 + ½) / 2 = 0.75 over 2 pairs."""
    d = date(2026, 8, 8)
    scores = {"c": {d: 30.0}, "n1": {d: 50.0}, "n2": {d: 20.0}, "late": {d: 30.0}, "gone": {}}
    churn = {
        "c": date(2026, 8, 10),
        "n1": None,
        "n2": None,
        "late": date(2026, 8, 15),
        "gone": None,
    }
    observed = {
        "c": (date(2026, 8, 1), date(2026, 8, 9)),
        "n1": (date(2026, 8, 1), date(2026, 8, 20)),
        "n2": (date(2026, 8, 1), date(2026, 8, 9)),
        "late": (date(2026, 8, 1), date(2026, 8, 14)),
        "gone": (date(2026, 8, 1), date(2026, 8, 5)),
    }
    result = horizon_auc(scores, churn, observed, 2, resamples=0)
    assert (result.auc, result.churners, result.pairs) == (0.75, 1, 2)
    assert (result.low, result.high) == (None, None)
    outside = horizon_auc(scores, churn, observed, 2, days=(date(2026, 8, 9), date(2026, 8, 31)))
    assert (outside.auc, outside.churners) == (None, 0)


def test_the_bootstrap_interval_is_seeded_and_holds_the_estimate() -> None:
    """Two churners on one day, one ranked below both controls (1 of 1), one above both (0):
    AUC ½; resampling accounts moves it between 0 and 1."""
    d = date(2026, 8, 1)
    scores = {"a": {d: 10.0}, "b": {d: 90.0}, "x": {d: 40.0}, "y": {d: 60.0}}
    churn = {"a": date(2026, 8, 8), "b": date(2026, 8, 8), "x": None, "y": None}
    observed = {k: (d, date(2026, 8, 31)) for k in scores}
    first = horizon_auc(scores, churn, observed, 7, resamples=300, seed=3)
    again = horizon_auc(scores, churn, observed, 7, resamples=300, seed=3)
    assert first == again
    assert first.auc == 0.5
    assert first.low is not None
    assert first.high is not None
    assert 0.0 <= first.low < 0.5 < first.high <= 1.0
