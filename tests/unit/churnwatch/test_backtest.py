"""``churnwatch backtest`` on a small labelled file whose AUC is known by hand."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from churnwatch import backtest, cli, files
from churnwatch.simulator import GroundTruth
from services.alerts import rules
from services.alerts.settings import DEFAULT_RULES_FILE
from services.scoring import facts, model
from services.scoring.aggregate import DayMask
from shared.events import UsageEvent

START = date(2026, 3, 2)
DAYS = 80  # the model's warm-up (35 days) is long over when the churners are judged
CHURN_DAY = 75  # both churners are lost on day 75
SILENT_FROM = 60  # the first churner is silent from day 60


def usage(account: str, day: int) -> UsageEvent:
    at = datetime.combine(START + timedelta(days=day), time(10), UTC)
    return UsageEvent(
        event_id=f"{account}-{day}",
        account_id=account,
        occurred_at=at,
        received_at=at,
        source="test",
        user_id="u1",
        type="session",
        feature="reports",
    )


def labelled_file(directory: Path) -> tuple[Path, Path]:
    """Four accounts, one user each, one identical session a day:

    - ``healthy-1``, ``healthy-2``: every day of the run; they do not churn;
    - ``silent``: every day until day 59, then nothing; churns on day 75;
    - ``sudden``: every day until day 74, exactly like the healthy ones; churns on day 75.
    """
    events = []
    for day in range(DAYS):
        for account in ("healthy-1", "healthy-2"):
            events.append(usage(account, day))
        if day < SILENT_FROM:
            events.append(usage("silent", day))
        if day < CHURN_DAY:
            events.append(usage("sudden", day))
    events.sort(key=lambda e: (e.occurred_at, e.account_id))
    churn = START + timedelta(days=CHURN_DAY)
    truth = [
        GroundTruth("healthy-1", "", False, None, None),
        GroundTruth("healthy-2", "", False, None, None),
        GroundTruth("silent", "", True, churn, None),
        GroundTruth("sudden", "", True, churn, None),
    ]
    events_path, labels_path = directory / "events.jsonl", directory / "labels.csv"
    files.write_events(events_path, events)
    files.write_labels(labels_path, truth)
    return events_path, labels_path


@pytest.fixture
def result(tmp_path: Path) -> backtest.BacktestResult:
    events_path, labels_path = labelled_file(tmp_path)
    default = model.DEFAULT_MODEL_FILE
    return backtest.run(
        list(files.read_events(events_path)),
        files.read_labels(labels_path),
        [(default, model.load(default))],
        rules.load(DEFAULT_RULES_FILE),
        horizons=(7, 30),
    )


def test_the_auc_is_what_the_hand_count_says(result: backtest.BacktestResult) -> None:
    """Seven days before the churn (day 68) ``silent`` has been quiet for nine days and scores
    below both healthy accounts: 2 wins of 2 pairs. ``sudden`` has done exactly what the
    healthy accounts did, so the same model gives it exactly their score: 2 ties, ½ each.
    AUC(7) = (1 + 1 + ½ + ½) / 4 = 0.75. (The churners are not each other's controls: both
    churn within 7 days of day 68.)

    Thirty days before (day 45) all four accounts have the same history, hence the same score:
    four ties, AUC(30) = 0.5 — the score cannot tell them apart yet."""
    [scored] = result.results
    assert [(a.horizon, a.auc, a.churners, a.pairs) for a in scored.aucs] == [
        (7, 0.75, 2, 4),
        (30, 0.5, 2, 4),
    ]


def test_a_silent_churner_is_warned_before_it_churns_and_the_sudden_one_is_not(
    result: backtest.BacktestResult,
) -> None:
    [scored] = result.results
    any_risk = scored.rules[-1]
    assert any_risk.rule == "any risk alert"
    assert (any_risk.positives, any_risk.caught) == (2, 1)
    assert any_risk.precision == 1.0  # the healthy accounts raised no risk alert
    assert any_risk.recall == 0.5
    assert any_risk.lead_days
    assert all(0 < lead <= CHURN_DAY - SILENT_FROM for lead in any_risk.lead_days)


def test_two_model_files_are_compared_in_one_pass(tmp_path: Path) -> None:
    """A copy of the model under another version gives the same figures, side by side."""
    events_path, labels_path = labelled_file(tmp_path)
    other = tmp_path / "health-v1-copy.toml"
    other.write_text(
        model.DEFAULT_MODEL_FILE.read_text().replace(
            'version = "health-v1"', 'version = "health-v1-copy"'
        )
    )
    out = io.StringIO()
    code = cli.main(
        [
            "backtest",
            str(events_path),
            "--labels",
            str(labels_path),
            "--model",
            str(model.DEFAULT_MODEL_FILE),
            "--model",
            str(other),
            "--horizons",
            "7,30",
            "--json",
        ],
        env={},
        out=out,
    )
    assert code == cli.OK
    models = json.loads(out.getvalue())["models"]
    assert [m["model_version"] for m in models] == ["health-v1", "health-v1-copy"]
    assert (
        models[0]["auc"]
        == models[1]["auc"]
        == [
            {"horizon_days": 7, "auc": 0.75, "ci95": [0.5, 1.0], "churners": 2, "pairs": 4},
            {"horizon_days": 30, "auc": 0.5, "ci95": [0.5, 0.5], "churners": 2, "pairs": 4},
        ]
    )


def test_the_text_report_names_each_horizon_and_each_rule(tmp_path: Path) -> None:
    events_path, labels_path = labelled_file(tmp_path)
    out = io.StringIO()
    assert (
        cli.main(
            ["backtest", str(events_path), "--labels", str(labels_path), "--horizons", "7"],
            env={},
            out=out,
        )
        == cli.OK
    )
    text = out.getvalue()
    assert "7 days" in text
    assert "0.750" in text
    for rule in ("band_worsened", "no_activity", "renewal_at_risk", "any risk alert"):
        assert rule in text


def test_a_bad_labels_file_is_refused_naming_its_line(tmp_path: Path) -> None:
    events_path, labels_path = labelled_file(tmp_path)
    labels_path.write_text("account_id,churned,churn_date\nsilent,perhaps,\n")
    err = io.StringIO()
    code = cli.main(["backtest", str(events_path), "--labels", str(labels_path)], env={}, err=err)
    assert code == cli.BAD_INPUT
    assert f"{labels_path}:2:" in err.getvalue()
    assert "not a boolean" in err.getvalue()


def test_a_bad_model_file_is_refused_with_what_is_wrong(tmp_path: Path) -> None:
    events_path, labels_path = labelled_file(tmp_path)
    broken = tmp_path / "broken.toml"
    broken.write_text(model.DEFAULT_MODEL_FILE.read_text().replace("weight = 30", "weight = 35"))
    err = io.StringIO()
    code = cli.main(
        ["backtest", str(events_path), "--labels", str(labels_path), "--model", str(broken)],
        env={},
        err=err,
    )
    assert code == cli.BAD_INPUT
    assert "weights must add up to 100" in err.getvalue()


def test_active_in_reads_a_day_mask_as_scorings_sql_function_does() -> None:
    """Bits are days back from the mask's anchor; the window is [as_of − oldest, as_of − newest]."""
    anchor = date(2026, 3, 20).toordinal()
    mask = DayMask(anchor, 0b1001)  # active on the 20th and the 17th
    as_of = anchor + 2  # the 22nd
    assert facts.active_in(mask, as_of, 0, 2)  # 20th..22nd holds the 20th
    assert not facts.active_in(mask, as_of, 0, 1)  # 21st..22nd: nothing
    assert facts.active_in(mask, as_of, 5, 5)  # the 17th
    assert not facts.active_in(mask, as_of, 6, 30)  # the 16th and before


def test_every_calendar_day_is_scored_while_observed_not_only_days_with_events(
    tmp_path: Path,
) -> None:
    """``quiet`` has events on day 0 and day 79 only; it is scored on all 80 days, ``healthy-1``
    (observed until day 49 by its label) on 50 days, the rest on 80. The warm-up ends once the
    data covers 35 days (day 34): judged days 34–79 (46) for ``healthy-2``, 34–49 (16) for
    ``healthy-1``. Two accounts without a label, and a label without an account, are warned
    about."""
    events = [usage(a, day) for day in range(DAYS) for a in ("healthy-1", "healthy-2")]
    events += [usage("quiet", 0), usage("quiet", DAYS - 1), usage("stray", 3)]
    events.sort(key=lambda e: e.occurred_at)
    truth = [
        GroundTruth("healthy-1", "", False, None, None),
        GroundTruth("healthy-2", "", False, None, None),
        GroundTruth("nobody", "", False, None, None),
    ]
    until = {"healthy-1": START + timedelta(days=49)}
    result = backtest.run(
        events,
        truth,
        [(model.DEFAULT_MODEL_FILE, model.load(model.DEFAULT_MODEL_FILE))],
        rules.load(DEFAULT_RULES_FILE),
        observed_until=until,
        horizons=(7,),
        resamples=0,
    )
    assert result.observed["quiet"] == (START, START + timedelta(days=DAYS - 1))
    assert result.observed["healthy-1"] == (START, START + timedelta(days=49))
    assert result.account_days == 46 + 16  # the labelled ones, after warm-up
    assert result.labelled == 2
    assert any("1 label(s) match no account" in w and "nobody" in w for w in result.warnings)
    assert any("2 account(s) have no label" in w and "quiet, stray" in w for w in result.warnings)


def test_a_churner_is_no_longer_scored_from_its_churn_date(tmp_path: Path) -> None:
    events_path, labels_path = labelled_file(tmp_path)
    result = backtest.run(
        list(files.read_events(events_path)),
        files.read_labels(labels_path),
        [(model.DEFAULT_MODEL_FILE, model.load(model.DEFAULT_MODEL_FILE))],
        rules.load(DEFAULT_RULES_FILE),
        horizons=(7,),
        resamples=0,
    )
    assert result.observed["silent"] == (START, START + timedelta(days=CHURN_DAY - 1))
    assert result.observed["healthy-1"] == (START, START + timedelta(days=DAYS - 1))


def test_the_judged_period_counts_only_churners_and_alerts_inside_it(tmp_path: Path) -> None:
    """Judged from day 76: both churners (day 75) are gone before it — no positives, no AUC."""
    events_path, labels_path = labelled_file(tmp_path)
    result = backtest.run(
        list(files.read_events(events_path)),
        files.read_labels(labels_path),
        [(model.DEFAULT_MODEL_FILE, model.load(model.DEFAULT_MODEL_FILE))],
        rules.load(DEFAULT_RULES_FILE),
        horizons=(7,),
        judged=(START + timedelta(days=CHURN_DAY + 1), None),
        resamples=0,
    )
    assert (result.labelled, result.churners) == (2, 0)
    assert result.results[0].aucs[0].auc is None


def test_cached_facts_are_the_ledgers_facts_every_day(tmp_path: Path) -> None:
    """The cache recomputes only when a window can move; it must never differ from the ledger."""
    sparse = [usage("a", d) for d in (0, 3, 40, 41, 95)] + [usage("b", d) for d in range(0, 99, 9)]
    sparse.sort(key=lambda e: e.occurred_at)
    ledger = facts.Ledger()
    cache = backtest.FactsCache(ledger)
    for day, todays in backtest.calendar(backtest.days_of(sparse)):
        ledger.fold_day(todays)
        cache.folded(todays, day)
        as_of = datetime.combine(day, time(23, 59, 59), UTC)
        for account in ("a", "b"):
            assert cache.facts(account, day, as_of, None) == ledger.facts(account, as_of, None)
    assert cache.reused > cache.computed  # and it did save work


def test_events_out_of_time_order_are_refused_by_day(tmp_path: Path) -> None:
    with pytest.raises(backtest.EventsOutOfOrder, match="comes after events of"):
        list(backtest.days_of([usage("a", 2), usage("a", 1)]))


def test_a_csv_events_file_with_a_missing_field_exits_2_naming_file_line_and_fields(
    tmp_path: Path,
) -> None:
    _, labels_path = labelled_file(tmp_path)
    events = tmp_path / "events.csv"
    events.write_text(
        "event_type,event_id,account_id,occurred_at,user_id,type\n"
        "usage,e1,a,2026-03-02T10:00:00Z,u1,login\n"
        "usage,e2,a,2026-03-02T11:00:00Z,,\n"
    )
    err = io.StringIO()
    code = cli.main(["backtest", str(events), "--labels", str(labels_path)], env={}, err=err)
    assert code == cli.BAD_INPUT
    assert f"{events}:3: usage event: missing field(s) user_id, type" in err.getvalue()
