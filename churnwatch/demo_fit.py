"""``make demo``'s fit step: ``churnwatch fit`` on the imported history, as a team going live
would (docs/go-live.md: import, fit, backtest, switch alerts on), before the live run.

The labels are what the simulator knows by the end of the history: an account that churned
on or before the history's last day is a churner; every other account is observed until that
day. The fit judges on its own hold-out (the history's last ``HOLDOUT_DAYS`` days) and that
decides which model scoring runs live: the fitted one when its mean hold-out AUC over
``HORIZONS`` is above the shipped model's, the shipped one otherwise — also when the fit
refuses (too few churners in the history) or cannot run (no scikit-learn). The demo never
fails because of it: :func:`fit_history` always returns a :class:`Decision` and its
paragraph.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import Any

from churnwatch import fit
from churnwatch.simulator import GroundTruth
from services.scoring.model import Model
from shared.events import AccountRecord, Event

HORIZONS = (7, 14)  # six weeks of history: longer horizons leave no labelled training rows
HOLDOUT_DAYS = 14  # the history's last days: the fit's hold-out
RESAMPLES = 100  # bootstrap resamples of the hold-out AUC (the interval, not the decision)
FITTED_VERSION = "health-fitted"


@dataclass(frozen=True)
class Decision:
    """Which model runs live, and the paragraph that says why."""

    model_file: Path | None  # the fitted model file; None: the shipped model runs live
    paragraph: str
    seconds: float
    report_html: Path | None = None  # the fit's report, when the fit ran
    churners: int = 0  # churners in the history (the fit's labels)


def outcomes_by(truth: Iterable[GroundTruth], last_day: date) -> dict[str, fit.Outcome]:
    """The labels known on ``last_day``: churned by then, or observed until then."""
    outcomes = {}
    for t in truth:
        if t.churn_date is not None and t.churn_date <= last_day:
            outcomes[t.account_id] = fit.Outcome(t.churn_date)
        else:
            outcomes[t.account_id] = fit.Outcome(None, last_day)
    return outcomes


def mean_auc(data: Mapping[str, Any], scorer: str) -> float | None:
    """The mean hold-out AUC of ``scorer`` over the horizons both models have one for."""
    pairs = zip(data["auc"]["fitted model"], data["auc"]["base model"], strict=True)
    known = [i for i, (a, b) in enumerate(pairs) if a["auc"] is not None and b["auc"] is not None]
    if not known:
        return None
    return sum(float(data["auc"][scorer][i]["auc"]) for i in known) / len(known)


def choose(data: Mapping[str, Any]) -> tuple[bool, str]:
    """(run the fitted model live?, why) from the fit report's data."""
    fitted, shipped = mean_auc(data, "fitted model"), mean_auc(data, "base model")
    if fitted is None or shipped is None:
        return False, "the hold-out has no churner to compare them on"
    if fitted > shipped:
        return True, f"it beats the shipped model on the hold-out ({fitted:.3f} > {shipped:.3f})"
    return (
        False,
        f"it does not beat the shipped model on the hold-out ({fitted:.3f} ≤ {shipped:.3f})",
    )


def _aucs(data: Mapping[str, Any], scorer: str) -> str:
    return "/".join("–" if a["auc"] is None else f"{a['auc']:.3f}" for a in data["auc"][scorer])


def fit_history(
    events: Sequence[Event],
    records: Sequence[AccountRecord],
    truth: Sequence[GroundTruth],
    base: Model,
    *,
    last_day: date,
    model_file: Path,
    report_html: Path,
) -> Decision:
    """Fit on the history ending ``last_day``; write the model and its report when it runs."""
    started = time.monotonic()
    outcomes = outcomes_by(truth, last_day)
    churners = sum(1 for o in outcomes.values() if o.churn_date is not None)
    first = min((e.occurred_at.astimezone(UTC).date() for e in events), default=last_day)
    days = (last_day - first).days + 1
    lead = (
        f"Fit: churnwatch fit on the {days} days of history ({churners} churners of "
        f"{len(outcomes)} accounts by {last_day})"
    )
    shipped = f"scoring runs live with the shipped model {base.version}"
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return Decision(
            None,
            f"{lead}: not run, scikit-learn (the `fit` extra) is not installed; {shipped}.",
            time.monotonic() - started,
            churners=churners,
        )
    try:
        report = fit.run(
            fit.Inputs(list(events), list(records), outcomes),
            base,
            train_until=last_day - timedelta(days=HOLDOUT_DAYS),
            version=FITTED_VERSION,
            horizon=max(HORIZONS),
            horizons=HORIZONS,
            resamples=RESAMPLES,
        )
    except fit.FitError as refused:
        return Decision(
            None,
            f"{lead}: the fit refused — {refused} — so {shipped}. (The simulated stories "
            "mostly churn after the history; a longer --history-days gives the fit churners.)",
            time.monotonic() - started,
            churners=churners,
        )
    model_file.parent.mkdir(parents=True, exist_ok=True)
    model_file.write_text(report.fitted.text)
    fit.write_report(report, report_html.with_suffix(".json"), report_html)
    live, why = choose(report.data)
    d = report.data
    horizons = "/".join(str(h) for h in HORIZONS)
    figures = (
        f"{lead}, trained until {d['train_until']}, hold-out {d['holdout'][0]} – "
        f"{d['holdout'][1]}: hold-out AUC at {horizons} days fitted {_aucs(d, 'fitted model')}, "
        f"shipped {_aucs(d, 'base model')}, naive inactivity {_aucs(d, 'naive inactivity')}"
    )
    if live:
        verdict = f"scoring runs live with the fitted model {FITTED_VERSION}: {why}"
    else:
        verdict = f"{shipped}: the fitted model is kept aside, {why}"
    return Decision(
        model_file if live else None,
        f"{figures}. {verdict[0].upper()}{verdict[1:]} (report: {report_html}).",
        time.monotonic() - started,
        report_html,
        churners,
    )
