"""``make demo``'s fit step (churnwatch.demo_fit): the labels are the churn known by the
history's end, the fit's hold-out decides which model runs live, and a refused fit keeps the
shipped model with a plain reason — never an error."""

from __future__ import annotations

import itertools
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from churnwatch import demo_fit
from churnwatch.fit import Outcome
from churnwatch.simulator import GroundTruth, simulate
from services.scoring import model

START = date(2026, 7, 1)


def decide(seed: int, accounts: int, days: int, history: int, tmp_path: Path) -> demo_fit.Decision:
    simulation = simulate(seed, accounts=accounts, days=days, start=START)
    past = list(itertools.islice(iter(simulation), history))
    return demo_fit.fit_history(
        [e.event for day in past for e in day.events],
        [r for day in past for r in day.accounts],
        simulation.truth,
        model.load(model.DEFAULT_MODEL_FILE),
        last_day=START + timedelta(days=history - 1),
        model_file=tmp_path / "health-fitted.toml",
        report_html=tmp_path / "demo-fit.html",
    )


def test_labels_are_the_churn_known_by_the_end_of_the_history() -> None:
    truth = [
        GroundTruth("a", "", True, date(2026, 8, 1), None),
        GroundTruth("b", "", True, date(2026, 8, 2), None),  # churns the day after: not known
        GroundTruth("c", "", False, None, None),
    ]
    outcomes = demo_fit.outcomes_by(truth, date(2026, 8, 1))
    assert outcomes == {
        "a": Outcome(date(2026, 8, 1)),
        "b": Outcome(None, date(2026, 8, 1)),
        "c": Outcome(None, date(2026, 8, 1)),
    }


def aucs(fitted: list[float | None], shipped: list[float | None]) -> dict[str, Any]:
    return {
        "auc": {
            "fitted model": [{"auc": a} for a in fitted],
            "base model": [{"auc": a} for a in shipped],
        }
    }


def test_the_fitted_model_goes_live_only_when_its_mean_holdout_auc_is_higher() -> None:
    assert demo_fit.choose(aucs([0.80, 0.70], [0.70, 0.79]))[0] is True  # 0.75 > 0.745
    assert demo_fit.choose(aucs([0.70, 0.79], [0.70, 0.79])) == (
        False,
        "it does not beat the shipped model on the hold-out (0.745 ≤ 0.745)",
    )
    # a horizon only one model has a figure for is left out of both means
    assert demo_fit.choose(aucs([0.90, None], [0.80, 0.99]))[0] is True
    assert demo_fit.choose(aucs([None, None], [0.80, None])) == (
        False,
        "the hold-out has no churner to compare them on",
    )


def test_a_history_without_enough_churners_keeps_the_shipped_model_and_says_why(
    tmp_path: Path,
) -> None:
    decision = decide(11, 20, 50, 36, tmp_path)  # test_demo_small's portfolio: 2 churners
    assert decision.model_file is None
    assert decision.churners == 2
    assert "the fit refused — 0 of 160 training rows churn within 14 days" in decision.paragraph
    assert "scoring runs live with the shipped model health-v1" in decision.paragraph
    assert not (tmp_path / "health-fitted.toml").exists()


def test_a_fit_that_beats_the_shipped_model_on_its_holdout_runs_live(tmp_path: Path) -> None:
    decision = decide(7, 100, 100, 90, tmp_path)
    assert decision.model_file == tmp_path / "health-fitted.toml"
    fitted = model.load(decision.model_file)  # what scoring will load
    assert fitted.version == demo_fit.FITTED_VERSION
    report = json.loads((tmp_path / "demo-fit.json").read_text())
    assert demo_fit.choose(report)[0] is True
    assert report["churners"] == decision.churners == 19
    assert "<svg" in (tmp_path / "demo-fit.html").read_text()
    assert "Scoring runs live with the fitted model health-fitted: it beats" in decision.paragraph
    assert decision.seconds < 60
