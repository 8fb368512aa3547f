"""Leaving out rows the database already holds: only rows that would merge into a no-op."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.scoring.aggregate import MASK_DAYS, Activity, DayMask, coalesce
from services.scoring.known import KnownRows
from tests.unit.scoring.builders import NOW, usage

ANCHOR = date(2026, 11, 21).toordinal()
masks = st.builds(
    lambda offset, days: DayMask(ANCHOR - offset, sum(1 << d for d in days) or 1),
    st.integers(0, 80),
    st.sets(st.integers(0, MASK_DAYS - 1), max_size=6),
)


@given(masks, masks)
def test_a_mask_is_left_out_exactly_when_merging_it_would_change_nothing(
    written: DayMask, incoming: DayMask
) -> None:
    known = KnownRows()
    known.remember({("acme", "u1"): written}, {}, {})
    left = known.new_users({("acme", "u1"): incoming})
    assert (("acme", "u1") not in left) == (written.merge(incoming) == written)


def test_a_user_active_again_the_same_day_sends_nothing_and_a_new_day_sends_its_row() -> None:
    known = KnownRows()
    first = coalesce([usage("acme", user="u1", feature="reports", at=NOW)])
    known.remember(first.users, first.features, first.activity)

    later = coalesce([usage("acme", user="u1", feature="reports", at=NOW + timedelta(hours=1))])
    assert known.new_users(later.users) == {}
    assert known.new_features(later.features) == {}
    assert known.new_activity(later.activity) == {}

    tomorrow = coalesce([usage("acme", user="u1", at=NOW + timedelta(days=1))])
    assert set(known.new_users(tomorrow.users)) == {("acme", "u1")}
    assert set(known.new_activity(tomorrow.activity)) == {"acme"}


def test_an_older_first_time_or_an_nps_answer_is_sent_even_for_a_known_account() -> None:
    known = KnownRows()
    seen = Activity(known_since=NOW, first_usage_at=NOW, last_usage_day=NOW.date())
    known.remember({}, {}, {"acme": seen})
    earlier = Activity(
        known_since=NOW - timedelta(hours=1),
        first_usage_at=NOW - timedelta(hours=1),
        last_usage_day=NOW.date(),
    )
    answered = Activity(known_since=NOW, nps_latest=(NOW, "e1", 9))
    assert set(known.new_activity({"acme": earlier})) == {"acme"}
    assert set(known.new_activity({"acme": answered})) == {"acme"}
    assert known.new_activity({"acme": Activity(known_since=NOW + timedelta(hours=2))}) == {}


def test_the_memory_is_bounded_and_forgetting_only_means_sending_again() -> None:
    known = KnownRows(max_entries=10)
    for user in range(100):
        batch = coalesce([usage("acme", user=f"u{user}", at=NOW)])
        known.remember(batch.users, {}, {})
    assert len(known) <= 10
    again = coalesce([usage("acme", user="u0", at=NOW)])
    assert set(known.new_users(again.users)) == {("acme", "u0")}


times = st.one_of(st.none(), st.integers(0, 72).map(lambda h: NOW - timedelta(hours=h)))
days = st.one_of(st.none(), st.integers(0, 3).map(lambda d: NOW.date() - timedelta(days=d)))
activities = st.builds(
    Activity,
    known_since=st.integers(0, 72).map(lambda h: NOW - timedelta(hours=h)),
    first_usage_at=times,
    last_usage_day=days,
    first_feature_at=times,
    last_feature_day=days,
    last_ticket_at=times,
    last_survey_at=times,
    nps_latest=st.one_of(st.none(), st.tuples(times.filter(bool), st.just("e"), st.just(7))),
)


@given(activities, activities)
def test_activity_covers_exactly_what_merging_would_not_change(
    held: Activity, incoming: Activity
) -> None:
    merged = Activity(**{f: getattr(held, f) for f in Activity.__slots__})
    merged.merge(incoming)
    assert held.covers(incoming) == (merged == held)
