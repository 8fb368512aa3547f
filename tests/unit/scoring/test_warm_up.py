"""Per-account warm-up: too little history → flagged, never red, no risk alerts; per account."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import msgspec
import pytest

from services.alerts import rules
from services.alerts.rules import Context
from services.alerts.settings import DEFAULT_RULES_FILE
from services.scoring import health, model
from services.scoring.health import Facts
from shared.events import HealthChange
from tests.unit.scoring.builders import NOW

MODEL = model.load(model.DEFAULT_MODEL_FILE)
RULESET = rules.load(DEFAULT_RULES_FILE)


def silent(known_days: int | None) -> Facts:
    """An account that has not been used for 20 days (red once warmed up)."""
    since = NOW - timedelta(days=known_days - 1) if known_days is not None else None
    return Facts(
        account_id="acme",
        known_since=since,
        seats=5,
        first_usage_at=since,
        last_usage_at=NOW - timedelta(days=20) if since else None,
    )


@pytest.mark.parametrize(
    ("known_days", "warming", "reason"),
    [
        (None, True, "warming up: 0 of 35 days of history"),
        (1, True, "warming up: 1 of 35 days of history"),
        (12, True, "warming up: 12 of 35 days of history"),
        (34, True, "warming up: 34 of 35 days of history"),
        (35, False, None),
        (200, False, None),
    ],
)
def test_an_account_warms_up_until_its_data_covers_the_baseline_window(
    known_days: int | None, warming: bool, reason: str | None
) -> None:
    snapshot = health.evaluate(MODEL, silent(known_days), NOW).snapshot
    assert snapshot.warming_up is warming
    assert snapshot.warming_up_reason == reason


def test_warming_up_caps_the_band_at_yellow_but_keeps_the_score_and_its_sum() -> None:
    warm = health.evaluate(MODEL, silent(200), NOW).snapshot
    young = health.evaluate(MODEL, silent(20), NOW).snapshot
    assert warm.band == "red"
    assert young.score < 40  # red by its score …
    assert young.band == "yellow"  # … shown yellow while warming up
    assert abs(sum(c.contribution for c in young.components) - young.score) <= 0.5


def test_a_healthy_young_account_keeps_its_green_band() -> None:
    facts = dataclasses.replace(
        silent(20),
        last_usage_at=NOW - timedelta(hours=1),
        active_days_7d=7,
        active_users_30d=5,
        features_30d=6,
        last_feature_at=NOW - timedelta(hours=1),
        first_feature_at=NOW - timedelta(days=19),
        last_survey_at=NOW - timedelta(days=3),
        nps_answers=2,
        nps_promoters=2,
    )
    snapshot = health.evaluate(MODEL, facts, NOW).snapshot
    assert snapshot.warming_up
    assert snapshot.band in ("green", "yellow")
    assert snapshot.band == MODEL.default.band(snapshot.score)


def test_warm_up_days_come_from_the_model_file_and_zero_turns_it_off() -> None:
    off = dataclasses.replace(MODEL, warm_up_days=0)
    snapshot = health.evaluate(off, silent(3), NOW).snapshot
    assert not snapshot.warming_up
    assert snapshot.band == "red"
    text = model.DEFAULT_MODEL_FILE.read_text()
    assert model.parse("warm_up_days = 10\n" + text).warm_up_days == 10
    assert model.load(model.DEFAULT_MODEL_FILE).warm_up_days == 35
    assert model.load(model.DEFAULT_MODEL_FILE, warm_up_days=0).warm_up_days == 0


def _change(facts: Facts) -> HealthChange:
    after = health.evaluate(MODEL, facts, NOW).snapshot
    before = msgspec.structs.replace(after, band="green", score=90.0)
    return HealthChange(
        change_id="c1",
        account_id=facts.account_id,
        as_of=NOW,
        model_version=MODEL.version,
        before=before,
        after=after,
        triggers=["band_changed"],
    )


def test_no_risk_alert_for_an_account_warming_up_while_a_warmed_up_one_alerts() -> None:
    young = {v.rule: v for v in rules.evaluate(RULESET, _change(silent(20)), Context())}
    old = {v.rule: v for v in rules.evaluate(RULESET, _change(silent(200)), Context())}
    risk = [r.name for r in RULESET.rules if r.motion in rules.RISK_MOTIONS]
    assert risk
    assert all(young[name].outcome == "unknown" for name in risk)
    assert any(old[name].outcome == "fire" for name in risk), old
