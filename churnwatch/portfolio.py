"""The simulated portfolio: its people, its accounts, and how their records change.

Decided once per run from the portfolio's own ``random.Random``: a fixed roster of a dozen
people (CSMs, account executives, renewal owners and their two managers) in several time zones,
and the accounts — tier, seats, ARR, region, contract start and renewal, lifecycle stage, the
account team, the channels its events travel through, its Zendesk organization, and its story
(``churnwatch.stories``). ``record_changes`` then walks the run day by day and says which full
account / person records change when (renewals roll over, stages move, an upsell adds seats, a
CSM leaves and their accounts are reassigned).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

import msgspec

from churnwatch import stories
from churnwatch.stories import Story, StoryPlan
from shared.events import AccountRecord, AccountTeam, LifecycleStage, PersonRecord

Channel = Literal["native", "segment", "zendesk"]
Tier = Literal["starter", "growth", "enterprise"]
Region = Literal["americas", "emea", "apac"]

CRM_SOURCE = "crm-sync"
HR_SOURCE = "hr-sync"
RENEWAL_WINDOW_DAYS = 90  # lifecycle stage "renewing" this close to the renewal date


@dataclass(frozen=True, slots=True)
class Account:
    """Everything decided up front about one account."""

    index: int
    account_id: str
    name: str
    tier: Tier
    seats: int
    price_per_seat: float  # yearly
    platform_fee: float
    region: Region
    peak_hour_utc: float
    customer_since: int  # run day the contract started (<= 0)
    renewal_day: int  # run day of the next renewal
    team: AccountTeam
    usage_channel: Channel
    ticket_channel: Channel
    organization_id: int
    integration: bool  # an API integration syncs twice a day
    tickets_per_day: float  # mean new tickets on a weekday (story and noise included)
    plan: StoryPlan

    def arr(self, seats: int) -> float:
        """Annual recurring revenue for ``seats`` seats, rounded to 100."""
        return float(round((seats * self.price_per_seat + self.platform_fee) / 100) * 100)


Role = Literal["manager", "csm", "account_executive", "renewal_owner"]

# person id, name, role, time zone, manager, regions covered
ROSTER: tuple[tuple[str, str, Role, str, str | None, tuple[Region, ...]], ...] = (
    ("p_grace", "Grace Okafor", "manager", "America/New_York", None, ()),
    ("p_henrik", "Henrik Larsen", "manager", "Europe/Copenhagen", None, ()),
    ("p_maria", "Maria Lopez", "csm", "Europe/Madrid", "p_grace", ("emea",)),
    ("p_oliver", "Oliver Bennett", "csm", "Europe/London", "p_grace", ("emea",)),
    ("p_dana", "Dana Whitfield", "csm", "America/Chicago", "p_grace", ("americas",)),
    ("p_lucas", "Lucas Ferreira", "csm", "America/Los_Angeles", "p_grace", ("americas",)),
    ("p_mei", "Mei Tan", "csm", "Asia/Singapore", "p_grace", ("apac",)),
    ("p_james", "James Carter", "account_executive", "America/New_York", "p_henrik", ("americas",)),
    ("p_lena", "Lena Fischer", "account_executive", "Europe/Berlin", "p_henrik", ("emea",)),
    ("p_kenji", "Kenji Watanabe", "account_executive", "Australia/Sydney", "p_henrik", ("apac",)),
    ("p_aisha", "Aisha Rahman", "renewal_owner", "America/Denver", "p_grace", ("americas", "apac")),
    ("p_sean", "Sean Murphy", "renewal_owner", "Europe/Dublin", "p_grace", ("emea",)),
)
# Half-way through the run a CSM leaves (inactive), and a week later their accounts move on.
_LEAVER, _SUCCESSOR = "p_lucas", "p_dana"
_REASSIGN_AFTER_DAYS = 7

_TIERS: tuple[tuple[Tier, float, tuple[int, int], tuple[float, float], float], ...] = (
    # tier, share, seats, yearly price per seat, platform fee
    ("starter", 0.5, (3, 12), (300.0, 500.0), 0.0),
    ("growth", 0.35, (12, 50), (400.0, 700.0), 5_000.0),
    ("enterprise", 0.15, (50, 200), (600.0, 1_100.0), 20_000.0),
)
_TICKETS_PER_DAY: Mapping[Tier, float] = {"starter": 0.02, "growth": 0.05, "enterprise": 0.12}
_INTEGRATION_SHARE: Mapping[Tier, float] = {"starter": 0.15, "growth": 0.5, "enterprise": 0.8}
_REGIONS: tuple[tuple[Region, float, tuple[float, float]], ...] = (
    # region, share, peak hour of use in UTC (local early afternoon)
    ("americas", 0.45, (18.0, 21.0)),
    ("emea", 0.4, (11.0, 13.0)),
    ("apac", 0.15, (3.0, 5.0)),
)
_SEGMENT_SHARE = 0.35  # accounts whose product usage arrives as Segment calls
_ZENDESK_SHARE = 0.6  # accounts whose tickets arrive as Zendesk webhooks
_POOLED_STARTER_SHARE = 0.15  # starter accounts without a named CSM (tech touch)
_NEW_CUSTOMER_SHARE = 0.15  # healthy-looking accounts still onboarding at the start

# fmt: off
_NAME_FIRST = (
    "Acme", "Atlas", "Beacon", "Bright", "Cedar", "Cobalt", "Copper", "Delta", "Drift", "Echo",
    "Ember", "Falcon", "Fjord", "Glacier", "Granite", "Harbor", "Helix", "Indigo", "Iris",
    "Jasper", "Juniper", "Kestrel", "Keystone", "Lark", "Lumen", "Maple", "Meridian", "Nimbus",
    "Northwind", "Nova", "Onyx", "Orbit", "Pioneer", "Polar", "Quartz", "Quill", "Redwood",
    "Ridge", "Sable", "Summit", "Terra", "Tidal", "Vertex", "Willow", "Zephyr",
)
_NAME_MIDDLE = ("", "", "", "Valley", "Peak", "River", "Stone", "Bay", "Field", "Wave", "Bridge")
_NAME_LAST = (
    "Labs", "Logistics", "Health", "Analytics", "Systems", "Foods", "Media", "Robotics",
    "Energy", "Finance", "Retail", "Studios", "Bank", "Insurance", "Works", "Software",
    "Clinics", "Freight", "Capital", "Learning",
)
# fmt: on


def people(rng: random.Random, midnight: datetime) -> tuple[PersonRecord, ...]:
    """The roster as person records, with Slack user ids drawn from ``rng``."""
    return tuple(_person(entry, rng, midnight) for entry in ROSTER)


def roles() -> dict[str, Role]:
    """Person id -> role."""
    return {entry[0]: entry[2] for entry in ROSTER}


def _person(
    entry: tuple[str, str, Role, str, str | None, tuple[Region, ...]],
    rng: random.Random,
    midnight: datetime,
) -> PersonRecord:
    person_id, name, _role, time_zone, manager, _regions = entry
    slack = "U" + "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", k=10))
    return PersonRecord(
        person_id=person_id,
        name=name,
        email=name.lower().replace(" ", ".") + "@example.com",
        slack_user_id=slack,
        manager_id=manager,
        time_zone=time_zone,
        active=True,
        updated_at=midnight,
        source=HR_SOURCE,
    )


def _owners(role: Role, region: Region) -> list[str]:
    return [e[0] for e in ROSTER if e[2] == role and region in e[5]]


def accounts(
    count: int, days: int, mix: Mapping[Story, float], rng: random.Random
) -> tuple[Account, ...]:
    """``count`` accounts, their stories assigned from ``mix``."""
    story_of = stories.assign(count, mix, rng)
    taken: set[str] = set()
    organizations: set[int] = set()
    portfolio: list[Account] = []
    for index, story in enumerate(story_of):
        name = _company_name(rng, taken)
        tier, _share, seat_range, price_range, fee = rng.choices(
            _TIERS, weights=[t[1] for t in _TIERS]
        )[0]
        seats = rng.randint(*seat_range)
        region, _weight, peak = rng.choices(_REGIONS, weights=[r[1] for r in _REGIONS])[0]
        plan = stories.plan(story, seats=seats, days=days, rng=rng)

        if plan.renewal_day is not None:
            renewal = plan.renewal_day
        elif plan.churn_day is not None:  # churners cancel before their renewal comes up
            renewal = rng.randint(plan.churn_day + 14, max(plan.churn_day + 14, 364))
        elif story in ("healthy", "expansion", "advocate") and rng.random() < _NEW_CUSTOMER_SHARE:
            renewal = 365 - rng.randint(0, 40)  # signed in the last weeks: still onboarding
        else:
            renewal = rng.randint(1, 364)
        years = 1 if renewal > 320 else rng.randint(1, 4)

        pooled = tier == "starter" and rng.random() < _POOLED_STARTER_SHARE
        team = AccountTeam(
            csm=None if pooled else rng.choice(_owners("csm", region)),
            account_executive=rng.choice(_owners("account_executive", region)),
            renewal_owner=rng.choice(_owners("renewal_owner", region)),
        )
        organization = 360_000_000_000 + rng.randrange(10**9)
        while organization in organizations:
            organization += 1
        organizations.add(organization)

        portfolio.append(
            Account(
                index=index,
                account_id=_slug(name),
                name=name,
                tier=tier,
                seats=seats,
                price_per_seat=round(rng.uniform(*price_range), 2),
                platform_fee=fee,
                region=region,
                peak_hour_utc=rng.uniform(*peak),
                customer_since=renewal - 365 * years,
                renewal_day=renewal,
                team=team,
                usage_channel="segment" if rng.random() < _SEGMENT_SHARE else "native",
                ticket_channel="zendesk" if rng.random() < _ZENDESK_SHARE else "native",
                organization_id=organization,
                integration=rng.random() < _INTEGRATION_SHARE[tier],
                tickets_per_day=(
                    _TICKETS_PER_DAY[tier] * rng.lognormvariate(0, 0.3) * plan.ticket_rate
                ),
                plan=plan,
            )
        )
        taken.add(portfolio[-1].account_id)
    return tuple(portfolio)


def _company_name(rng: random.Random, taken: set[str]) -> str:
    for _ in range(20):
        middle = rng.choice(_NAME_MIDDLE)
        parts = [rng.choice(_NAME_FIRST), middle, rng.choice(_NAME_LAST)]
        name = " ".join(part for part in parts if part)
        if _slug(name) not in taken:
            return name
    return f"{name} {len(taken) + 1}"  # a big portfolio runs out of names: number them


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _stage(age_days: int, days_to_renewal: int) -> LifecycleStage:
    if 0 <= days_to_renewal <= RENEWAL_WINDOW_DAYS:
        return "renewing"
    if age_days < 45:
        return "onboarding"
    if age_days < 365:
        return "adopting"
    return "mature"


def record_changes(
    portfolio: tuple[Account, ...], people: tuple[PersonRecord, ...], days: int, start: date
) -> dict[int, tuple[tuple[AccountRecord, ...], tuple[PersonRecord, ...]]]:
    """The full account / person records that change on each day (day 0: every record)."""
    leave_day = days // 2
    reassign_day = leave_day + _REASSIGN_AFTER_DAYS
    account_changes: dict[int, list[AccountRecord]] = {}
    for account in portfolio:
        plan = account.plan
        renewal, seats, team = account.renewal_day, account.seats, account.team
        last: AccountRecord | None = None
        for day in range(days):
            if plan.churn_day is not None and day >= plan.churn_day:
                break  # the CRM is not told here: marking it churned would leak the label
            if day == renewal:
                renewal += 365  # renewed
            if plan.seat_change is not None and day == plan.seat_change[0]:
                seats = plan.seat_change[1]
            if day == reassign_day and team.csm == _LEAVER:
                team = msgspec.structs.replace(team, csm=_SUCCESSOR)
            record = AccountRecord(
                account_id=account.account_id,
                name=account.name,
                tier=account.tier,
                seats=seats,
                arr=account.arr(seats),
                renewal_date=start + timedelta(days=renewal),
                lifecycle_stage=_stage(day - account.customer_since, renewal - day),
                team=team,
                updated_at=datetime.combine(start + timedelta(days=day), time(), UTC),
                source=CRM_SOURCE,
            )
            if last is None or msgspec.structs.replace(last, updated_at=record.updated_at) != (
                record
            ):
                account_changes.setdefault(day, []).append(record)
                last = record

    people_changes: dict[int, list[PersonRecord]] = {0: list(people)}
    if leave_day < days:
        leaver = next(p for p in people if p.person_id == _LEAVER)
        people_changes.setdefault(leave_day, []).append(
            msgspec.structs.replace(
                leaver,
                active=False,
                updated_at=datetime.combine(start + timedelta(days=leave_day), time(), UTC),
            )
        )
    return {
        day: (tuple(account_changes.get(day, ())), tuple(people_changes.get(day, ())))
        for day in sorted(set(account_changes) | set(people_changes))
    }
