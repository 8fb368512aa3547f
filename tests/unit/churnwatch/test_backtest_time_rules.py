"""The backtest judges the rules as time passes, day by day, as the alerts scheduler does.

``silent`` (see ``test_backtest.labelled_file``) falls into yellow on day 61 and gets changes on
days 61, 64, 66 and 73; it churns on day 75. Its renewal is due on day 159, so its 90-day
window opens on day 69 — a day with no health change. Judged on changes only, the renewal
alert waits for day 73's change; judged as time passes, it opens on day 69.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from churnwatch import backtest, files
from services.alerts import rules
from services.alerts.settings import DEFAULT_RULES_FILE
from services.scoring import model
from shared.events import AccountRecord
from tests.unit.churnwatch.test_backtest import CHURN_DAY, START, labelled_file

WINDOW_OPENS = 69
RENEWAL = START + timedelta(days=WINDOW_OPENS + 90)


def record(account: str) -> AccountRecord:
    return AccountRecord(
        account_id=account,
        name=account,
        renewal_date=RENEWAL,
        updated_at=datetime.combine(START, datetime.min.time(), UTC),
        source="test",
    )


def run(directory: Path, *, time_rules: bool) -> backtest.BacktestResult:
    events_path, labels_path = labelled_file(directory)
    default = model.DEFAULT_MODEL_FILE
    return backtest.run(
        list(files.read_events(events_path)),
        files.read_labels(labels_path),
        [(default, model.load(default))],
        rules.load(DEFAULT_RULES_FILE),
        records=[record(a) for a in ("healthy-1", "healthy-2", "silent", "sudden")],
        horizons=(7,),
        resamples=10,
        keep_changes=True,
        time_rules=time_rules,
    )


def renewal_leads(result: backtest.BacktestResult) -> tuple[float, ...]:
    [scored] = result.results
    [renewal] = [r for r in scored.rules if r.rule == "renewal_at_risk"]
    return renewal.lead_days


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, backtest.BacktestResult]:
    return {
        flag: run(tmp_path_factory.mktemp(f"time-{flag}"), time_rules=flag)
        for flag in (False, True)
    }


def test_a_renewal_window_opening_on_a_quiet_day_alerts_that_day(
    results: dict[bool, backtest.BacktestResult],
) -> None:
    assert renewal_leads(results[True]) == (CHURN_DAY - WINDOW_OPENS,)  # 6 days ahead
    assert renewal_leads(results[False]) == (CHURN_DAY - 73,)  # at the next change: 2 days
    assert results[True].time_rules
    assert not results[False].time_rules


def test_the_accounts_shown_active_get_no_alert_from_time(
    results: dict[bool, backtest.BacktestResult],
) -> None:
    [scored] = results[True].results
    any_risk = scored.rules[-1]
    assert any_risk.rule == "any risk alert"
    assert any_risk.precision == 1.0  # healthy-1/2 are never counted silent
    assert (any_risk.positives, any_risk.caught) == (2, 1)  # sudden gives no warning


def test_the_tuning_replay_opens_what_the_daily_run_opened(
    results: dict[bool, backtest.BacktestResult],
) -> None:
    result = results[True]
    ruleset = rules.load(DEFAULT_RULES_FILE)
    opened = backtest.replay_alerts(result.changes[0], ruleset, result.observed)
    renewal = [o for o in opened if o.rule == "renewal_at_risk"]
    assert [(o.account_id, o.started.date()) for o in renewal] == [
        ("silent", START + timedelta(days=WINDOW_OPENS))
    ]
    off = backtest.replay_alerts(result.changes[0], ruleset, result.observed, time_rules=False)
    assert [o.started.date() for o in off if o.rule == "renewal_at_risk"] == [
        START + timedelta(days=73)
    ]
