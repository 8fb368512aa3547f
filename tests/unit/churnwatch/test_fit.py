"""``churnwatch fit`` on a small generated history: a valid, additive model that beats naive.

The generated portfolio is made so that the naive rule is weak on purpose: healthy accounts
differ a lot in how often they are used (some every day, some once a week), while churners
fade from their *own* level over the weeks before they leave. A model that learns to weigh
the trends against the account's baseline ranks them; "inactive days in the last 7" does not.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

from churnwatch import cli, fit
from churnwatch.fit import Inputs, Outcome
from services.scoring import health, model
from services.scoring.facts import Ledger
from shared.events import Event, UsageEvent

START = date(2026, 1, 5)
DAYS = 180
TRAIN_UNTIL = START + timedelta(days=110)


def portfolio(seed: int = 3, accounts: int = 200) -> tuple[list[Event], dict[str, Outcome]]:
    rng = random.Random(seed)
    events: list[Event] = []
    outcomes: dict[str, Outcome] = {}
    for n in range(accounts):
        account = f"acct-{n:03d}"
        level = rng.choice((0.3, 0.6, 0.95))  # chance of a visit on a day: own habit
        users = rng.randint(1, 4)
        churn = rng.randint(70, DAYS + 10) if rng.random() < 0.5 else None
        begin = rng.randint(0, 20)
        for day in range(begin, DAYS):
            if churn is not None and day >= churn:
                break
            fade = 1.0
            if churn is not None and day >= churn - 28:
                fade = 0.1 + 0.9 * (churn - day) / 28  # down to 10 % of its own habit
            if rng.random() >= level * fade:
                continue
            at = datetime.combine(START + timedelta(days=day), time(10), UTC)
            for u in range(rng.randint(1, users)):
                events.append(
                    UsageEvent(
                        event_id=f"{account}-{day}-{u}",
                        account_id=account,
                        occurred_at=at + timedelta(minutes=u),
                        received_at=at,
                        source="test",
                        user_id=f"u{u}",
                        type="session",
                        feature=rng.choice(("reports", "export", "alerts", "api")),
                    )
                )
        churn_date = START + timedelta(days=churn) if churn is not None and churn < DAYS else None
        outcomes[account] = Outcome(churn_date)
    return events, outcomes


@pytest.fixture(scope="module")
def report() -> fit.Report:
    events, outcomes = portfolio()
    base = model.load(model.DEFAULT_MODEL_FILE)
    return fit.run(
        Inputs(events, [], outcomes),
        base,
        train_until=TRAIN_UNTIL,
        version="health-test",
        horizons=(7, 14),
        train_step=3,
        resamples=20,
    )


# Deterministic: the portfolio comes from a seeded random.Random, and the fit has no other
# randomness (rows sampled by a CRC of account and day, gradient boosting with random_state=0,
# a seeded bootstrap). The figures below were the same to the last digit with
# OMP_NUM_THREADS/OPENBLAS_NUM_THREADS = 1 and 2 and with different PYTHONHASHSEEDs.
#
# The bound. With seed 3 the fitted model beats naive inactivity by +0.057 (7 d: 0.870 vs
# 0.813) and +0.085 (14 d: 0.756 vs 0.671). That is a lucky draw, not the generator's promise:
# over seeds 1-9 the margin at 7 d ranged from -0.018 to +0.074 (median +0.039; 14 d: +0.017 to
# +0.085), about 50 churners per horizon. So the test keeps seed 3 and asks +0.02, which leaves
# 0.037 (7 d) and 0.065 (14 d) of headroom for honest changes to the fit, while a fit that
# learns nothing useful (at or below naive) fails. A bound of 0.05 failed once; a bound near
# this seed's margin would be a test of the seed, not of the fit.
MARGIN_OVER_NAIVE = 0.02


def test_the_fitted_model_beats_naive_inactivity_on_the_hold_out(report: fit.Report) -> None:
    aucs = {name: [a["auc"] for a in results] for name, results in report.data["auc"].items()}
    for i, horizon in enumerate((7, 14)):
        fitted, naive = aucs["fitted model"][i], aucs["naive inactivity"][i]
        assert fitted is not None
        assert naive is not None
        assert fitted >= naive + MARGIN_OVER_NAIVE, (horizon, aucs)
    assert report.data["auc"]["fitted model"][1]["churners"] >= 25


def test_the_fitted_file_loads_through_the_service_validation_and_is_monotone(
    report: fit.Report,
) -> None:
    loaded = model.parse(report.fitted.text, source="fitted")
    assert loaded.version == "health-test"
    for profile in loaded.all_profiles():
        assert sum(c.weight for c in profile.components) == pytest.approx(100)
        for component in profile.components:
            assert component.missing_points <= 50
            for measure in component.measures:
                assert measure.curve is not None
                values = [v for v, _ in measure.curve]
                pts = [measure.points(v) for v in values]
                rising = component.direction == "higher_is_better"
                assert pts == sorted(pts, reverse=not rising), (measure.name, measure.curve)
    bands = report.data["fit"]["bands"]
    assert 0 < bands["red"][1] < bands["green"][0] < 100


def test_fitted_scores_are_additive_and_explained(report: fit.Report) -> None:
    events, outcomes = portfolio(seed=11, accounts=20)
    ledger = Ledger()
    for day in sorted({e.occurred_at.date() for e in events}):
        ledger.fold_day([e for e in events if e.occurred_at.date() == day])
    as_of = datetime.combine(START + timedelta(days=DAYS - 1), time(23), UTC)
    loaded = report.fitted.model
    scored = 0
    for account in sorted(outcomes):
        snapshot = health.evaluate(loaded, ledger.facts(account, as_of, None), as_of).snapshot
        assert abs(sum(c.contribution for c in snapshot.components) - snapshot.score) <= 0.5
        if snapshot.band != "green":
            assert snapshot.reasons, snapshot
        scored += 1
    assert scored == 20


def test_the_report_states_calibration_by_band_and_shapes(report: fit.Report) -> None:
    calibration = report.data["calibration"]["fitted model"]
    assert calibration["rows"] > 0
    red = calibration["bands"]["red"]
    if red["rows"]:
        assert red["churn_rate"] >= calibration["base_rate"]
    page = fit.render_html(report)
    assert page.count("<svg") == len(fit.MEASURES)
    assert "Hold-out AUC" in page


def test_the_command_writes_a_loadable_model_and_the_report(
    tmp_path: Path, report: fit.Report
) -> None:
    from churnwatch import files
    from churnwatch.simulator import GroundTruth

    events, outcomes = portfolio(accounts=60)
    files.write_events(tmp_path / "events.jsonl", sorted(events, key=lambda e: e.occurred_at))
    files.write_labels(
        tmp_path / "labels.csv",
        [
            GroundTruth(a, "", o.churn_date is not None, o.churn_date, None)
            for a, o in outcomes.items()
        ],
    )
    out = tmp_path / "models" / "health-v9.toml"
    code = cli.main(
        [
            "fit",
            str(tmp_path / "events.jsonl"),
            "--labels",
            str(tmp_path / "labels.csv"),
            "--train-until",
            TRAIN_UNTIL.isoformat(),
            "--out",
            str(out),
            "--horizons",
            "14",
            "--resamples",
            "0",
        ],
        out=(printed := __import__("io").StringIO()),
    )
    assert code == 0, printed.getvalue()
    assert model.load(out).version == "health-v9"
    assert (tmp_path / "models" / "health-v9.html").exists()
    assert (tmp_path / "models" / "health-v9.json").exists()
    assert "fitted model" in printed.getvalue()


def test_a_train_until_after_the_data_is_a_clear_error(tmp_path: Path) -> None:
    events, outcomes = portfolio(accounts=5)
    with pytest.raises(fit.FitError, match="leaves no hold-out"):
        fit.run(
            Inputs(events, [], outcomes),
            model.load(model.DEFAULT_MODEL_FILE),
            train_until=START + timedelta(days=400),
            version="x",
        )


def test_without_labels_churn_comes_from_the_first_churned_account_record() -> None:
    from shared.events import AccountRecord

    def record(account: str, stage: str, day: int) -> AccountRecord:
        at = datetime.combine(START + timedelta(days=day), time(9), UTC)
        return AccountRecord(
            account_id=account,
            name=account,
            lifecycle_stage=stage,  # type: ignore[arg-type]
            updated_at=at,
            source="test",
        )

    outcomes = fit.outcomes_from_records(
        [
            record("stays", "mature", 0),
            record("leaves", "mature", 0),
            record("leaves", "churned", 40),
            record("leaves", "churned", 55),  # a later copy does not move the date
        ]
    )
    assert outcomes == {
        "stays": Outcome(None),
        "leaves": Outcome(START + timedelta(days=40)),
    }


def test_events_out_of_time_order_are_refused_naming_the_event() -> None:
    events, _ = portfolio(accounts=3)
    ordered = sorted(events, key=lambda e: e.occurred_at)
    shuffled = iter([ordered[-1], ordered[0]])
    with pytest.raises(fit.FitError, match="must be in time order"):
        list(fit.every_day(shuffled))
