"""A seeded, deterministic customer portfolio and its activity, day by day.

``simulate(seed, start=...)`` decides the whole portfolio up front — a dozen people, the
accounts with their teams, tiers, seats, renewals and one story each (``churnwatch.stories``) —
and returns a ``Simulation``. Iterating it generates the run one ``SimulatedDay`` at a time: the
account / person record changes of the day, then the day's events in time order, each tagged
with the channel the driver should send it through (native JSON, a Segment ``track`` call, a
Zendesk ticket webhook). The ground truth (``Simulation.truth``) comes from the stories, never
from the events, and is never part of what the pipeline is sent.

Determinism: only ``random.Random`` instances seeded from ``seed`` (one for the portfolio, one
per account for its activity), never the global generator or the clock. The same seed gives the
same output byte for byte, and iterating a ``Simulation`` twice gives the same days twice.
"""

from __future__ import annotations

import itertools
import math
import random
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from churnwatch import portfolio, stories
from churnwatch.portfolio import Account, Channel
from churnwatch.stories import Story
from shared.events import (
    AccountRecord,
    Event,
    PersonRecord,
    SurveyEvent,
    TicketAction,
    TicketEvent,
    TicketPriority,
    TicketStatus,
    UsageEvent,
)

ZendeskEventKind = Literal["created", "status_changed", "priority_changed"]

# Segment ``track`` event names; lower-cased with spaces as underscores they are the usage type.
SEGMENT_EVENT_NAMES: Mapping[str, str] = {
    "login": "Login",
    "session": "Session",
    "feature_used": "Feature Used",
    "api_call": "API Call",
}

FEATURES: tuple[str, ...] = (
    "dashboards",
    "reports",
    "alerts",
    "exports",
    "integrations",
    "automations",
    "sharing",
    "search",
    "mobile",
    "sso",
    "api_keys",
    "audit_log",
)

SECONDS_PER_DAY = 86_400


# ---------------------------------------------------------------------------------------------
# Output


@dataclass(frozen=True, slots=True)
class SegmentTrack:
    """What one Segment ``track`` call carries; the driver adds ``sentAt`` and the write key.

    ``group_id`` (the account id) goes in the call's ``context.groupId``.
    """

    message_id: str
    user_id: str
    event: str  # a value of SEGMENT_EVENT_NAMES
    properties: Mapping[str, str | float]  # "feature", "quantity" when not 1
    group_id: str
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class ZendeskTicketChange:
    """One Zendesk ticket event, as an event-subscribed webhook would report it.

    ``kind``: created (``previous`` is None), status_changed (``previous`` is the old status),
    priority_changed (``previous`` is the old priority). ``event_id`` is Zendesk's event id: a
    redelivery of the same change carries the same one.
    """

    event_id: str
    kind: ZendeskEventKind
    ticket_id: int
    organization_id: int
    requester: str  # user id of the requester at the account
    subject: str
    status: TicketStatus
    priority: TicketPriority
    previous: str | None
    created_at: datetime  # when the ticket was created
    occurred_at: datetime  # when this change happened


@dataclass(frozen=True, slots=True)
class SimulatedEvent:
    """One thing that happened, with the channel the driver should send it through.

    ``event`` is its v1 form — what scoring should end up seeing whichever channel carries it
    (``received_at`` equals ``occurred_at`` and ``source`` names the channel until ingest sets
    them). ``segment`` / ``zendesk`` hold the channel's own rendering when that is the channel.
    """

    channel: Channel
    event: Event
    segment: SegmentTrack | None = None
    zendesk: ZendeskTicketChange | None = None


@dataclass(frozen=True, slots=True)
class SimulatedDay:
    """One day of the run: send the record changes first, then the events (in time order)."""

    index: int  # 0 for the start date
    date: date
    accounts: tuple[AccountRecord, ...]  # accounts created or changed this day (full records)
    people: tuple[PersonRecord, ...]  # people created or changed this day
    events: tuple[SimulatedEvent, ...]


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """What really happened to an account. Never sent to the pipeline."""

    account_id: str
    story: str  # a churnwatch.stories.Story for simulated runs; may be empty for other labels
    churned: bool
    churn_date: date | None  # the account is lost; it has no activity from this day on
    opportunity_date: date | None  # expansion / advocacy became real (None for other stories)


@dataclass(frozen=True)
class Simulation:
    """A whole run, decided; iterate it for its days (lazily generated, identical every time)."""

    seed: int
    start: date
    days: int
    intensity: float
    people: tuple[PersonRecord, ...]  # as on the start date
    accounts: tuple[AccountRecord, ...]  # as on the start date
    truth: tuple[GroundTruth, ...]  # one per account, in the order of ``accounts``
    roles: Mapping[str, str]  # person id -> csm, account_executive, renewal_owner, manager
    zendesk_organizations: Mapping[int, str]  # Zendesk organization id -> account id
    _portfolio: tuple[Account, ...] = field(repr=False)
    _record_changes: Mapping[int, tuple[tuple[AccountRecord, ...], tuple[PersonRecord, ...]]] = (
        field(repr=False)
    )

    @property
    def end(self) -> date:
        """The first day after the run."""
        return self.start + timedelta(days=self.days)

    def organization_of(self, account_id: str) -> int:
        """The account's Zendesk organization id."""
        for organization, account in self.zendesk_organizations.items():
            if account == account_id:
                return organization
        raise KeyError(account_id)

    def __iter__(self) -> Iterator[SimulatedDay]:
        runs = [_AccountRun(a, self.seed, self.intensity) for a in self._portfolio]
        tickets = itertools.count(48_000)
        for index in range(self.days):
            day = self.start + timedelta(days=index)
            midnight = datetime.combine(day, time(), UTC)
            pending: list[tuple[int, int, int, SimulatedEvent]] = []
            for run in runs:
                run.emit(index, midnight, tickets, pending)
            pending.sort(key=lambda item: (item[0], item[1], item[2]))
            accounts, people = self._record_changes.get(index, ((), ()))
            yield SimulatedDay(
                index=index,
                date=day,
                accounts=accounts,
                people=people,
                events=tuple(item[3] for item in pending),
            )

    def events(self) -> Iterator[SimulatedEvent]:
        """Every event of the run in time order."""
        for day in self:
            yield from day.events


def simulate(
    seed: int,
    *,
    accounts: int = 300,
    days: int = 120,
    start: date,
    intensity: float = 1.0,
    mix: Mapping[Story, float] = stories.DEFAULT_MIX,
) -> Simulation:
    """Decide a portfolio of ``accounts`` accounts for ``days`` days from ``start``.

    ``intensity`` scales the usage events per active user and day (sessions, feature uses):
    with accounts and days it sets the volume, without changing who is active when.
    ``mix`` is the share of each story (see ``churnwatch.stories.DEFAULT_MIX``).
    """
    if accounts < 1:
        raise ValueError("a portfolio needs at least one account")
    if days < stories.MIN_DAYS:
        raise ValueError(f"a run needs at least {stories.MIN_DAYS} days")
    if not 0 < intensity <= 10:
        raise ValueError("intensity is between 0 (exclusive) and 10")
    rng = random.Random(f"churnwatch-portfolio:{seed}")
    people = portfolio.people(rng, datetime.combine(start, time(), UTC))
    chosen = portfolio.accounts(accounts, days, mix, rng)
    changes = portfolio.record_changes(chosen, people, days, start)
    initial_accounts, initial_people = changes[0]
    truth = tuple(
        GroundTruth(
            account_id=account.account_id,
            story=account.plan.story,
            churned=account.plan.churns,
            churn_date=_date(start, account.plan.churn_day),
            opportunity_date=_date(start, account.plan.opportunity_day),
        )
        for account in chosen
    )
    return Simulation(
        seed=seed,
        start=start,
        days=days,
        intensity=intensity,
        people=initial_people,
        accounts=initial_accounts,
        truth=truth,
        roles=portfolio.roles(),
        zendesk_organizations={a.organization_id: a.account_id for a in chosen},
        _portfolio=chosen,
        _record_changes=changes,
    )


def _date(start: date, day: int | None) -> date | None:
    return None if day is None else start + timedelta(days=day)


# ---------------------------------------------------------------------------------------------
# Activity: one account, one day at a time

_TICKET_SUBJECTS = (
    "Cannot log in with SSO",
    "Export times out",
    "Dashboard shows wrong totals",
    "API returns 500 errors",
    "How do I add users?",
    "Question about our invoice",
    "Report scheduling fails",
    "Data sync is delayed",
    "Pages load slowly",
    "Permission denied on shared folder",
)
_PRIORITIES: tuple[TicketPriority, ...] = ("low", "normal", "high", "urgent")
_PRIORITY_WEIGHTS = (0.25, 0.55, 0.15, 0.05)
_STORM_PRIORITY_WEIGHTS = (0.0, 0.0, 0.5, 0.5)  # a storm is high and urgent tickets
# seconds from the last step to the solution, by priority
_SOLVE_SECONDS: Mapping[TicketPriority, tuple[int, int]] = {
    "low": (86_400, 7 * 86_400),
    "normal": (12 * 3_600, 4 * 86_400),
    "high": (6 * 3_600, 2 * 86_400),
    "urgent": (2 * 3_600, 12 * 3_600),
}
_WEEKDAY_FACTORS = (1.0, 1.05, 1.0, 0.97, 0.85)  # Monday..Friday; weekends per account
_DAILY_NOISE_SIGMA = 0.12
_NPS_RESPONSE_RATE = 0.12
_HOUR = 3_600


@dataclass(slots=True)
class _User:
    user_id: str
    propensity: float  # chance of being active on a normal weekday
    joins: int  # first day provisioned
    quits: int | None  # first day no longer active

    def present(self, day: int) -> bool:
        """Provisioned and not gone on ``day``."""
        return self.joins <= day and (self.quits is None or day < self.quits)


@dataclass(slots=True)
class _Ticket:
    ticket_id: int
    subject: str
    requester: str
    created_at: datetime


@dataclass(slots=True)
class _Step:
    """Something scheduled for a later moment (a ticket change or a survey answer)."""

    at: int  # seconds since the start of the run
    kind: Literal["ticket", "nps", "csat"]
    action: TicketAction = "opened"
    ticket: _Ticket | None = None
    status: TicketStatus = "new"
    priority: TicketPriority = "normal"
    previous: str | None = None
    user_id: str = ""
    score: int = 0


class _AccountRun:
    """The activity of one account, generated day by day with the account's own RNG."""

    def __init__(self, account: Account, seed: int, intensity: float) -> None:
        self.account = account
        self.plan = plan = account.plan
        self.intensity = intensity
        self.rng = rng = random.Random(f"churnwatch-activity:{seed}:{account.index}")
        self.id_prefix = f"sim{seed}-{account.index:04d}"
        self.seq, self.day, self.day_prefix = 0, 0, ""
        self.midnight = datetime.min.replace(tzinfo=UTC)
        self.out: list[tuple[int, int, int, SimulatedEvent]] = []

        prefix = f"u-{account.index:04d}-"
        self.users = [_User(prefix + "000", rng.uniform(0.9, 0.98), 0, plan.champion_leaves_day)]
        for n in range(1, plan.initial_users):
            self.users.append(
                _User(f"{prefix}{n:03d}", 0.05 + 0.75 * rng.betavariate(2, 3), 0, None)
            )
        for n, joins in enumerate(plan.joins, start=plan.initial_users):
            self.users.append(_User(f"{prefix}{n:03d}", rng.uniform(0.6, 0.9), joins, None))
        for user in self.users:
            user.propensity *= plan.propensity
        if plan.attrition is not None:
            for user in self.users[1:]:
                if rng.random() < plan.attrition_share:
                    user.quits = rng.randint(plan.attrition.start, plan.attrition.end - 1)
        self.service_user = f"svc-{account.index:04d}"

        self.features = rng.sample(FEATURES, min(plan.breadth, len(FEATURES)))
        self.feature_weights = list(
            itertools.accumulate(1.0 / (rank + 1) for rank in range(len(self.features)))
        )
        weekend = rng.uniform(0.1, 0.3)
        self.weekly = (*_WEEKDAY_FACTORS, weekend, weekend * 0.8)
        self.api_calls = account.seats * rng.uniform(5, 30)
        storm = plan.storm
        self.storm_days = (
            sorted(rng.randint(storm.start, storm.end - 1) for _ in range(plan.storm_tickets))
            if storm is not None
            else []
        )
        self.scheduled: dict[int, list[_Step]] = {}
        for wave in plan.survey_days:
            self._schedule_nps_wave(wave)

    # -- one day ------------------------------------------------------------------------------

    def emit(
        self,
        day: int,
        midnight: datetime,
        tickets: Iterator[int],
        out: list[tuple[int, int, int, SimulatedEvent]],
    ) -> None:
        """Append the day's events (keyed for sorting) to ``out``."""
        self.seq = 0
        self.day, self.midnight, self.out = day, midnight, out
        self.day_prefix = f"{self.id_prefix}-{day:03d}-"
        plan = self.plan
        if plan.quiet_from is not None and day >= plan.quiet_from:
            self.scheduled.pop(day, None)  # nothing happens any more, not even what was planned
            return
        factor = stories.activity(plan, day) * self.rng.lognormvariate(0, _DAILY_NOISE_SIGMA)
        weekday = midnight.weekday()
        chance = factor * self.weekly[weekday]
        breadth = max(1, math.ceil(len(self.features) * min(1.0, factor)))
        for user in self.users:
            if user.present(day) and self.rng.random() < min(0.97, user.propensity * chance):
                self._use(user.user_id, breadth)
        self._integration(chance)
        self._new_tickets(day, weekday, tickets)
        for step in sorted(self.scheduled.pop(day, []), key=lambda s: s.at):
            self._carry_out(step)

    def _second(self) -> int:
        """A moment of the day around the account's peak hour, as seconds since midnight."""
        hour = self.rng.gauss(self.account.peak_hour_utc, 2.3)
        return int(hour * _HOUR) % SECONDS_PER_DAY

    def _use(self, user_id: str, breadth: int) -> None:
        rng = self.rng
        start = self._second()
        minutes = min(240.0, max(2.0, rng.lognormvariate(3.1, 0.6)))
        if rng.random() < 0.4:  # most days the session token is still valid
            self._usage(start, user_id, "login")
        self._usage(start + 5 + int(rng.random() * 55), user_id, "session", quantity=round(minutes))
        if rng.random() < 0.2 * self.intensity:
            later = start + rng.randint(3 * _HOUR, 5 * _HOUR)
            self._usage(later, user_id, "session", quantity=round(rng.uniform(2, 40)))
        uses = int(rng.random() * (1.5 * self.intensity + 1))  # 0.75 on average
        if uses:
            features = rng.choices(
                self.features[:breadth], cum_weights=self.feature_weights[:breadth], k=uses
            )
            span = max(1.0, minutes * 60 - 60)
            for feature in features:
                second = start + 60 + int(rng.random() * span)
                self._usage(second, user_id, "feature_used", feature=feature)

    def _integration(self, chance: float) -> None:
        plan = self.plan
        if not self.account.integration:
            return
        if plan.integration_stops_day is not None and self.day >= plan.integration_stops_day:
            return
        for hour in (2, 14):  # two sync batches a day
            calls = self.api_calls * chance * self.rng.uniform(0.3, 0.7)
            if calls >= 1:
                second = hour * _HOUR + self.rng.randint(0, _HOUR)
                self._usage(second, self.service_user, "api_call", quantity=round(calls))

    def _usage(
        self,
        second: int,
        user_id: str,
        kind: str,
        *,
        feature: str | None = None,
        quantity: float = 1.0,
    ) -> None:
        second = min(second, SECONDS_PER_DAY - 1)
        at = self.midnight + timedelta(seconds=second)
        channel = self.account.usage_channel
        event_id = self._event_id()
        event = UsageEvent(
            event_id=event_id,
            account_id=self.account.account_id,
            occurred_at=at,
            received_at=at,
            source=channel,
            user_id=user_id,
            type=kind,
            feature=feature,
            quantity=float(quantity),
        )
        segment = None
        if channel == "segment":
            properties: dict[str, str | float] = {}
            if feature is not None:
                properties["feature"] = feature
            if quantity != 1:
                properties["quantity"] = float(quantity)
            segment = SegmentTrack(
                message_id=event_id,
                user_id=user_id,
                event=SEGMENT_EVENT_NAMES[kind],
                properties=properties,
                group_id=self.account.account_id,
                timestamp=at,
            )
        self._append(second, SimulatedEvent(channel, event, segment=segment))

    def _event_id(self) -> str:
        self.seq += 1
        return f"{self.day_prefix}{self.seq:05d}"

    def _append(self, second: int, event: SimulatedEvent) -> None:
        self.out.append((second, self.account.index, self.seq, event))

    # -- tickets and surveys ------------------------------------------------------------------

    def _new_tickets(self, day: int, weekday: int, tickets: Iterator[int]) -> None:
        plan, rng = self.plan, self.rng
        rate = self.account.tickets_per_day * (1.0 if weekday < 5 else 0.25)
        for _ in range(_poisson(rng, rate)):
            priority = rng.choices(_PRIORITIES, weights=_PRIORITY_WEIGHTS)[0]
            self._open_ticket(tickets, priority, storm=False)
        while self.storm_days and self.storm_days[0] == day:
            self.storm_days.pop(0)
            priority = rng.choices(_PRIORITIES, weights=_STORM_PRIORITY_WEIGHTS)[0]
            self._open_ticket(tickets, priority, storm=True)
        if plan.urgent_day == day:
            self._open_ticket(tickets, "urgent", storm=False, one_off=True)

    def _open_ticket(
        self,
        tickets: Iterator[int],
        priority: TicketPriority,
        *,
        storm: bool,
        one_off: bool = False,
    ) -> None:
        rng = self.rng
        second = self._second()
        at = self.day * SECONDS_PER_DAY + second
        active = [u for u in self.users if u.present(self.day)]
        ticket = _Ticket(
            ticket_id=next(tickets),
            subject=rng.choice(_TICKET_SUBJECTS),
            requester=rng.choice(active or self.users).user_id,
            created_at=self.midnight + timedelta(seconds=second),
        )
        steps = [_Step(at, "ticket", "opened", ticket, "new", priority)]
        at += rng.randint(1_800, 8 * _HOUR)
        steps.append(_Step(at, "ticket", "updated", ticket, "open", priority, previous="new"))
        if not one_off and rng.random() < (0.5 if storm else 0.08) and priority != "urgent":
            raised = _PRIORITIES[_PRIORITIES.index(priority) + 1]
            at += rng.randint(2 * _HOUR, 36 * _HOUR)
            steps.append(
                _Step(at, "ticket", "escalated", ticket, "open", raised, previous=priority)
            )
            priority = raised
        if not one_off and rng.random() < 0.3:
            at += rng.randint(_HOUR, 24 * _HOUR)
            steps.append(
                _Step(at, "ticket", "updated", ticket, "pending", priority, previous="open")
            )
            at += rng.randint(2 * _HOUR, 48 * _HOUR)
            steps.append(
                _Step(at, "ticket", "updated", ticket, "open", priority, previous="pending")
            )
        at += rng.randint(*_SOLVE_SECONDS[priority])
        steps.append(_Step(at, "ticket", "solved", ticket, "solved", priority, previous="open"))
        if not one_off and rng.random() < (0.35 if storm else 0.06):
            at += rng.randint(6 * _HOUR, 3 * 86_400)
            steps.append(
                _Step(at, "ticket", "reopened", ticket, "open", priority, previous="solved")
            )
            at += rng.randint(4 * _HOUR, 3 * 86_400)
            steps.append(_Step(at, "ticket", "solved", ticket, "solved", priority, previous="open"))
        if rng.random() < (0.6 if storm or one_off else 0.35):
            at += rng.randint(_HOUR, 30 * _HOUR)
            low, high = self._csat_range(at // SECONDS_PER_DAY, storm=storm)
            steps.append(_Step(at, "csat", user_id=ticket.requester, score=rng.randint(low, high)))
        for step in steps:
            self.scheduled.setdefault(step.at // SECONDS_PER_DAY, []).append(step)

    def _csat_range(self, day: int, *, storm: bool) -> tuple[int, int]:
        plan = self.plan
        return plan.csat_in_trouble if storm or plan.in_trouble(day) else plan.csat

    def _schedule_nps_wave(self, wave: int) -> None:
        plan, rng = self.plan, self.rng
        for user in self.users:
            promoter = plan.promoter_day == wave and user is self.users[0]
            if not promoter and rng.random() >= _NPS_RESPONSE_RATE:
                continue
            day = wave if promoter else wave + rng.randint(0, 4)
            if not user.present(day):
                continue
            low, high = plan.nps_in_trouble if plan.in_trouble(day) else plan.nps
            score = rng.randint(max(low, 9), high) if promoter else rng.randint(low, high)
            at = day * SECONDS_PER_DAY + rng.randint(9 * _HOUR, 20 * _HOUR)
            self.scheduled.setdefault(day, []).append(
                _Step(at, "nps", user_id=user.user_id, score=score)
            )

    def _carry_out(self, step: _Step) -> None:
        second = step.at - self.day * SECONDS_PER_DAY
        at = self.midnight + timedelta(seconds=second)
        account = self.account
        if step.kind != "ticket":
            event_id = self._event_id()
            survey = SurveyEvent(
                event_id=event_id,
                account_id=account.account_id,
                occurred_at=at,
                received_at=at,
                source="native",
                user_id=step.user_id,
                kind=step.kind,
                score=step.score,
            )
            self._append(second, SimulatedEvent("native", survey))
            return
        ticket, action = step.ticket, step.action
        assert ticket is not None
        channel = account.ticket_channel
        zendesk = None
        if channel == "zendesk":
            event_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            self.seq += 1
            zendesk = ZendeskTicketChange(
                event_id=event_id,
                kind=_ZENDESK_KIND[action],
                ticket_id=ticket.ticket_id,
                organization_id=account.organization_id,
                requester=ticket.requester,
                subject=ticket.subject,
                status=step.status,
                priority=step.priority,
                previous=step.previous,
                created_at=ticket.created_at,
                occurred_at=at,
            )
        else:
            event_id = self._event_id()
        event = TicketEvent(
            event_id=event_id,
            account_id=account.account_id,
            occurred_at=at,
            received_at=at,
            source=channel,
            ticket_id=str(ticket.ticket_id),
            action=action,
            priority=step.priority,
            status=step.status,
        )
        self._append(second, SimulatedEvent(channel, event, zendesk=zendesk))


_ZENDESK_KIND: Mapping[TicketAction, ZendeskEventKind] = {
    "opened": "created",
    "updated": "status_changed",
    "escalated": "priority_changed",
    "solved": "status_changed",
    "reopened": "status_changed",
}


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw for the small means used here (Knuth's method)."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


__all__ = [
    "FEATURES",
    "SEGMENT_EVENT_NAMES",
    "Channel",
    "GroundTruth",
    "SegmentTrack",
    "SimulatedDay",
    "SimulatedEvent",
    "Simulation",
    "ZendeskTicketChange",
    "simulate",
]
