"""``churnwatch fit --feedback``: verdicts on live alerts judged against the fitted and the
shipped model's scores — figures on hand-counted cases, the edges, a bad file, and the command
end to end (the verdicts never change the fitted model)."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sklearn")

from churnwatch import cli, files, fit
from churnwatch.feedback import Verdict
from churnwatch.fit import Inputs, Judged
from churnwatch.simulator import GroundTruth
from services.scoring import health, model
from services.scoring.facts import Ledger
from shared.events import Event, UsageEvent
from tests.unit.churnwatch.test_fit import START, TRAIN_UNTIL, portfolio

DAY = date(2026, 10, 1)


def said(alert_id: int, account: str, verdict: str, rule: str = "band_worsened") -> Verdict:
    at = datetime.combine(DAY, time(12), UTC)
    return Verdict(alert_id, account, rule, verdict, at, "slack", "p_maria")


def judged(verdict: Verdict, fitted: float, base: float) -> Judged:
    return Judged(verdict, DAY, {"fitted model": fitted, "base model": base})


def section(items: list[Judged], resamples: int = 200) -> dict[str, Any]:
    return fit.feedback_section(
        items, given=len(items), train_until=DAY - timedelta(days=30), resamples=resamples
    )


# ---------------------------------------------------------------------------------------------
# The figures


def test_a_model_that_scores_every_confirmed_alert_riskier_has_auc_one_and_the_other_zero() -> None:
    """The fitted model puts every useful/known alert below every not-useful one; the shipped
    model the other way round. Means per verdict are the plain means; the interval of a perfect
    separation is [1, 1] (every resample separates too)."""
    items = [
        *(judged(said(i, f"u{i}", "useful"), f, b) for i, f, b in [(1, 10, 70), (2, 20, 80)]),
        judged(said(3, "u3", "useful"), 30, 90),
        *(judged(said(i, f"k{i}", "known"), f, b) for i, f, b in [(4, 25, 75), (5, 35, 85)]),
        *(
            judged(said(10 + i, f"n{i}", "not_useful"), f, b)
            for i, (f, b) in enumerate([(60, 10), (70, 20), (80, 30), (90, 40), (95, 50)])
        ),
    ]
    figures = section(items)
    assert [r["rule"] for r in figures["rules"]] == ["band_worsened", "all rules"]
    row = figures["rules"][0]
    assert (row["useful"], row["known"], row["not_useful"]) == (3, 2, 5)
    fitted, base = row["models"]["fitted model"], row["models"]["base model"]
    assert fitted["mean_score"] == {"useful": 20.0, "known": 30.0, "not_useful": 79.0}
    assert base["mean_score"] == {"useful": 80.0, "known": 80.0, "not_useful": 30.0}
    assert (fitted["auc"], fitted["low"], fitted["high"], fitted["note"]) == (1.0, 1.0, 1.0, None)
    assert (base["auc"], base["low"], base["high"]) == (0.0, 0.0, 0.0)
    assert figures["rules"][1]["models"] == row["models"]  # one rule: all rules is the same
    assert (figures["alerts"], figures["scored"], figures["unscored"]) == (10, 10, {})


def test_an_overlap_gives_the_hand_counted_auc_inside_its_bootstrap_interval() -> None:
    """Useful 1..5 against not useful 3,6,7,8,9: 25 pairs, 22.5 won (3 ties with 3)."""
    value = fit.verdict_auc([1, 2, 3, 4, 5], [3, 6, 7, 8, 9], resamples=200)
    assert value["auc"] == pytest.approx(22.5 / 25)
    assert value["low"] < 0.9 < value["high"] <= 1.0
    assert fit.verdict_auc([1, 2, 3, 4, 5], [3, 6, 7, 8, 9], resamples=200) == value  # seeded
    assert fit.verdict_auc([1, 2, 3, 4, 5], [3, 6, 7, 8, 9], resamples=0)["low"] is None


@pytest.mark.parametrize(
    ("confirmed", "rejected", "figure"), [(4, 5, False), (5, 4, False), (5, 5, True)]
)
def test_an_auc_needs_five_alerts_on_each_side(confirmed: int, rejected: int, figure: bool) -> None:
    value = fit.verdict_auc(
        [float(i) for i in range(confirmed)],
        [float(10 + i) for i in range(rejected)],
        resamples=50,
    )
    assert (value["auc"] is not None) is figure
    if not figure:
        assert value["note"] == (
            f"too few: {confirmed} useful or known, {rejected} not useful (an AUC needs 5 of each)"
        )


def test_one_class_only_is_too_few_and_rules_are_judged_apart() -> None:
    items = [judged(said(i, f"a{i}", "useful"), 10 + i, 50) for i in range(6)]
    items += [judged(said(20, "b", "not_useful", rule="no_activity"), 40, 40)]
    figures = section(items)
    by_rule = {r["rule"]: r for r in figures["rules"]}
    assert set(by_rule) == {"band_worsened", "no_activity", "all rules"}
    only_useful = by_rule["band_worsened"]["models"]["fitted model"]
    assert only_useful["auc"] is None
    assert only_useful["note"].startswith("too few: 6 useful or known, 0 not useful")
    assert only_useful["mean_score"]["not_useful"] is None
    assert by_rule["all rules"]["models"]["fitted model"]["note"].startswith(
        "too few: 6 useful or known, 1 not useful"
    )
    lines = fit.feedback_lines(figures)
    assert any("band_worsened (6/0/0 useful/not_useful/known)" in line for line in lines)


def test_no_verdicts_is_said_so_in_the_summary_and_the_page() -> None:
    figures = section([])
    assert figures["rules"] == []
    assert figures["alerts"] == 0
    assert fit.feedback_lines(figures)[-1] == "    no verdicts to judge by"
    assert "No scored verdicts to judge by" in "".join(fit._feedback_html(figures, "2026-09-01"))


# ---------------------------------------------------------------------------------------------
# The lookup: each account's scores at the end of its verdict's day


def visits(account: str, days: range, per_day: int) -> list[Event]:
    out: list[Event] = []
    for day in days:
        at = datetime.combine(START + timedelta(days=day), time(10), UTC)
        out += [
            UsageEvent(
                event_id=f"{account}-{day}-{u}",
                account_id=account,
                occurred_at=at + timedelta(minutes=u),
                received_at=at,
                source="test",
                user_id=f"u{u}",
                type="session",
                feature="reports",
            )
            for u in range(per_day)
        ]
    return out


def test_each_judged_account_is_scored_on_its_verdicts_day_or_said_why_not() -> None:
    """acme is busy for 20 days, then quiet; its verdict is on day 19 — the score must be day
    19's, not the data's last day's. ``late`` starts on day 30, judged on day 5: no data yet;
    ``ghost`` is in no file; a verdict after the data ends has no data either."""
    events = sorted(
        visits("acme", range(0, 20), 3) + visits("late", range(30, 40), 1),
        key=lambda e: e.occurred_at,
    )

    def on(alert_id: int, account: str, day: int, verdict: str) -> Verdict:
        at = datetime.combine(START + timedelta(days=day), time(15), UTC)
        return Verdict(alert_id, account, "score_dropped", verdict, at, "api", "p_maria")

    verdicts = [
        on(1, "acme", 12, "not_useful"),
        on(1, "acme", 19, "useful"),  # alert 1's latest verdict: day 19
        on(2, "late", 5, "known"),
        on(3, "ghost", 19, "useful"),
        on(4, "late", 80, "not_useful"),
    ]
    base = model.load(model.DEFAULT_MODEL_FILE)
    both = {"fitted model": base, "base model": base}
    collected = fit.FeedbackFacts.of(verdicts)
    ledger, first = Ledger(), dict[str, date]()
    for day, todays in fit.every_day(events):
        ledger.fold_day(todays)
        for event in todays:
            first.setdefault(event.account_id, day)
        collected.observe(day, ledger, {}, first)
    result = {j.verdict.alert_id: j for j in collected.judged(both, first)}

    assert collected.given == 5
    assert set(result) == {1, 2, 3, 4}
    assert result[1].verdict.verdict == "useful"
    assert result[1].day == START + timedelta(days=19)
    again = Ledger()
    for day, todays in fit.every_day(events):
        if day <= START + timedelta(days=19):
            again.fold_day(todays)
    as_of = datetime.combine(START + timedelta(days=19), time(23, 59, 59), UTC)
    expected = health.evaluate(base, again.facts("acme", as_of, None), as_of).snapshot.score
    assert result[1].scores == {"fitted model": expected, "base model": expected}
    last = datetime.combine(START + timedelta(days=39), time(23, 59, 59), UTC)
    assert health.evaluate(base, ledger.facts("acme", last, None), last).snapshot.score != expected
    assert (result[2].scores, result[2].unscored) == ({}, fit.NO_DATA)
    assert (result[3].scores, result[3].unscored) == ({}, fit.UNKNOWN_ACCOUNT)
    assert result[4].unscored == fit.NO_DATA
    figures = fit.feedback_section(list(result.values()), given=5, train_until=START, resamples=0)
    assert figures["unscored"] == {fit.NO_DATA: 2, fit.UNKNOWN_ACCOUNT: 1}
    assert (figures["alerts"], figures["scored"], figures["scored_until_train_until"]) == (4, 1, 0)


# ---------------------------------------------------------------------------------------------
# The command


def fit_args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "fit",
        str(tmp_path / "events.jsonl"),
        "--labels",
        str(tmp_path / "labels.csv"),
        "--train-until",
        TRAIN_UNTIL.isoformat(),
        "--out",
        str(tmp_path / "health-v7.toml"),
        "--horizons",
        "14",
        "--resamples",
        "20",
        *extra,
    ]


@pytest.mark.parametrize(
    ("row", "why"),
    [
        ("1,acme,band_worsened,great,2026-10-01T00:00:00Z,api,ops", "verdict: 'great'"),
        ("x,acme,band_worsened,useful,2026-10-01T00:00:00Z,api,ops", "alert_id: 'x'"),
        ("1,acme,band_worsened,useful,2026-10-01T00:00:00,api,ops", "given_at:"),
    ],
)
def test_a_bad_feedback_file_exits_2_naming_file_line_and_field(
    tmp_path: Path, row: str, why: str
) -> None:
    bad = tmp_path / "feedback.csv"
    good = ",".join(files.FEEDBACK_COLUMNS) + "\n1,acme,r,useful,2026-10-01T00:00:00Z,api,ops\n"
    bad.write_text(good + row + "\n")
    err = io.StringIO()
    # read before anything else: the events file does not even exist
    assert cli.main(fit_args(tmp_path, "--feedback", str(bad)), out=io.StringIO(), err=err) == 2
    assert err.getvalue().startswith(f"churnwatch: {bad}:3: ")
    assert why in err.getvalue()
    missing = tmp_path / "nowhere.csv"
    err = io.StringIO()
    assert cli.main(fit_args(tmp_path, "--feedback", str(missing)), out=io.StringIO(), err=err) == 2
    assert str(missing) in err.getvalue()


def test_the_command_reports_how_each_model_separates_the_verdicts(
    tmp_path: Path,
) -> None:
    """Churners judged useful 4 days before they leave, accounts that stay judged not useful the
    same days: the fitted model (which learned the fading) scores the churners lower."""
    events, outcomes = portfolio(accounts=25)
    events.sort(key=lambda e: e.occurred_at)
    files.write_events(tmp_path / "events.jsonl", events)
    truth = [
        GroundTruth(a, "", o.churn_date is not None, o.churn_date, None)
        for a, o in outcomes.items()
    ]
    files.write_labels(tmp_path / "labels.csv", truth)
    late = [
        a
        for a, o in outcomes.items()
        if o.churn_date and o.churn_date > TRAIN_UNTIL + timedelta(days=10)
    ]
    stay = [a for a, o in outcomes.items() if o.churn_date is None]
    assert len(late) >= 6
    assert len(stay) >= 6
    verdicts = []
    for n, (churner, stayer) in enumerate(zip(late[:6], stay[:6], strict=True)):
        churn = outcomes[churner].churn_date
        assert churn is not None
        at = datetime.combine(churn - timedelta(days=4), time(9), UTC)
        verdicts.append(Verdict(2 * n, churner, "no_activity", "useful", at, "slack", "p"))
        verdicts.append(Verdict(2 * n + 1, stayer, "no_activity", "not_useful", at, "slack", "p"))
    verdicts.append(Verdict(99, "ghost", "no_activity", "known", at, "email", "p"))
    files.write_feedback(tmp_path / "feedback.csv", verdicts)

    printed = io.StringIO()
    args = fit_args(tmp_path, "--feedback", str(tmp_path / "feedback.csv"))
    assert cli.main(args, out=printed, err=io.StringIO()) == 0, printed.getvalue()

    report = json.loads((tmp_path / "health-v7.json").read_text())
    figures = report["feedback"]
    assert (figures["given"], figures["alerts"], figures["scored"]) == (13, 13, 12)
    assert figures["unscored"] == {fit.UNKNOWN_ACCOUNT: 1}
    rule, everything = figures["rules"]
    assert (rule["rule"], rule["useful"], rule["not_useful"], rule["known"]) == (
        "no_activity",
        6,
        6,
        0,
    )
    fitted = rule["models"]["fitted model"]
    assert fitted["auc"] >= 0.8
    assert fitted["low"] <= fitted["auc"] <= fitted["high"]
    assert fitted["mean_score"]["useful"] < fitted["mean_score"]["not_useful"]
    assert rule["models"]["base model"]["auc"] is not None
    assert everything["rule"] == "all rules"
    assert "Feedback on live alerts" in (tmp_path / "health-v7.html").read_text()
    assert "feedback: 13 alerts judged, 12 scored (1 unknown account)" in printed.getvalue()

    # the score of a judged alert is the fitted file's score of that account on that day
    first = next(j for j in figures["judged"] if j["unscored"] is None)
    day = date.fromisoformat(first["day"])
    ledger = Ledger()
    for d, todays in fit.every_day(events):
        if d <= day:
            ledger.fold_day(todays)
    as_of = datetime.combine(day, time(23, 59, 59), UTC)
    facts = ledger.facts(first["account_id"], as_of, None)
    written = model.load(tmp_path / "health-v7.toml")
    assert first["scores"]["fitted model"] == health.evaluate(written, facts, as_of).snapshot.score


class Stop(Exception):
    pass


def test_the_verdicts_never_reach_the_training_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fit is handed the same rows (values, labels) with and without a feedback file, even
    one that calls every account useful on every training day it is observed."""
    events, outcomes = portfolio(accounts=20)
    handed: list[fit.Rows] = []

    def spy(rows: fit.Rows, *args: object, **kwargs: object) -> fit.Fitted:
        handed.append(rows)
        raise Stop  # the rows are all this test needs: no fitting

    monkeypatch.setattr(fit, "fit", spy)
    everywhere = [
        Verdict(n, account, "no_activity", "useful", at, "api", "p")
        for n, (account, at) in enumerate(
            (a, datetime.combine(START + timedelta(days=d), time(12), UTC))
            for a in outcomes
            for d in range(0, (TRAIN_UNTIL - START).days, 7)
        )
    ]
    base = model.load(model.DEFAULT_MODEL_FILE)
    for verdicts in (None, everywhere):
        with pytest.raises(Stop):
            fit.run(
                Inputs(events, [], outcomes, verdicts), base, train_until=TRAIN_UNTIL, version="v"
            )
    without, with_feedback = handed
    assert without.labels  # rows were collected, some of them churning
    assert max(without.labels) > 0
    assert with_feedback == without
