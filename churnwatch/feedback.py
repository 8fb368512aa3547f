"""Feedback on live alerts as labels for the backtest (and the fit's tuning loop).

``churnwatch feedback export --out feedback.csv`` fetches every verdict CSMs gave on alerts
(``GET /v1/feedback`` of the alerts service) and writes ``feedback.csv``
(:data:`churnwatch.files.FEEDBACK_COLUMNS`, one verdict per row). ``churnwatch backtest …
--feedback feedback.csv`` then replays the rules over the backtest's health changes and says,
per rule, how the replayed alerts agree with what people said:

- a verdict **useful** or **already known** confirms the risk: the rule should still fire on
  that account around that time (``confirmed_fired / confirmed``, higher is better);
- **not useful** rejects it: a rule that still fires there is still noisy
  (``rejected_fired / rejected``, lower is better).

An alert is matched to a verdict when the replayed rule was open on that account at some
moment in the ``MATCH_DAYS`` before the verdict was given (people judge an alert after it
opens). Each alert counts once, by its latest verdict. These are per-alert labels, not churn
outcomes: ``labels.csv`` (churned, churn date) stays the ground truth of the backtest's AUC.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from churnwatch.evaluation import Opened

VERDICTS = ("useful", "not_useful", "known")
CONFIRMING = frozenset({"useful", "known"})
MATCH_DAYS = 30


@dataclass(frozen=True)
class Verdict:
    """One person's verdict on one live alert (a row of ``feedback.csv``)."""

    alert_id: int
    account_id: str
    rule: str
    verdict: str  # useful, not_useful, known
    given_at: datetime
    source: str  # slack, email, api
    given_by: str


@dataclass(frozen=True)
class RuleAgreement:
    rule: str
    confirmed: int = 0  # alerts judged useful or already known
    confirmed_fired: int = 0  # … on which the replayed rule fires too
    rejected: int = 0  # alerts judged not useful
    rejected_fired: int = 0  # … on which the replayed rule still fires

    def line(self) -> str:
        def share(part: int, whole: int) -> str:
            return f"{part}/{whole} ({100 * part / whole:.0f}%)" if whole else "0/0"

        return (
            f"{self.rule}: fires on {share(self.confirmed_fired, self.confirmed)} confirmed, "
            f"still on {share(self.rejected_fired, self.rejected)} rejected"
        )


def latest(verdicts: Iterable[Verdict]) -> list[Verdict]:
    """Each alert's latest verdict (whoever gave it)."""
    chosen: dict[int, Verdict] = {}
    for v in verdicts:
        if v.alert_id not in chosen or v.given_at >= chosen[v.alert_id].given_at:
            chosen[v.alert_id] = v
    return sorted(chosen.values(), key=lambda v: (v.given_at, v.alert_id))


def fired(opened: Sequence[Opened], verdict: Verdict, match: timedelta) -> bool:
    """Was the replayed rule open on the verdict's account during ``match`` before it?"""
    since = verdict.given_at - match
    return any(
        o.account_id == verdict.account_id
        and o.rule == verdict.rule
        and o.started <= verdict.given_at
        and (o.ended is None or o.ended >= since)
        for o in opened
    )


def agreement(
    verdicts: Iterable[Verdict], opened: Sequence[Opened], *, match_days: int = MATCH_DAYS
) -> list[RuleAgreement]:
    """Per rule, how the replayed alerts ``opened`` agree with the latest verdicts."""
    match = timedelta(days=match_days)
    counts: dict[str, list[int]] = {}
    for v in latest(verdicts):
        row = counts.setdefault(v.rule, [0, 0, 0, 0])
        hit = fired(opened, v, match)
        if v.verdict in CONFIRMING:
            row[0] += 1
            row[1] += hit
        else:
            row[2] += 1
            row[3] += hit
    return [RuleAgreement(rule, *row) for rule, row in sorted(counts.items())]
