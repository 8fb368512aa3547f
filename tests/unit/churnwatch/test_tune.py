"""``churnwatch backtest --tune`` on the hand-counted file of ``test_backtest``."""

from __future__ import annotations

from pathlib import Path

from churnwatch import backtest, files, tune
from services.alerts import rules
from services.alerts.settings import DEFAULT_RULES_FILE
from services.scoring import model
from tests.unit.churnwatch.test_backtest import labelled_file


def tuned(tmp_path: Path, **targets: float) -> tuple[tune.Tuning, rules.RuleSet]:
    events_path, labels_path = labelled_file(tmp_path)
    ruleset = rules.load(DEFAULT_RULES_FILE)
    result = backtest.run(
        list(files.read_events(events_path)),
        files.read_labels(labels_path),
        [(model.DEFAULT_MODEL_FILE, model.load(model.DEFAULT_MODEL_FILE))],
        ruleset,
        horizons=(7,),
        resamples=0,
        keep_changes=True,
    )
    return tune.search(result, ruleset, **targets), ruleset


def test_the_chosen_rules_catch_the_silent_churner_and_alarm_no_healthy_account(
    tmp_path: Path,
) -> None:
    """Base rate 2 of 4 = 50 %; a lift of 2 asks for 100 % precision. Only ``silent`` can be
    caught (``sudden`` behaves like the healthy accounts until it churns): recall ½, precision
    1 — met, since no rule alarms a healthy account. Its silence starts 15 days before the churn,
    so the lead is at most 15 days."""
    tuning, _ = tuned(tmp_path, min_lift=2.0, min_lead_days=1.0)
    assert tuning.base_rate == 0.5
    assert tuning.target_precision == 1.0
    assert (tuning.best.recall, tuning.best.precision, tuning.best.meets) == (0.5, 1.0, True)
    assert tuning.best.median_lead_days is not None
    assert 1 <= tuning.best.median_lead_days <= 15
    assert {c.rule for c in tuning.chosen} == {
        r.name for r in rules.load(DEFAULT_RULES_FILE).rules if r.motion in rules.RISK_MOTIONS
    }


def test_a_lead_that_cannot_be_met_switches_every_rule_off(tmp_path: Path) -> None:
    """No rule can warn 60 days ahead here (the silence starts 15 days before the churn)."""
    tuning, _ = tuned(tmp_path, min_lead_days=60.0)
    assert all(c.settings is None for c in tuning.chosen)
    assert tuning.best.alerted == 0
    assert "all off" in tune.format_table(tuning)


def test_the_tuned_rules_file_keeps_the_others_and_comments_out_what_is_off() -> None:
    text = DEFAULT_RULES_FILE.read_text()
    chosen = [
        tune.Candidate("no_activity", (("days", 21),)),
        tune.Candidate("band_worsened", None),
        tune.Candidate("score_dropped", (("points", 25), ("days", 30))),
        tune.Candidate("ticket_surge", (("opened_7d", 2),)),
    ]
    written = rules.parse(tune.rules_toml(text, chosen))
    by_name = {r.name: r.config for r in written.rules}
    assert "band_worsened" not in by_name
    no_activity = by_name["no_activity"]
    score_dropped = by_name["score_dropped"]
    assert isinstance(no_activity, rules.NoActivity)
    assert isinstance(score_dropped, rules.ScoreDropped)
    assert no_activity.days == 21
    assert (score_dropped.points, score_dropped.days) == (25, 30)
    assert {"expansion", "advocacy", "renewal_at_risk"} <= set(by_name)
