"""What happens to each account of the simulated portfolio, as data.

Every account lives exactly one story. A story is decided once, up front, as a ``StoryPlan``:
plain numbers — days are indexes into the run (0 is the start date) — that the simulator reads
generically: an activity multiplier over time, users who join or quit, a champion who leaves, a
ticket storm, a renewal inside the run, the sentiment of survey answers. Nothing here draws
events; ``plan`` only decides the shape, ``activity`` reads it for one day.

The ground truth of the run (who churns and when, when an opportunity became real) comes from
these plans and never from the events, so the pipeline cannot see it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

Story = Literal[
    "healthy",
    "expansion",
    "advocate",
    "holiday_dip",
    "one_off_urgent",
    "lukewarm_renews",
    "slow_decay",
    "champion_leaves",
    "ticket_storm",
    "silent_drop_off",
    "renewal_yellow",
]
STORIES: tuple[Story, ...] = get_args(Story)

CHURN_STORIES: frozenset[Story] = frozenset(
    {"slow_decay", "champion_leaves", "ticket_storm", "silent_drop_off", "renewal_yellow"}
)
OPPORTUNITY_STORIES: frozenset[Story] = frozenset({"expansion", "advocate"})
# Healthy-looking accounts with a blip that must not be mistaken for churn.
NOISE_STORIES: frozenset[Story] = frozenset({"holiday_dip", "one_off_urgent", "lukewarm_renews"})

DEFAULT_MIX: Mapping[Story, float] = {
    "healthy": 0.43,
    "expansion": 0.08,
    "advocate": 0.08,
    "holiday_dip": 0.06,
    "one_off_urgent": 0.06,
    "lukewarm_renews": 0.04,
    "slow_decay": 0.05,
    "champion_leaves": 0.05,
    "ticket_storm": 0.05,
    "silent_drop_off": 0.05,
    "renewal_yellow": 0.05,
}

MIN_DAYS = 30  # below this the stories have no room for a baseline before they start


@dataclass(frozen=True)
class Window:
    """Days ``start`` (inclusive) to ``end`` (exclusive)."""

    start: int
    end: int

    def __contains__(self, day: object) -> bool:
        return isinstance(day, int) and self.start <= day < self.end


@dataclass(frozen=True)
class Ramp:
    """Activity multiplied by a factor falling linearly from 1 at ``start`` to ``floor`` at
    ``end``, and staying there."""

    start: int
    end: int
    floor: float

    def factor(self, day: int) -> float:
        if day <= self.start:
            return 1.0
        progress = min(1.0, (day - self.start) / max(1, self.end - self.start))
        return 1.0 - (1.0 - self.floor) * progress


@dataclass(frozen=True)
class StoryPlan:
    """One account's story. Days are run indexes; ``None`` means "does not happen"."""

    story: Story
    churn_day: int | None = None  # the account is lost this day; nothing happens from then on
    quiet_from: int | None = None  # every activity stops (before churn_day for a silent drop-off)
    opportunity_day: int | None = None  # expansion / advocacy became real
    renewal_day: int | None = None  # a renewal the story pins inside the run
    # who uses the product
    initial_users: int = 1  # provisioned users at the start (proportional to seats)
    joins: tuple[int, ...] = ()  # the day each further user is provisioned (expansion)
    seat_change: tuple[int, int] | None = None  # (day, new seat count): the upsell closes
    propensity: float = 1.0  # scales every user's chance of being active on a day
    breadth: int = 5  # features of the catalogue the account uses
    champion_leaves_day: int | None = None  # the most active user stops that day
    attrition: Window | None = None  # some users quit on days spread over this window
    attrition_share: float = 0.0
    integration_stops_day: int | None = None  # the API integration goes quiet
    # how much they use it, day by day
    decline: Ramp | None = None
    dip: Window | None = None
    dip_factor: float = 1.0
    # support
    ticket_rate: float = 1.0  # multiplies the tier's base rate of new tickets
    storm: Window | None = None
    storm_tickets: int = 0
    urgent_day: int | None = None  # one urgent ticket, quickly solved
    # sentiment
    nps: tuple[int, int] = (7, 10)  # range of NPS answers...
    nps_in_trouble: tuple[int, int] = (7, 10)  # ...and once trouble started
    csat: tuple[int, int] = (4, 5)
    csat_in_trouble: tuple[int, int] = (4, 5)
    trouble_from: int | None = None
    survey_days: tuple[int, ...] = ()  # NPS survey waves
    promoter_day: int | None = None  # advocate: a 9–10 NPS answer arrives that day

    @property
    def churns(self) -> bool:
        return self.churn_day is not None

    @property
    def users(self) -> int:
        """Users provisioned by the end of the run."""
        return self.initial_users + len(self.joins)

    def in_trouble(self, day: int) -> bool:
        return self.trouble_from is not None and day >= self.trouble_from


def activity(plan: StoryPlan, day: int) -> float:
    """Multiplier of every user's chance of being active on ``day``; 0 once the account is quiet."""
    if plan.quiet_from is not None and day >= plan.quiet_from:
        return 0.0
    factor = 1.0
    if plan.decline is not None:
        factor *= plan.decline.factor(day)
    if plan.dip is not None and day in plan.dip:
        factor *= plan.dip_factor
    return factor


def assign(accounts: int, mix: Mapping[Story, float], rng: random.Random) -> list[Story]:
    """The story of each account: exact quotas from ``mix`` (largest remainder), shuffled.

    Every story with a positive share gets at least one account when there are enough accounts.
    """
    shares = {story: share for story, share in mix.items() if share > 0}
    if not shares:
        raise ValueError("the story mix has no positive share")
    total = sum(shares.values())
    exact = {story: accounts * share / total for story, share in shares.items()}
    quota = {story: math.floor(value) for story, value in exact.items()}
    by_remainder = sorted(shares, key=lambda s: (-(exact[s] - quota[s]), STORIES.index(s)))
    for story in by_remainder[: accounts - sum(quota.values())]:
        quota[story] += 1
    if accounts >= len(shares):
        for story in shares:
            while quota[story] == 0:
                donor = max(quota, key=lambda s: (quota[s], -STORIES.index(s)))
                quota[donor] -= 1
                quota[story] += 1
    stories = [story for story in STORIES if story in quota for _ in range(quota[story])]
    rng.shuffle(stories)
    return stories


def plan(story: Story, *, seats: int, days: int, rng: random.Random) -> StoryPlan:
    """Decide the shape of ``story`` for an account with ``seats`` seats over ``days`` days."""
    if days < MIN_DAYS:
        raise ValueError(f"a run needs at least {MIN_DAYS} days")

    def day_between(low: float, high: float) -> int:
        return rng.randint(round(low * days), round(high * days))

    def users(low: float, high: float) -> int:
        return max(1, round(seats * rng.uniform(low, high)))

    last = days - 1
    first_wave = day_between(0.05, 0.45)
    waves = tuple(d for d in (first_wave, first_wave + round(0.45 * days)) if d < days)

    if story == "healthy":
        return StoryPlan(
            story,
            initial_users=users(0.55, 0.85),
            breadth=rng.randint(4, 8),
            nps=(7, 10),
            nps_in_trouble=(7, 10),
            survey_days=waves,
        )

    if story == "advocate":
        promoter = day_between(0.25, 0.55)
        return StoryPlan(
            story,
            opportunity_day=promoter,
            initial_users=users(0.7, 0.9),
            propensity=1.15,
            breadth=rng.randint(7, 11),
            ticket_rate=0.6,
            nps=(9, 10),
            nps_in_trouble=(9, 10),
            csat=(5, 5),
            csat_in_trouble=(5, 5),
            survey_days=tuple(sorted({promoter, *waves})),
            promoter_day=promoter,
        )

    if story == "expansion":
        initial = users(0.6, 0.75)
        target = max(initial + 2, math.ceil(seats * rng.uniform(1.1, 1.25)))
        grow_from, grow_to = day_between(0.1, 0.3), day_between(0.55, 0.8)
        added = target - initial
        joins = tuple(
            grow_from + round((k + 1) * (grow_to - grow_from) / added) for k in range(added)
        )
        # The opportunity is real the day provisioned (and, being keen, active) users reach
        # 90% of the seats.
        needed = math.ceil(0.9 * seats)
        opportunity = grow_from if initial >= needed else joins[needed - initial - 1]
        close = opportunity + rng.randint(21, 35)
        seat_change = (close, math.ceil(target * 1.3)) if close < days else None
        return StoryPlan(
            story,
            opportunity_day=opportunity,
            initial_users=initial,
            joins=joins,
            seat_change=seat_change,
            propensity=1.1,
            breadth=rng.randint(5, 9),
            nps=(8, 10),
            nps_in_trouble=(8, 10),
            survey_days=waves,
        )

    if story == "holiday_dip":
        start = day_between(0.25, 0.8)
        return StoryPlan(
            story,
            initial_users=users(0.55, 0.85),
            breadth=rng.randint(4, 8),
            dip=Window(start, min(days, start + rng.randint(7, 12))),
            dip_factor=rng.uniform(0.1, 0.3),
            survey_days=waves,
        )

    if story == "one_off_urgent":
        return StoryPlan(
            story,
            initial_users=users(0.55, 0.85),
            breadth=rng.randint(4, 8),
            urgent_day=day_between(0.25, 0.85),
            survey_days=waves,
        )

    if story == "lukewarm_renews":
        return StoryPlan(
            story,
            renewal_day=day_between(0.45, 0.9),
            initial_users=users(0.3, 0.5),
            propensity=0.6,
            breadth=rng.randint(2, 5),
            ticket_rate=1.3,
            nps=(5, 8),
            nps_in_trouble=(5, 8),
            csat=(3, 5),
            csat_in_trouble=(3, 5),
            survey_days=waves,
        )

    if story == "slow_decay":
        start = day_between(0.2, 0.45)
        churn = min(last, start + max(14, day_between(0.3, 0.5)))
        return StoryPlan(
            story,
            churn_day=churn,
            quiet_from=churn,
            initial_users=users(0.5, 0.8),
            breadth=rng.randint(3, 7),
            decline=Ramp(start, churn, rng.uniform(0.08, 0.18)),
            attrition=Window(start, churn),
            attrition_share=rng.uniform(0.5, 0.7),
            nps=(6, 9),
            nps_in_trouble=(2, 6),
            csat=(3, 5),
            csat_in_trouble=(2, 4),
            trouble_from=(start + churn) // 2,
            survey_days=waves,
        )

    if story == "champion_leaves":
        leaves = day_between(0.3, 0.6)
        churn = min(last, leaves + max(14, day_between(0.2, 0.35)))
        return StoryPlan(
            story,
            churn_day=churn,
            quiet_from=churn,
            initial_users=users(0.5, 0.8),
            breadth=rng.randint(4, 8),
            champion_leaves_day=leaves,
            attrition=Window(leaves, churn),
            attrition_share=rng.uniform(0.4, 0.6),
            integration_stops_day=leaves + rng.randint(5, 14),
            decline=Ramp(leaves + 3, churn, rng.uniform(0.25, 0.4)),
            nps=(7, 9),
            nps_in_trouble=(3, 6),
            trouble_from=leaves + 7,
            survey_days=waves,
        )

    if story == "ticket_storm":
        start = day_between(0.3, 0.65)
        storm = Window(start, start + rng.randint(7, 14))
        churn = min(last, max(storm.end + 7, start + day_between(0.18, 0.3)))
        return StoryPlan(
            story,
            churn_day=churn,
            quiet_from=churn,
            initial_users=users(0.5, 0.8),
            breadth=rng.randint(4, 8),
            storm=storm,
            storm_tickets=rng.randint(5, 10),
            decline=Ramp(start + 5, churn, rng.uniform(0.3, 0.5)),
            attrition=Window(start + 7, churn),
            attrition_share=rng.uniform(0.25, 0.45),
            nps=(6, 9),
            nps_in_trouble=(0, 4),
            csat=(3, 5),
            csat_in_trouble=(1, 2),
            trouble_from=start,
            survey_days=waves,
        )

    if story == "silent_drop_off":
        stops = rng.randint(round(0.4 * days), days - 16)
        churn = rng.randint(stops + 14, min(stops + 30, last))
        return StoryPlan(
            story,
            churn_day=churn,
            quiet_from=stops,
            initial_users=users(0.5, 0.8),
            breadth=rng.randint(4, 8),
            nps=(6, 9),
            nps_in_trouble=(6, 9),
            survey_days=waves,
        )

    if story == "renewal_yellow":
        churn = day_between(0.5, 0.95)
        return StoryPlan(
            story,
            churn_day=churn,
            quiet_from=churn,
            renewal_day=churn,
            initial_users=users(0.25, 0.45),
            propensity=0.55,
            breadth=rng.randint(2, 4),
            decline=Ramp(max(0, churn - 30), churn, rng.uniform(0.6, 0.75)),
            ticket_rate=1.5,
            nps=(4, 7),
            nps_in_trouble=(3, 6),
            csat=(2, 4),
            csat_in_trouble=(2, 4),
            trouble_from=max(0, churn - 30),
            survey_days=waves,
        )

    raise ValueError(f"unknown story {story!r}")
