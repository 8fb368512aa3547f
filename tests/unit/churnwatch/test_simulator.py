import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import msgspec
import pytest

from churnwatch import stories
from churnwatch.simulator import (
    SEGMENT_EVENT_NAMES,
    Simulation,
    simulate,
)
from shared import events
from shared.events import AccountRecord, PersonRecord, SurveyEvent, TicketEvent, UsageEvent

START = date(2026, 7, 1)  # a Wednesday
PRIORITY_ORDER = ("low", "normal", "high", "urgent")


@dataclass
class RunStats:
    """What one pass over a whole run saw (the run is too big to keep in memory)."""

    events: int = 0
    by_kind_and_channel: Counter[tuple[str, str]] = field(default_factory=Counter)
    per_date: Counter[date] = field(default_factory=Counter)
    outside_their_day: int = 0
    out_of_order: int = 0
    segment_mismatches: int = 0
    zendesk_mismatches: int = 0
    last_event: dict[str, date] = field(default_factory=dict)
    last_seen: dict[tuple[str, str], date] = field(default_factory=dict)  # (account, user)
    users: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    daily_users: defaultdict[tuple[str, int], set[str]] = field(
        default_factory=lambda: defaultdict(set)
    )
    high_urgent_opened: defaultdict[str, list[date]] = field(
        default_factory=lambda: defaultdict(list)
    )
    nps: defaultdict[str, list[tuple[date, int]]] = field(default_factory=lambda: defaultdict(list))
    tickets: defaultdict[str, list[TicketEvent]] = field(default_factory=lambda: defaultdict(list))
    organizations: defaultdict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    account_changes: list[tuple[int, AccountRecord]] = field(default_factory=list)
    people_changes: list[tuple[int, PersonRecord]] = field(default_factory=list)


def observe(simulation: Simulation) -> RunStats:
    stats = RunStats()
    for day in simulation:
        stats.account_changes += [(day.index, r) for r in day.accounts]
        stats.people_changes += [(day.index, r) for r in day.people]
        midnight = datetime.combine(day.date, datetime.min.time(), UTC)
        previous = midnight
        for item in day.events:
            event = item.event
            stats.events += 1
            stats.by_kind_and_channel[(type(event).__name__, item.channel)] += 1
            stats.per_date[day.date] += 1
            if not midnight <= event.occurred_at < midnight + timedelta(days=1):
                stats.outside_their_day += 1
            if event.occurred_at < previous:
                stats.out_of_order += 1
            previous = event.occurred_at
            stats.last_event[event.account_id] = day.date
            if isinstance(event, UsageEvent):
                stats.last_seen[(event.account_id, event.user_id)] = day.date
                if not event.user_id.startswith("svc-"):
                    stats.users[event.account_id].add(event.user_id)
                    stats.daily_users[(event.account_id, day.index)].add(event.user_id)
                segment = item.segment
                if (item.channel == "segment") != (segment is not None) or (
                    segment is not None
                    and (
                        segment.user_id != event.user_id
                        or segment.group_id != event.account_id
                        or segment.timestamp != event.occurred_at
                        or segment.event != SEGMENT_EVENT_NAMES[event.type]
                        or segment.properties.get("feature") != event.feature
                        or segment.properties.get("quantity", 1.0) != event.quantity
                    )
                ):
                    stats.segment_mismatches += 1
            elif isinstance(event, TicketEvent):
                stats.tickets[event.ticket_id].append(event)
                if event.action == "opened" and event.priority in ("high", "urgent"):
                    stats.high_urgent_opened[event.account_id].append(day.date)
                zendesk = item.zendesk
                if (item.channel == "zendesk") != (zendesk is not None) or (
                    zendesk is not None
                    and (
                        str(zendesk.ticket_id) != event.ticket_id
                        or zendesk.status != event.status
                        or zendesk.priority != event.priority
                        or zendesk.occurred_at != event.occurred_at
                        or zendesk.event_id != event.event_id
                    )
                ):
                    stats.zendesk_mismatches += 1
                if zendesk is not None:
                    stats.organizations[zendesk.organization_id].add(event.account_id)
            elif event.kind == "nps":
                stats.nps[event.account_id].append((day.date, event.score))
            assert item.channel == "native" or not isinstance(event, SurveyEvent)
    return stats


@pytest.fixture(scope="module")
def default_run() -> Simulation:
    return simulate(7, start=START)


@pytest.fixture(scope="module")
def default_stats(default_run: Simulation) -> RunStats:
    return observe(default_run)


def rendering(simulation: Simulation) -> bytes:
    """Everything a run outputs — records, events with their channel renderings, ground truth."""
    encoder = msgspec.json.Encoder()
    parts = [encoder.encode([simulation.accounts, simulation.people, simulation.truth])]
    parts += [encoder.encode(day) for day in simulation]
    parts.append(encoder.encode(sorted(simulation.zendesk_organizations.items())))
    return b"\n".join(parts)


# -- determinism -------------------------------------------------------------------------------


def test_the_same_seed_gives_byte_identical_output() -> None:
    first = rendering(simulate(11, accounts=40, days=45, start=START))
    assert first == rendering(simulate(11, accounts=40, days=45, start=START))


def test_iterating_a_simulation_twice_gives_the_same_days() -> None:
    simulation = simulate(11, accounts=20, days=40, start=START)
    assert rendering(simulation) == rendering(simulation)


def test_a_different_seed_gives_a_different_portfolio_and_activity() -> None:
    first = simulate(11, accounts=40, days=45, start=START)
    second = simulate(12, accounts=40, days=45, start=START)
    assert [a.account_id for a in first.accounts] != [a.account_id for a in second.accounts]
    assert [t.story for t in first.truth] != [t.story for t in second.truth]
    assert rendering(first) != rendering(second)


# -- the portfolio -----------------------------------------------------------------------------


def test_the_default_mix_puts_every_story_in_the_portfolio(default_run: Simulation) -> None:
    counts = Counter(t.story for t in default_run.truth)
    assert set(counts) == set(stories.STORIES)
    assert counts == {s: round(300 * share) for s, share in stories.DEFAULT_MIX.items()}


def test_a_small_portfolio_still_has_one_account_per_story() -> None:
    simulation = simulate(3, accounts=len(stories.STORIES), days=40, start=START)
    assert sorted(t.story for t in simulation.truth) == sorted(stories.STORIES)


def test_the_portfolio_has_three_tiers_with_realistic_seats_and_arr(
    default_run: Simulation,
) -> None:
    by_tier: defaultdict[str | None, list[AccountRecord]] = defaultdict(list)
    for account in default_run.accounts:
        by_tier[account.tier].append(account)
    assert set(by_tier) == {"starter", "growth", "enterprise"}
    assert len(by_tier["starter"]) > len(by_tier["growth"]) > len(by_tier["enterprise"])

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    seats = {t: median([float(a.seats or 0) for a in by_tier[t]]) for t in by_tier}
    arr = {t: median([a.arr or 0.0 for a in by_tier[t]]) for t in by_tier}
    assert seats["starter"] < seats["growth"] < seats["enterprise"]
    assert 1_000 < arr["starter"] < arr["growth"] < arr["enterprise"] < 500_000


def test_account_ids_stay_unique_in_a_portfolio_bigger_than_the_name_list() -> None:
    simulation = simulate(1, accounts=12_000, days=stories.MIN_DAYS, start=START)
    assert len({a.account_id for a in simulation.accounts}) == 12_000


def test_renewal_dates_are_spread_over_the_year(default_run: Simulation) -> None:
    months = Counter(
        (a.renewal_date - START).days // 30 for a in default_run.accounts if a.renewal_date
    )
    assert all(months[m] >= 5 for m in range(12)), months


def test_accounts_carry_lifecycle_stages_and_a_team(default_run: Simulation) -> None:
    stages = Counter(a.lifecycle_stage for a in default_run.accounts)
    assert {"onboarding", "adopting", "mature", "renewing"} <= set(stages)
    assert "churned" not in stages
    people = {p.person_id for p in default_run.people}
    for account in default_run.accounts:
        team = account.team
        assert team.account_executive in people
        assert team.renewal_owner in people
        assert team.csm is None or team.csm in people
        assert default_run.roles[team.account_executive] == "account_executive"
        assert default_run.roles[team.renewal_owner] == "renewal_owner"
    assert sum(a.team.csm is None for a in default_run.accounts) > 0  # pooled, tech touch


def test_a_dozen_people_in_several_time_zones_report_to_managers(
    default_run: Simulation,
) -> None:
    people = {p.person_id: p for p in default_run.people}
    assert len(people) == 12
    assert len({p.time_zone for p in people.values()}) >= 8
    assert set(default_run.roles.values()) == {
        "csm",
        "account_executive",
        "renewal_owner",
        "manager",
    }
    for person in people.values():
        assert person.email
        assert person.email.endswith("@example.com")
        assert person.slack_user_id
        assert person.slack_user_id.startswith("U")
        if default_run.roles[person.person_id] != "manager":
            assert person.manager_id is not None
            assert default_run.roles[person.manager_id] == "manager"


def test_every_account_has_its_own_stable_zendesk_organization(
    default_run: Simulation, default_stats: RunStats
) -> None:
    assert len(default_run.zendesk_organizations) == len(default_run.accounts)
    assert set(default_run.zendesk_organizations.values()) == {
        a.account_id for a in default_run.accounts
    }
    for organization, accounts in default_stats.organizations.items():
        assert accounts == {default_run.zendesk_organizations[organization]}
    account = default_run.accounts[0].account_id
    assert default_run.zendesk_organizations[default_run.organization_of(account)] == account


# -- volume, seasonality, time -----------------------------------------------------------------


def test_the_default_run_is_between_three_hundred_thousand_and_a_million_events(
    default_stats: RunStats,
) -> None:
    assert 300_000 <= default_stats.events <= 1_000_000


def test_weekdays_are_busier_than_weekends(default_stats: RunStats) -> None:
    weekday: list[int] = []
    weekend: list[int] = []
    for day, count in default_stats.per_date.items():
        (weekend if day.weekday() >= 5 else weekday).append(count)
    assert sum(weekday) / len(weekday) > 2.5 * sum(weekend) / len(weekend)


def test_events_fall_within_their_day_in_time_order(default_stats: RunStats) -> None:
    assert default_stats.outside_their_day == 0
    assert default_stats.out_of_order == 0


def test_intensity_scales_usage_but_not_the_portfolio() -> None:
    full = simulate(5, accounts=30, days=40, start=START)
    half = simulate(5, accounts=30, days=40, start=START, intensity=0.5)
    assert full.accounts == half.accounts
    assert full.truth == half.truth
    full_count = sum(1 for _ in full.events())
    half_count = sum(1 for _ in half.events())
    assert 0.5 * full_count < half_count < 0.95 * full_count


def test_users_per_account_are_proportional_to_seats(
    default_run: Simulation, default_stats: RunStats
) -> None:
    ratios = [
        len(default_stats.users[a.account_id]) / (a.seats or 1)
        for a in default_run.accounts
        if a.tier == "enterprise"
    ]
    assert all(0.15 < ratio < 1.5 for ratio in ratios), sorted(ratios)


# -- channels ----------------------------------------------------------------------------------


def test_each_channel_carries_a_sensible_share(default_stats: RunStats) -> None:
    seen = default_stats.by_kind_and_channel
    usage = seen[("UsageEvent", "native")] + seen[("UsageEvent", "segment")]
    tickets = seen[("TicketEvent", "native")] + seen[("TicketEvent", "zendesk")]
    assert 0.15 < seen[("UsageEvent", "segment")] / usage < 0.5
    assert 0.4 < seen[("TicketEvent", "zendesk")] / tickets < 0.8
    assert seen[("SurveyEvent", "native")] > 0
    assert set(seen) == {
        ("UsageEvent", "native"),
        ("UsageEvent", "segment"),
        ("TicketEvent", "native"),
        ("TicketEvent", "zendesk"),
        ("SurveyEvent", "native"),
    }


def test_segment_calls_and_zendesk_changes_say_what_their_event_says(
    default_stats: RunStats,
) -> None:
    assert default_stats.segment_mismatches == 0
    assert default_stats.zendesk_mismatches == 0


def test_usage_has_every_type_and_features_from_the_catalogue() -> None:
    from churnwatch.simulator import FEATURES

    simulation = simulate(2, accounts=30, days=40, start=START)
    usage = [e.event for e in simulation.events() if isinstance(e.event, UsageEvent)]
    assert {u.type for u in usage} == set(SEGMENT_EVENT_NAMES)
    assert all((u.type == "feature_used") == (u.feature is not None) for u in usage)
    assert {u.feature for u in usage if u.feature} <= set(FEATURES)


def test_ticket_lifecycles_open_first_and_reopen_only_after_a_solution(
    default_stats: RunStats,
) -> None:
    actions = Counter[str]()
    priorities = Counter[str]()
    for changes in default_stats.tickets.values():
        assert changes[0].action == "opened"
        assert changes[0].status == "new"
        assert len({c.account_id for c in changes}) == 1
        for before, after in itertools.pairwise(changes):
            assert after.occurred_at > before.occurred_at
            if after.action == "reopened":
                assert before.status == "solved"
            if after.action == "escalated":  # one step up
                assert PRIORITY_ORDER.index(after.priority) == (
                    PRIORITY_ORDER.index(before.priority) + 1
                )
        actions.update(c.action for c in changes)
        priorities[changes[0].priority] += 1
    assert set(actions) == {"opened", "updated", "escalated", "solved", "reopened"}
    assert set(priorities) == {"low", "normal", "high", "urgent"}


# -- stories and ground truth ------------------------------------------------------------------


def test_churners_are_silent_from_their_churn_date(
    default_run: Simulation, default_stats: RunStats
) -> None:
    churners = [t for t in default_run.truth if t.churned]
    assert {t.story for t in churners} == stories.CHURN_STORIES
    for truth in churners:
        assert truth.churn_date is not None
        assert START < truth.churn_date < default_run.end
        assert default_stats.last_event[truth.account_id] < truth.churn_date
    for truth in default_run.truth:
        if not truth.churned:
            assert truth.churn_date is None
            assert default_stats.last_event[truth.account_id] >= default_run.end - timedelta(7)


def test_a_silent_drop_off_stops_at_least_two_weeks_before_the_churn(
    default_run: Simulation, default_stats: RunStats
) -> None:
    for truth in default_run.truth:
        if truth.story == "silent_drop_off":
            assert truth.churn_date is not None
            silent_days = (truth.churn_date - default_stats.last_event[truth.account_id]).days
            assert silent_days > 14


def test_the_champion_of_a_champion_leaves_account_stops_weeks_before_the_churn(
    default_run: Simulation, default_stats: RunStats
) -> None:
    for index, truth in enumerate(default_run.truth):
        if truth.story == "champion_leaves":
            assert truth.churn_date is not None
            champion = f"u-{index:04d}-000"
            gone = default_stats.last_seen[(truth.account_id, champion)]
            assert (truth.churn_date - gone).days >= 14


def test_a_ticket_storm_is_a_burst_of_high_and_urgent_tickets(
    default_run: Simulation, default_stats: RunStats
) -> None:
    for truth in default_run.truth:
        if truth.story == "ticket_storm":
            opened = sorted(default_stats.high_urgent_opened[truth.account_id])
            bursts = [
                sum(1 for d in opened if first <= d < first + timedelta(days=14))
                for first in opened
            ]
            assert max(bursts) >= 5


def test_expansion_accounts_grow_past_their_seats_from_the_opportunity_date(
    default_run: Simulation, default_stats: RunStats
) -> None:
    def active_30_days(account_id: str, day: int) -> int:
        users: set[str] = set()
        for d in range(max(0, day - 29), day + 1):
            users |= default_stats.daily_users[(account_id, d)]
        return len(users)

    grown = 0
    expansions = 0
    for account, truth in zip(default_run.accounts, default_run.truth, strict=True):
        if truth.story != "expansion":
            continue
        expansions += 1
        assert truth.opportunity_date is not None
        assert account.seats
        at_start = active_30_days(account.account_id, 29) / account.seats
        a_week_after = min(default_run.days - 1, (truth.opportunity_date - START).days + 7)
        assert at_start < 0.85
        assert active_30_days(account.account_id, a_week_after) / account.seats > at_start
        grown += active_30_days(account.account_id, default_run.days - 1) >= account.seats
    assert grown >= 0.8 * expansions


def test_advocates_answer_nps_nine_or_ten_from_their_opportunity_date(
    default_run: Simulation, default_stats: RunStats
) -> None:
    for truth in default_run.truth:
        if truth.story == "advocate":
            answers = default_stats.nps[truth.account_id]
            assert all(score >= 9 for _, score in answers)
            assert (truth.opportunity_date, 10) in answers or (
                truth.opportunity_date,
                9,
            ) in answers


def test_only_opportunity_stories_have_an_opportunity_date(default_run: Simulation) -> None:
    for truth in default_run.truth:
        has_date = truth.opportunity_date is not None
        assert has_date == (truth.story in stories.OPPORTUNITY_STORIES)


def test_renewal_yellow_accounts_churn_on_their_renewal_date(default_run: Simulation) -> None:
    for account, truth in zip(default_run.accounts, default_run.truth, strict=True):
        if truth.story == "renewal_yellow":
            assert truth.churn_date == account.renewal_date


def test_accounts_that_stay_renew_and_roll_their_renewal_date_over(
    default_run: Simulation, default_stats: RunStats
) -> None:
    initial = {a.account_id: a for a in default_run.accounts}
    rolled = 0
    for truth in default_run.truth:
        renewal = initial[truth.account_id].renewal_date
        if truth.churned or renewal is None or renewal >= default_run.end:
            continue
        changes = [
            r
            for d, r in default_stats.account_changes
            if r.account_id == truth.account_id and START + timedelta(d) == renewal
        ]
        assert changes
        assert changes[-1].renewal_date == renewal + timedelta(days=365)
        rolled += 1
    assert rolled > 10


def test_the_crm_is_never_told_about_a_churn(
    default_run: Simulation, default_stats: RunStats
) -> None:
    churn_dates = {t.account_id: t.churn_date for t in default_run.truth if t.churned}
    for day, record in default_stats.account_changes:
        assert record.lifecycle_stage != "churned"
        churn = churn_dates.get(record.account_id)
        assert churn is None or START + timedelta(day) < churn


def test_a_csm_leaves_half_way_and_their_accounts_move_to_a_colleague_a_week_later(
    default_run: Simulation, default_stats: RunStats
) -> None:
    leavers = [(d, p) for d, p in default_stats.people_changes if d > 0]
    assert len(leavers) == 1
    leave_day, leaver = leavers[0]
    assert leave_day == default_run.days // 2
    assert not leaver.active
    moved = [
        r for d, r in default_stats.account_changes if d == leave_day + 7 and r.team.csm is not None
    ]
    owned = {a.account_id for a in default_run.accounts if a.team.csm == leaver.person_id}
    churned_by_then = {
        t.account_id
        for t in default_run.truth
        if t.churn_date and t.churn_date <= START + timedelta(leave_day + 7)
    }
    assert {r.account_id for r in moved} >= owned - churned_by_then
    assert all(r.team.csm != leaver.person_id for r in moved)
    assert len(owned) > 0


def test_an_expansion_upsell_raises_seats_and_arr(default_stats: RunStats) -> None:
    initial: dict[str, AccountRecord] = {}
    raised = 0
    for _, record in default_stats.account_changes:
        before = initial.setdefault(record.account_id, record)
        if (record.seats or 0) > (before.seats or 0):
            assert (record.arr or 0) > (before.arr or 0)
            raised += 1
    assert raised > 0


# -- the v1 contract ---------------------------------------------------------------------------


def test_every_record_and_event_round_trips_through_the_v1_contract() -> None:
    simulation = simulate(9, accounts=60, days=60, start=START)
    for day in simulation:
        for account in day.accounts:
            assert events.decode_account(events.encode(account)) == account
        for person in day.people:
            assert events.decode_person(events.encode(person)) == person
        for item in day.events:
            assert events.decode_event(events.encode(item.event)) == item.event


def test_event_ids_are_unique_across_the_run() -> None:
    simulation = simulate(9, accounts=60, days=60, start=START)
    ids = [item.event.event_id for item in simulation.events()]
    assert len(ids) == len(set(ids))


def test_a_run_too_short_for_a_story_or_without_accounts_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        simulate(1, days=stories.MIN_DAYS - 1, start=START)
    with pytest.raises(ValueError, match="at least one account"):
        simulate(1, accounts=0, start=START)
