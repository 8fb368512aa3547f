"""The pure health model: every component, the flags, the reasons, the change decision."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.scoring import health, model
from services.scoring.health import Facts, Previous
from shared.events import ComponentScore, HealthChange, HealthSnapshot
from tests.unit.scoring.builders import NOW

MODEL = model.load(model.DEFAULT_MODEL_FILE)


def healthy(**changes: object) -> Facts:
    """A well-used account with 70 days of history, six seats, no tickets, a happy NPS."""
    base = Facts(
        account_id="acme",
        known_since=NOW - timedelta(days=100),
        tier="pro",
        lifecycle_stage="mature",
        seats=6,
        renewal_date=date(2027, 3, 31),
        first_usage_at=NOW - timedelta(days=100),
        last_usage_at=NOW - timedelta(hours=2),
        usage_events_7d=140,
        usage_events_prior_4w=560,
        active_days_7d=7,
        active_days_prior_4w=28,
        active_users_7d=5,
        active_users_prior_4w=20,
        active_users_30d=5,
        active_users_prior_30d=5,
        first_feature_at=NOW - timedelta(days=100),
        last_feature_at=NOW - timedelta(hours=2),
        features_30d=6,
        features_prior_30d=6,
        last_survey_at=NOW - timedelta(days=10),
        nps_answers=4,
        nps_promoters=4,
        nps_recent_sum=36,
        nps_recent_answers=4,
        nps_latest=9,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def score(facts: Facts) -> HealthSnapshot:
    return health.evaluate(MODEL, facts, NOW).snapshot


def component(snapshot: HealthSnapshot, name: str) -> ComponentScore:
    return next(c for c in snapshot.components if c.name == name)


def test_a_healthy_account_scores_full_marks_green_with_nothing_to_say() -> None:
    snapshot = score(healthy())
    assert snapshot.score == 100
    assert snapshot.band == "green"
    assert snapshot.reasons == []
    assert not snapshot.partial
    assert not snapshot.stale


def test_activity_falls_with_fewer_active_days_and_with_usage_below_its_own_baseline() -> None:
    fewer_days = component(score(healthy(active_days_7d=2)), "activity")
    assert fewer_days.raw == 2
    assert fewer_days.points < 100
    assert fewer_days.detail == "active on only 2 days of the last 7"
    # same active days, but volume and weekly users down against the 4-week baseline
    dropped = score(healthy(usage_events_7d=53, active_users_7d=1))
    activity = component(dropped, "activity")
    assert activity.points < 40
    assert "weekly active users down 80% vs the 4-week baseline" in dropped.reasons
    assert "usage down 62% vs the 4-week baseline" in dropped.reasons


def test_recency_counts_days_since_activity_absolutely_and_against_the_usual_gap() -> None:
    silent = score(healthy(last_usage_at=NOW - timedelta(days=16)))
    recency = component(silent, "recency")
    assert recency.raw == 16
    assert recency.points == 0
    assert silent.reasons[0] == "no activity for 16 days"
    # a weekly user silent for 6 days is within habit; a daily user is not
    weekly = component(
        score(healthy(last_usage_at=NOW - timedelta(days=6), active_days_prior_4w=4)), "recency"
    )
    daily = component(score(healthy(last_usage_at=NOW - timedelta(days=6))), "recency")
    assert weekly.points > daily.points


def test_breadth_counts_distinct_features_and_compares_with_the_previous_30_days() -> None:
    narrow = component(score(healthy(features_30d=1, features_prior_30d=6)), "breadth")
    assert narrow.raw == 1
    assert narrow.points == 0
    assert narrow.detail == "only 1 feature used in the last 30 days"


def test_seat_utilisation_is_distinct_active_users_over_seats() -> None:
    snapshot = score(healthy(seats=50, active_users_30d=5))
    utilisation = component(snapshot, "seat_utilisation")
    assert utilisation.raw == 0.1
    assert utilisation.detail == "only 10% of seats active in 30 days (5 of 50)"
    assert snapshot.signals.seat_utilisation == 0.1


def test_support_load_counts_open_urgent_tickets_new_ones_escalations_and_the_rate() -> None:
    snapshot = score(
        healthy(
            open_high_urgent=3,
            open_tickets=5,
            high_urgent_opened_7d=3,
            tickets_opened_7d=5,
            tickets_opened_prior_4w=4,
            escalations_30d=2,
            reopens_30d=1,
        )
    )
    support = component(snapshot, "support")
    assert support.raw == 3
    assert support.points < 20
    assert "3 high/urgent tickets opened in 7 days" in snapshot.reasons
    assert snapshot.signals.open_high_urgent_tickets == 3
    assert snapshot.signals.high_urgent_opened_7d == 3


def test_no_tickets_is_a_real_zero_not_missing_data() -> None:
    support = component(score(healthy()), "support")
    assert support.status == "ok"
    assert support.points == 100


def test_sentiment_uses_nps_and_csat_and_is_missing_without_answers() -> None:
    detractors = component(
        score(healthy(nps_promoters=0, nps_detractors=4, nps_recent_sum=8)), "sentiment"
    )
    assert detractors.raw == -100
    assert detractors.points == 0
    csat_only = component(
        score(
            healthy(
                nps_answers=0, nps_promoters=0, nps_recent_answers=0, csat_sum=9, csat_answers=2
            )
        ),
        "sentiment",
    )
    assert csat_only.raw == 4.5
    assert csat_only.points == 100
    missing = score(healthy(last_survey_at=None, nps_answers=0, nps_promoters=0))
    assert component(missing, "sentiment").status == "missing"
    assert missing.partial
    assert missing.missing == ["sentiment"]
    assert component(missing, "sentiment").detail == "no NPS or CSAT answer yet"


def test_an_input_older_than_its_maximum_age_is_stale_and_scores_no_points() -> None:
    snapshot = score(
        healthy(
            last_usage_at=NOW - timedelta(days=20),
            last_feature_at=NOW - timedelta(days=20),
            last_survey_at=NOW - timedelta(days=200),
        )
    )
    assert snapshot.stale
    assert snapshot.stale_inputs == ["activity", "breadth", "seat_utilisation", "sentiment"]
    for name in snapshot.stale_inputs:
        assert component(snapshot, name).points == 0
    assert component(snapshot, "activity").detail == "no activity for 20 days"


def test_an_open_urgent_ticket_without_updates_is_flagged_stale_but_still_counted() -> None:
    snapshot = score(
        healthy(open_high_urgent=2, oldest_open_high_urgent_update=NOW - timedelta(days=45))
    )
    support = component(snapshot, "support")
    assert support.status == "stale"
    assert support.points < 100
    assert snapshot.stale_inputs == ["support"]


def test_a_new_account_has_no_baseline_and_is_scored_on_absolute_thresholds_alone() -> None:
    new = healthy(
        known_since=NOW - timedelta(days=3),
        first_usage_at=NOW - timedelta(days=3),
        first_feature_at=NOW - timedelta(days=3),
        usage_events_prior_4w=0,
        active_days_prior_4w=0,
        active_users_prior_4w=0,
        active_days_7d=3,
    )
    values = health.measure_values(new, NOW)
    assert values["usage_trend"] is None
    assert values["silence_vs_usual"] is None
    assert component(score(new), "activity").points == 50  # 3 of 7 days, absolute only


OPTIONAL_INPUTS = {
    "usage": {"last_usage_at": None, "first_usage_at": None},
    "features": {"last_feature_at": None, "first_feature_at": None},
    "seats": {"seats": None},
    "surveys": {"last_survey_at": None},
}


@given(
    facts=st.builds(
        healthy,
        active_days_7d=st.integers(0, 7),
        usage_events_7d=st.integers(0, 500),
        active_users_7d=st.integers(0, 6),
        active_users_30d=st.integers(0, 6),
        features_30d=st.integers(0, 10),
        open_high_urgent=st.integers(0, 6),
        high_urgent_opened_7d=st.integers(0, 6),
        escalations_30d=st.integers(0, 5),
        last_usage_at=st.integers(0, 30 * 24).map(lambda h: NOW - timedelta(hours=h)),
        nps_promoters=st.integers(0, 4),
    ),
    gone=st.sets(st.sampled_from(sorted(OPTIONAL_INPUTS)), min_size=1),
)
def test_missing_data_never_makes_an_account_look_healthier(facts: Facts, gone: set[str]) -> None:
    removed: dict[str, object] = {}
    for name in gone:
        removed |= OPTIONAL_INPUTS[name]
    with_data = score(facts)
    without = score(dataclasses.replace(facts, **removed))  # type: ignore[arg-type]
    assert without.score <= with_data.score
    assert without.partial


@given(
    facts=st.builds(
        healthy,
        active_days_7d=st.integers(0, 7),
        usage_events_7d=st.integers(0, 500),
        active_users_7d=st.integers(0, 6),
        features_30d=st.integers(0, 10),
        seats=st.one_of(st.none(), st.integers(1, 100)),
        open_high_urgent=st.integers(0, 6),
        last_usage_at=st.one_of(
            st.none(), st.integers(0, 90 * 24).map(lambda h: NOW - timedelta(hours=h))
        ),
        tier=st.sampled_from([None, "pro", "enterprise"]),
        lifecycle_stage=st.sampled_from([None, "onboarding", "mature"]),
    )
)
def test_contributions_always_add_up_to_the_score_and_the_band_matches(facts: Facts) -> None:
    snapshot = score(facts)
    assert 0 <= snapshot.score <= 100
    assert abs(sum(c.contribution for c in snapshot.components) - snapshot.score) <= 0.5
    assert sum(c.weight for c in snapshot.components) == 100
    for c in snapshot.components:
        assert c.contribution == round(c.points * c.weight / 100, 2)
    profile = MODEL.profile_for(facts.tier, facts.lifecycle_stage)
    assert snapshot.band == profile.band(snapshot.score)
    assert len(snapshot.reasons) <= MODEL.top_reasons


def test_reasons_are_plain_sentences_each_about_something_new_worst_first() -> None:
    snapshot = score(
        healthy(
            last_usage_at=NOW - timedelta(days=9),
            active_days_7d=0,
            usage_events_7d=0,
            active_users_7d=0,
            high_urgent_opened_7d=3,
        )
    )
    # one finding per component first, the costliest component first
    assert snapshot.reasons == [
        "no activity in the last 7 days",
        "no activity for 9 days",
        "3 high/urgent tickets opened in 7 days",
    ]


def test_profiles_change_the_weights_for_a_segment() -> None:
    onboarding = score(healthy(lifecycle_stage="onboarding"))
    assert component(onboarding, "breadth").weight == 25
    assert health.evaluate(MODEL, healthy(tier="enterprise"), NOW).profile == "enterprise"


def previous(snapshot: HealthSnapshot, days_ago: float = 1) -> Previous:
    return Previous(
        snapshot=snapshot,
        model_version=MODEL.version,
        as_of=NOW - timedelta(days=days_ago),
        band_since=NOW - timedelta(days=10),
    )


def decide(before: Previous | None, after: HealthSnapshot) -> HealthChange | None:
    return health.decide_change(
        account_id="acme", model=MODEL, previous=before, after=after, as_of=NOW, score_delta=10
    )


def test_the_first_score_of_an_account_is_a_change() -> None:
    change = decide(None, score(healthy()))
    assert change is not None
    assert change.triggers == ["first_score"]
    assert change.before is None


def test_a_band_change_a_big_move_or_a_threshold_crossing_is_a_change_small_moves_are_not() -> None:
    green = score(healthy())
    assert decide(previous(green), score(healthy(active_days_7d=6))) is None

    yellow = score(healthy(last_usage_at=NOW - timedelta(days=12), active_days_7d=0))
    change = decide(previous(green), yellow)
    assert change is not None
    assert "band_changed" in change.triggers
    assert "score_delta" in change.triggers
    assert change.moved_by[0].delta_points < 0
    assert change.moved_by == sorted(change.moved_by, key=lambda m: -abs(m.delta_points))
    assert sum(m.delta_points for m in change.moved_by) == pytest.approx(
        yellow.score - green.score, abs=0.5
    )
    assert change.reasons == yellow.reasons

    # urgent tickets: support crosses its threshold; the score moves < 10, the band holds
    crossing = score(
        healthy(
            open_high_urgent=3,
            high_urgent_opened_7d=3,
            escalations_30d=2,
            oldest_open_high_urgent_update=NOW,
        )
    )
    assert crossing.band == "green"
    assert green.score - crossing.score < 10
    change = decide(previous(green), crossing)
    assert change is not None
    assert change.triggers == ["threshold_crossed"]


def test_change_ids_are_deterministic() -> None:
    after = score(healthy(active_days_7d=0))
    first = decide(previous(score(healthy())), after)
    again = decide(previous(score(healthy())), after)
    assert first is not None
    assert again is not None
    assert first.change_id == again.change_id
    assert first.change_id.startswith("hc_")
    assert len(first.change_id) <= 128
    other = health.change_id("acme", NOW + timedelta(seconds=1), MODEL.version, after)
    assert other != first.change_id


def test_days_in_band_carry_over_while_the_band_holds() -> None:
    green = score(healthy())
    kept = health.assess(MODEL, healthy(), previous(green), NOW, score_delta=10)
    assert kept is not None
    assert kept.band_since == NOW - timedelta(days=10)
    assert kept.snapshot.signals.days_in_band == 10
    assert kept.change is None
    assert kept.record_history  # the first score of a new day

    worse = healthy(last_usage_at=NOW - timedelta(days=12), active_days_7d=0)
    moved = health.assess(MODEL, worse, previous(green), NOW, score_delta=10)
    assert moved is not None
    assert moved.band_since == NOW
    assert moved.snapshot.signals.days_in_band == 0


def test_an_older_evaluation_never_overwrites_a_newer_score() -> None:
    newer = Previous(score(healthy()), MODEL.version, NOW + timedelta(hours=1), NOW)
    assert health.assess(MODEL, healthy(), newer, NOW, score_delta=10) is None


def test_the_same_day_with_no_change_is_not_recorded_again() -> None:
    same_day = Previous(score(healthy()), MODEL.version, NOW - timedelta(minutes=5), NOW)
    assessed = health.assess(MODEL, healthy(), same_day, NOW, score_delta=10)
    assert assessed is not None
    assert not assessed.record_history
