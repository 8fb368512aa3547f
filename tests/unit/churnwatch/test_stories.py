import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from churnwatch import stories
from churnwatch.stories import CHURN_STORIES, STORIES, Ramp, StoryPlan, Window


def test_the_default_mix_covers_every_story_and_adds_up_to_one() -> None:
    assert set(stories.DEFAULT_MIX) == set(STORIES)
    assert sum(stories.DEFAULT_MIX.values()) == pytest.approx(1.0)
    assert set(STORIES) > CHURN_STORIES | stories.OPPORTUNITY_STORIES | stories.NOISE_STORIES


def test_assign_gives_exact_quotas_of_the_mix() -> None:
    counts = Counter(stories.assign(300, stories.DEFAULT_MIX, random.Random(1)))
    assert counts == {s: round(300 * share) for s, share in stories.DEFAULT_MIX.items()}


def test_assign_gives_every_story_an_account_when_there_are_enough_accounts() -> None:
    assert Counter(stories.assign(len(STORIES), stories.DEFAULT_MIX, random.Random(2))) == {
        story: 1 for story in STORIES
    }


def test_assign_is_deterministic_for_a_generator_state_and_shuffled() -> None:
    first = stories.assign(100, stories.DEFAULT_MIX, random.Random(3))
    assert first == stories.assign(100, stories.DEFAULT_MIX, random.Random(3))
    assert first != sorted(first, key=STORIES.index)


def test_a_ramp_falls_linearly_to_its_floor_and_stays_there() -> None:
    ramp = Ramp(start=10, end=20, floor=0.2)
    assert [ramp.factor(d) for d in (0, 10, 15, 20, 40)] == pytest.approx([1, 1, 0.6, 0.2, 0.2])


def test_activity_is_zero_from_the_day_an_account_goes_quiet() -> None:
    plan = StoryPlan("silent_drop_off", churn_day=60, quiet_from=40)
    assert stories.activity(plan, 39) > 0
    assert stories.activity(plan, 40) == 0
    assert stories.activity(plan, 80) == 0


def test_a_holiday_dip_lowers_activity_only_inside_its_window() -> None:
    plan = StoryPlan("holiday_dip", dip=Window(30, 40), dip_factor=0.2)
    assert [stories.activity(plan, d) for d in (29, 30, 39, 40)] == [1.0, 0.2, 0.2, 1.0]


@given(
    story=st.sampled_from(STORIES),
    days=st.integers(min_value=stories.MIN_DAYS, max_value=400),
    seats=st.integers(min_value=1, max_value=2_000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_every_plan_fits_inside_its_run(
    story: stories.Story, days: int, seats: int, seed: int
) -> None:
    plan = stories.plan(story, seats=seats, days=days, rng=random.Random(seed))
    assert plan.story == story
    assert plan.initial_users >= 1
    assert plan.churns == (story in CHURN_STORIES)
    if plan.churn_day is not None:
        assert 0 < plan.churn_day < days
        assert plan.quiet_from is not None
        assert plan.quiet_from <= plan.churn_day
    if story == "silent_drop_off":
        assert plan.churn_day is not None
        assert plan.quiet_from is not None
        assert plan.churn_day - plan.quiet_from >= 14
    if story == "renewal_yellow":
        assert plan.renewal_day == plan.churn_day
    if story in stories.OPPORTUNITY_STORIES:
        assert plan.opportunity_day is not None
        assert 0 < plan.opportunity_day < days
    else:
        assert plan.opportunity_day is None
    if story == "expansion":
        assert plan.users > seats  # past the seat count by the end
        assert list(plan.joins) == sorted(plan.joins)
    assert all(0 <= wave < days for wave in plan.survey_days)


def test_a_run_shorter_than_a_story_needs_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        stories.plan("healthy", seats=10, days=stories.MIN_DAYS - 1, rng=random.Random(0))
