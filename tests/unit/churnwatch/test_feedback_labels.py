"""Feedback on live alerts as labels: feedback.csv round trip, bad rows named, and how replayed
alerts agree with the verdicts."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from churnwatch import cli, feedback, files
from churnwatch.evaluation import Opened
from tests.unit.churnwatch.test_backtest import START, labelled_file

T = datetime(2026, 10, 1, 12, tzinfo=UTC)


def verdict(alert_id: int, account: str, value: str, days: int = 0) -> feedback.Verdict:
    return feedback.Verdict(
        alert_id, account, "band_worsened", value, T + timedelta(days=days), "slack", "p_maria"
    )


def test_feedback_csv_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "feedback.csv"
    written = [verdict(1, "acme", "useful"), verdict(2, "beta", "not_useful", 1)]
    assert files.write_feedback(path, written) == 2
    assert path.read_text().splitlines()[0] == ",".join(files.FEEDBACK_COLUMNS)
    assert files.read_feedback(path) == written


@pytest.mark.parametrize(
    ("row", "why"),
    [
        ("x,acme,r,useful,2026-10-01T00:00:00Z,api,ops", "alert_id: 'x' is not an alert id"),
        ("1,acme,r,great,2026-10-01T00:00:00Z,api,ops", "verdict: 'great' is not one of"),
        ("1,acme,r,useful,yesterday,api,ops", "given_at: 'yesterday' is not a time"),
        ("1,acme,r,useful,2026-10-01T00:00:00,api,ops", "needs a UTC offset"),
        ("1,,r,useful,2026-10-01T00:00:00Z,api,ops", "account_id is empty"),
    ],
)
def test_a_bad_row_names_its_line_and_field(tmp_path: Path, row: str, why: str) -> None:
    path = tmp_path / "feedback.csv"
    path.write_text(",".join(files.FEEDBACK_COLUMNS) + "\n" + row + "\n")
    with pytest.raises(files.FormatError) as caught:
        files.read_feedback(path)
    assert caught.value.line == 2
    assert why in caught.value.reason


def test_replayed_alerts_are_judged_by_the_latest_verdict_of_each_alert() -> None:
    opened = [
        Opened("acme", "band_worsened", "adoption", T - timedelta(days=5), None),
        Opened("beta", "band_worsened", "adoption", T - timedelta(days=60), T - timedelta(days=40)),
        Opened("gamma", "band_worsened", "adoption", T - timedelta(days=10), T - timedelta(days=2)),
    ]
    said = [
        verdict(1, "acme", "not_useful", -1),
        verdict(1, "acme", "useful"),  # the latest verdict on alert 1 counts
        verdict(2, "beta", "known"),  # the replay closed it 40 days before: missed
        verdict(3, "gamma", "not_useful"),  # still fires within 30 days: noisy
        verdict(4, "delta", "not_useful"),  # no replayed alert: the rule no longer fires there
    ]
    [rule] = feedback.agreement(said, opened)
    assert rule == feedback.RuleAgreement("band_worsened", 2, 1, 2, 1)
    assert rule.line() == "band_worsened: fires on 1/2 (50%) confirmed, still on 1/2 (50%) rejected"
    assert feedback.agreement([], opened) == []


def test_backtest_feedback_reports_each_rule_against_the_verdicts(tmp_path: Path) -> None:
    """In the hand-counted file, ``silent`` goes quiet on day 60: its risk rules fire; the
    healthy account and ``sudden`` (identical to the healthy ones) raise nothing."""
    events, labels = labelled_file(tmp_path)
    at = datetime.combine(START + timedelta(days=74), time(12), UTC)
    said = [
        feedback.Verdict(i, account, rule, value, at, "slack", "p_maria")
        for i, (account, rule, value) in enumerate(
            [
                ("silent", "no_activity", "useful"),
                ("silent", "band_worsened", "known"),
                ("healthy-1", "no_activity", "not_useful"),
                ("sudden", "band_worsened", "not_useful"),
            ]
        )
    ]
    path = tmp_path / "feedback.csv"
    files.write_feedback(path, said)
    out = io.StringIO()
    args = ["backtest", str(events), "--labels", str(labels), "--feedback", str(path), "--json"]
    assert cli.main(args, env={}, out=out) == cli.OK
    assert json.loads(out.getvalue())["feedback"] == [
        {"rule": r, "confirmed": 1, "confirmed_fired": 1, "rejected": 1, "rejected_fired": 0}
        for r in ("band_worsened", "no_activity")
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("alert_id\n1\n")
    err = io.StringIO()
    code = cli.main(
        ["backtest", str(events), "--labels", str(labels), "--feedback", str(bad)], env={}, err=err
    )
    assert code == cli.BAD_INPUT
    assert f"{bad}:1: missing column(s): account_id, rule, verdict, given_at" in err.getvalue()
