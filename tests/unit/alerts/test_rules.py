"""Rules: the file is validated, and each kind of rule fires, holds and clears as it says."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.alerts import rules
from services.alerts.rules import Context, RulesError, Verdict
from services.alerts.settings import DEFAULT_RULES_FILE
from shared.events import Band, ComponentScore, HealthChange, HealthSnapshot, Signals

AS_OF = datetime(2026, 11, 23, tzinfo=UTC)
RULESET = rules.load(DEFAULT_RULES_FILE)


def health(score: float, band: Band, **signals: Any) -> HealthSnapshot:
    return HealthSnapshot(
        score=score,
        band=band,
        components=[
            ComponentScore(name="activity", raw=1, points=score, weight=100, contribution=score)
        ],
        signals=Signals(**signals),
    )


def evaluate(
    before: tuple[float, Band] | None,
    after: tuple[float, Band],
    context: Context | None = None,
    **signals: Any,
) -> dict[str, Verdict]:
    change = HealthChange(
        change_id="c1",
        account_id="acme",
        as_of=AS_OF,
        model_version="t",
        before=health(*before) if before else None,
        after=health(*after, **signals),
        triggers=["score_delta"],
    )
    return {v.rule: v for v in rules.evaluate(RULESET, change, context or Context())}


def test_the_bundled_rules_file_is_valid_and_covers_every_kind() -> None:
    kinds = {type(r.config).__name__ for r in RULESET.rules}
    assert kinds == {
        "BandWorsened",
        "ScoreDropped",
        "NoActivity",
        "TicketSurge",
        "RenewalAtRisk",
        "Expansion",
        "Advocacy",
    }
    assert {r.motion for r in RULESET.rules} == {"adoption", "renewal", "expansion", "advocacy"}


RULE = "[[rule]]\nname = 'a'\nkind = 'no_activity'\nmotion = 'adoption'\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"version = 1\n{RULE}severity = 'loud'\ndays = 3", "severity"),
        (f"version = 1\n{RULE}severity = 'info'\ndays = 3\ncolour = 'red'", "colour"),
        ("version = 1\n[[rule]]\nname = 'a'\nkind = 'nope'\nmotion = 'adoption'", "kind"),
        (
            f"version = 1\n{RULE}severity = 'info'\ndays = 3\n" * 1
            + f"{RULE}severity = 'info'\ndays = 3",
            "unique",
        ),
        (f"version = 2\n{RULE}severity = 'info'\ndays = 3", "version"),
        ("version = ", "TOML"),
    ],
)
def test_an_invalid_rules_file_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(RulesError, match=message):
        rules.parse(text)


@pytest.mark.parametrize(("days", "valid"), [(0, True), (30, True), (30.01, False), (-1, False)])
def test_keep_firing_for_is_between_zero_and_thirty_days(days: float, valid: bool) -> None:
    text = f"version = 1\n{RULE}severity = 'info'\ndays = 3\nkeep_firing_for_days = {days}"
    if valid:
        [rule] = rules.parse(text).rules
        assert rule.keep_firing_for == timedelta(days=days)
    else:
        with pytest.raises(RulesError, match="keep_firing_for_days"):
            rules.parse(text)


def test_the_shipped_band_rule_fires_on_a_fall_into_red_only_and_red_is_critical() -> None:
    assert evaluate((80, "green"), (55, "yellow"))["band_worsened"].outcome == "clear"
    red = evaluate((55, "yellow"), (30, "red"))["band_worsened"]
    assert (red.outcome, red.severity) == ("fire", "critical")
    assert evaluate((80, "green"), (30, "red"))["band_worsened"].outcome == "fire"


def test_a_band_rule_to_red_fires_only_on_a_fall_into_red_and_clears_above_it() -> None:
    ruleset = rules.parse(
        "version = 1\n[[rule]]\nname = 'into_red'\nkind = 'band_worsened'\n"
        "motion = 'adoption'\nseverity = 'warning'\nto = 'red'\n"
    )

    def verdict(before: tuple[float, Band], after: tuple[float, Band]) -> Verdict:
        change = HealthChange(
            change_id="c1",
            account_id="acme",
            as_of=AS_OF,
            model_version="t",
            before=health(*before),
            after=health(*after),
            triggers=["band_changed"],
        )
        [one] = rules.evaluate(ruleset, change, Context())
        return one

    assert verdict((80, "green"), (55, "yellow")).outcome == "clear"
    assert verdict((55, "yellow"), (30, "red")).outcome == "fire"
    assert verdict((80, "green"), (30, "red")).outcome == "fire"
    assert verdict((30, "red"), (55, "yellow")).outcome == "clear"


def test_a_band_that_stays_bad_sustains_and_green_clears() -> None:
    stays = evaluate((35, "red"), (30, "red"))["band_worsened"]
    assert (stays.outcome, stays.severity) == ("sustain", "critical")
    assert stays.summary == "health band still red"  # what is true now, not "red → red"
    assert evaluate((30, "red"), (58, "yellow"))["band_worsened"].outcome == "clear"
    assert evaluate((58, "yellow"), (80, "green"))["band_worsened"].outcome == "clear"


def test_a_score_drop_is_measured_from_the_peak_within_the_window() -> None:
    history = [(AS_OF - timedelta(days=10), 85.0), (AS_OF - timedelta(days=20), 99.0)]
    verdict = evaluate((70, "green"), (68, "green"), Context(score_history=history))[
        "score_dropped"
    ]
    assert verdict.outcome == "fire"
    assert "17 points" in verdict.summary
    small = evaluate((70, "green"), (68, "green"))["score_dropped"]
    assert small.outcome == "clear"


def test_silence_fires_after_n_days_and_is_critical_after_more() -> None:
    assert evaluate(None, (60, "yellow"), days_since_activity=13)["no_activity"].outcome == "clear"
    assert evaluate(None, (60, "yellow"), days_since_activity=14)["no_activity"].outcome == "fire"
    assert (
        evaluate(None, (60, "yellow"), days_since_activity=31)["no_activity"].severity == "critical"
    )
    assert evaluate(None, (60, "yellow"))["no_activity"].outcome == "unknown"


def test_a_surge_of_high_and_urgent_tickets_fires() -> None:
    assert evaluate(None, (60, "yellow"), high_urgent_opened_7d=3)["ticket_surge"].outcome == "fire"
    assert (
        evaluate(None, (60, "yellow"), high_urgent_opened_7d=1, open_high_urgent_tickets=5)[
            "ticket_surge"
        ].outcome
        == "fire"
    )
    assert (
        evaluate(None, (60, "yellow"), high_urgent_opened_7d=1, open_high_urgent_tickets=1)[
            "ticket_surge"
        ].outcome
        == "clear"
    )


def test_a_renewal_near_while_not_green_fires_and_nearer_is_critical() -> None:
    far = evaluate(None, (60, "yellow"), renewal_date=AS_OF.date() + timedelta(days=120))
    near = evaluate(None, (60, "yellow"), renewal_date=AS_OF.date() + timedelta(days=60))
    nearest = evaluate(None, (60, "yellow"), renewal_date=AS_OF.date() + timedelta(days=20))
    green = evaluate(None, (80, "green"), renewal_date=AS_OF.date() + timedelta(days=20))
    assert far["renewal_at_risk"].outcome == "clear"
    assert (near["renewal_at_risk"].outcome, near["renewal_at_risk"].severity) == (
        "fire",
        "warning",
    )
    assert nearest["renewal_at_risk"].severity == "critical"
    assert green["renewal_at_risk"].outcome == "clear"


def test_renewal_proximity_raises_the_severity_of_adoption_risks() -> None:
    context = Context(renewal_date=date(2026, 12, 15))
    verdict = evaluate((80, "green"), (55, "yellow"), context, days_since_activity=20)[
        "no_activity"
    ]
    assert (verdict.outcome, verdict.severity) == ("fire", "critical")  # warning, raised
    assert "renewal on 2026-12-15" in verdict.summary


def test_expansion_fires_at_the_seat_threshold_with_hysteresis() -> None:
    assert (
        evaluate(None, (90, "green"), seat_utilisation=0.95, seats=100)["expansion"].outcome
        == "fire"
    )
    assert evaluate(None, (90, "green"), seat_utilisation=0.87)["expansion"].outcome == "sustain"
    assert evaluate(None, (90, "green"), seat_utilisation=0.80)["expansion"].outcome == "clear"


def test_advocacy_needs_a_long_green_run_and_a_high_nps() -> None:
    assert (
        evaluate(None, (90, "green"), days_in_band=61, nps_latest=9)["advocacy"].outcome == "fire"
    )
    assert (
        evaluate(None, (90, "green"), days_in_band=61, nps_latest=7)["advocacy"].outcome == "clear"
    )
    assert (
        evaluate(None, (90, "green"), days_in_band=10, nps_latest=10)["advocacy"].outcome == "clear"
    )
    assert (
        evaluate(None, (60, "yellow"), days_in_band=90, nps_latest=10)["advocacy"].outcome
        == "clear"
    )
