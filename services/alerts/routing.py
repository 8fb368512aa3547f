"""Who gets an alert, and through which channels — pure, from the ownership known at fire time.

By motion: adoption (health risks) → the CSM; renewal → the renewal owner and the CSM;
expansion → the account executive; advocacy → the CSM. For each role: the owner if they are
active and reachable (Slack or email); otherwise the owner's manager; otherwise the configured
team channel. A role with no owner at all goes to the team channel, unless another role of the
same motion reached a person. Every step taken is recorded in :attr:`Route.path`.

A critical alert nobody acknowledged escalates to the managers of the people it went to
(:func:`escalation`), or the team channel when there is no reachable manager.

*When* and *how* a person is reached (:func:`reach`, :func:`hold_until`, :func:`allot`): their
working and quiet hours, their preferred channel (Slack, email, or only the daily digest) and
their daily budget of new risk alerts — each from their person record, else the service's
:class:`PeopleDefaults`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from services.alerts import hours
from services.alerts.hours import QuietHours, WorkingHours
from services.alerts.rules import Motion, Severity

Role = Literal["csm", "renewal_owner", "account_executive"]
AlertChannel = Literal["slack", "email", "digest"]
RISK_MOTIONS: frozenset[str] = frozenset({"adoption", "renewal"})  # what the budget counts

MOTION_ROLES: dict[str, tuple[Role, ...]] = {
    "adoption": ("csm",),
    "renewal": ("renewal_owner", "csm"),
    "expansion": ("account_executive",),
    "advocacy": ("csm",),
}

ROLE_LABEL: dict[str, str] = {
    "csm": "CSM",
    "renewal_owner": "renewal owner",
    "account_executive": "account executive",
}


@dataclass(frozen=True)
class Person:
    person_id: str
    name: str
    email: str | None = None
    slack_user_id: str | None = None
    manager_id: str | None = None
    time_zone: str = "UTC"
    active: bool = True
    working_hours: WorkingHours | None = None  # None: PeopleDefaults.working_hours
    quiet_hours: QuietHours | None = None  # None: PeopleDefaults.quiet_hours
    alert_channel: AlertChannel | None = None  # None: PeopleDefaults.alert_channel
    daily_alert_budget: int | None = None  # None: PeopleDefaults'; 0: no budget

    @property
    def reachable(self) -> bool:
        return self.active and bool(self.email or self.slack_user_id)


@dataclass(frozen=True)
class Team:
    csm: str | None = None
    account_executive: str | None = None
    renewal_owner: str | None = None

    def get(self, role: Role) -> str | None:
        value: str | None = getattr(self, role)
        return value

    def members(self) -> set[str]:
        return {p for p in (self.csm, self.account_executive, self.renewal_owner) if p}


@dataclass(frozen=True)
class TeamChannel:
    slack_channel: str | None = None
    email: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.slack_channel or self.email)


class Contact(Protocol):
    """A person as routing and the digests know them (:class:`Person`, or a stored person)."""

    @property
    def person_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def slack_user_id(self) -> str | None: ...
    @property
    def time_zone(self) -> str: ...


@dataclass(frozen=True)
class Recipient:
    """A person, or the team channel (``person_id`` None)."""

    name: str
    person_id: str | None = None
    slack: str | None = None  # a Slack user id (person) or channel id (team)
    email: str | None = None
    time_zone: str = "UTC"

    @property
    def key(self) -> str:
        return self.person_id or "team"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "person_id": self.person_id,
            "slack": self.slack,
            "email": self.email,
            "time_zone": self.time_zone,
        }

    @classmethod
    def of_person(cls, person: Contact) -> Recipient:
        return cls(
            name=person.name,
            person_id=person.person_id,
            slack=person.slack_user_id,
            email=person.email,
            time_zone=person.time_zone,
        )

    @classmethod
    def of_channel(cls, channel: TeamChannel, name: str) -> Recipient:
        """A shared channel (the account team's, CS ops'): no person behind it."""
        return cls(name=name, slack=channel.slack_channel, email=channel.email)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Recipient:
        return cls(
            name=raw["name"],
            person_id=raw.get("person_id"),
            slack=raw.get("slack"),
            email=raw.get("email"),
            time_zone=raw.get("time_zone") or "UTC",
        )


@dataclass(frozen=True)
class Route:
    recipients: tuple[Recipient, ...]
    path: tuple[str, ...]

    @property
    def owner(self) -> Recipient | None:
        """The first person the alert goes to (shown as "owner" in messages)."""
        return next((r for r in self.recipients if r.person_id), None)

    def to_json(self) -> dict[str, Any]:
        return {"recipients": [r.to_json() for r in self.recipients], "path": list(self.path)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Route:
        return cls(
            tuple(Recipient.from_json(r) for r in raw.get("recipients", [])),
            tuple(raw.get("path", [])),
        )


def _why_not(person: Person) -> str:
    if not person.active:
        return "inactive"
    return "has no Slack id or email"


def route(motion: Motion, team: Team, people: Mapping[str, Person], channel: TeamChannel) -> Route:
    """The recipients of an alert of ``motion`` for an account with ``team``."""
    recipients: list[Recipient] = []
    path: list[str] = []
    unowned: list[str] = []
    for role in MOTION_ROLES[motion]:
        label = ROLE_LABEL[role]
        person_id = team.get(role)
        if person_id is None:
            path.append(f"{label}: none")
            unowned.append(label)
            continue
        person = people.get(person_id)
        if person is None:
            path.append(f"{label} {person_id}: unknown person")
            unowned.append(label)
            continue
        if person.reachable:
            path.append(f"{label} → {person.person_id} ({person.name})")
            _add(recipients, Recipient.of_person(person))
            continue
        path.append(f"{label} {person.person_id} {_why_not(person)}")
        manager = people.get(person.manager_id) if person.manager_id else None
        if manager is not None and manager.reachable:
            path.append(f"→ manager {manager.person_id} ({manager.name})")
            _add(recipients, Recipient.of_person(manager))
        else:
            path.append(
                f"manager {person.manager_id} {_why_not(manager) if manager else 'unknown'}"
                if person.manager_id
                else "no manager"
            )
            unowned.append(label)
    if unowned and not any(r.person_id for r in recipients):
        _to_team(recipients, path, channel)
    return Route(tuple(recipients), tuple(path))


def escalation(
    notified: tuple[Recipient, ...], people: Mapping[str, Person], channel: TeamChannel
) -> Route:
    """Where a critical alert escalates: the managers of the people it went to."""
    recipients: list[Recipient] = []
    path: list[str] = []
    for recipient in notified:
        if recipient.person_id is None:
            continue
        person = people.get(recipient.person_id)
        manager_id = person.manager_id if person else None
        manager = people.get(manager_id) if manager_id else None
        if manager is not None and manager.reachable:
            if manager.person_id not in {r.person_id for r in notified}:
                path.append(f"escalate {recipient.person_id} → manager {manager.person_id}")
                _add(recipients, Recipient.of_person(manager))
            else:
                path.append(f"escalate {recipient.person_id}: manager already notified")
        else:
            path.append(f"escalate {recipient.person_id}: no reachable manager")
    if not recipients:
        _to_team(recipients, path, channel)
    return Route(tuple(recipients), tuple(path))


def _to_team(recipients: list[Recipient], path: list[str], channel: TeamChannel) -> None:
    if channel.configured:
        path.append("→ team channel")
        _add(recipients, Recipient.of_channel(channel, "team channel"))
    else:
        path.append("no team channel configured: nobody to notify")


def _add(recipients: list[Recipient], recipient: Recipient) -> None:
    if all(r.key != recipient.key for r in recipients):
        recipients.append(recipient)


# ---------------------------------------------------------------------------------------------
# Channels


Channel = Literal["slack", "email"]


@dataclass(frozen=True)
class Destination:
    """One channel and address: a Slack user/channel id (or ``webhook``), or an email address."""

    channel: Channel
    address: str
    mention: str | None = None  # a Slack user id to @-mention (webhook or team channel)

    def to_json(self) -> dict[str, Any]:
        return {"channel": self.channel, "address": self.address, "mention": self.mention}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Destination:
        return cls(raw["channel"], raw["address"], raw.get("mention"))


WEBHOOK = "webhook"


@dataclass(frozen=True)
class Channels:
    """Which delivery channels are configured."""

    slack_api: bool = False  # a bot token: DMs and channels through chat.postMessage
    slack_webhook: bool = False  # an incoming webhook: one fixed channel
    email: bool = False

    @property
    def slack(self) -> bool:
        return self.slack_api or self.slack_webhook


def destinations(
    recipient: Recipient,
    channels: Channels,
    channel: TeamChannel,
    *,
    prefer: Channel = "slack",
) -> list[Destination]:
    """The recipient's channels in order: the first is tried, the rest are fallbacks for a
    permanent failure. The team channel comes last, so a message is never silently lost."""
    options: list[Destination] = []
    if channels.slack and recipient.slack:
        if recipient.person_id is not None and not channels.slack_api:
            options.append(Destination("slack", WEBHOOK, mention=recipient.slack))
        elif channels.slack_api:
            options.append(Destination("slack", recipient.slack))
        else:
            options.append(Destination("slack", WEBHOOK))
    if channels.email and recipient.email:
        email = Destination("email", recipient.email)
        if prefer == "email":
            options.insert(0, email)
        else:
            options.append(email)
    if recipient.person_id is not None and channels.slack and channel.slack_channel:
        team = (
            Destination("slack", channel.slack_channel, mention=recipient.slack)
            if channels.slack_api
            else Destination("slack", WEBHOOK, mention=recipient.slack)
        )
        if team not in options and all(o.address != team.address for o in options):
            options.append(team)
    if (
        recipient.person_id is not None
        and channels.email
        and channel.email
        and all(o.address != channel.email for o in options)
    ):
        options.append(Destination("email", channel.email))
    return options


# ---------------------------------------------------------------------------------------------
# When and how a person is reached


@dataclass(frozen=True)
class PeopleDefaults:
    """What applies to a person whose record leaves a setting out (``ALERTS_WORKING_HOURS``,
    ``ALERTS_QUIET_HOURS``, ``ALERTS_ALERT_CHANNEL``, ``ALERTS_DAILY_ALERT_BUDGET``)."""

    working_hours: WorkingHours | None = None  # None: any time is working time
    quiet_hours: QuietHours | None = None  # None: no quiet hours
    alert_channel: AlertChannel = "slack"
    daily_alert_budget: int | None = None  # None: no budget


@dataclass(frozen=True)
class Reach:
    """One person's effective settings: their record's, else the defaults."""

    time_zone: str
    working_hours: WorkingHours | None
    quiet_hours: QuietHours | None
    channel: AlertChannel
    budget: int | None


def reach(person: Person, defaults: PeopleDefaults) -> Reach:
    return Reach(
        time_zone=person.time_zone,
        working_hours=person.working_hours or defaults.working_hours,
        quiet_hours=person.quiet_hours or defaults.quiet_hours,
        channel=person.alert_channel or defaults.alert_channel,
        budget=(  # a person's 0: no budget for them
            (person.daily_alert_budget or None)
            if person.daily_alert_budget is not None
            else defaults.daily_alert_budget
        ),
    )


Held = Literal["working_hours", "quiet_hours"]


def hold_until(r: Reach, severity: Severity, now: datetime) -> tuple[datetime | None, Held | None]:
    """When a message of ``severity`` may reach the person (None: now), and what holds it.

    A critical message waits only for the end of quiet hours; any other for working hours
    that are not also quiet hours."""
    at: datetime = now
    why: Held | None = None
    for _ in range(3):  # a working period may begin inside quiet hours: then after them
        if severity != "critical" and r.working_hours is not None:
            start = hours.next_working(r.working_hours, r.time_zone, at)
            if start > at:
                at, why = start, why or "working_hours"
        quiet_end = hours.quiet_until(r.quiet_hours, r.time_zone, at) if r.quiet_hours else None
        if quiet_end is None:
            break
        at, why = quiet_end, why or "quiet_hours"
    return (at, why) if at > now else (None, None)


def escalate_at(
    r: Reach | None, first_notified_at: datetime, escalate_after: timedelta
) -> datetime:
    """When an unacknowledged critical alert escalates: ``escalate_after`` of the first
    recipient's working time after it was first notified (plain time without one)."""
    if r is None or r.working_hours is None:
        return first_notified_at + escalate_after
    return hours.add_working(r.working_hours, r.time_zone, first_notified_at, escalate_after)


@dataclass(frozen=True)
class Handoff:
    """How one notification reaches its person: a direct message through ``prefer`` first,
    held until ``not_before`` (None: now); or, with ``to_digest``, their digest instead."""

    prefer: Channel = "slack"
    not_before: datetime | None = None
    held: Held | None = None
    to_digest: Literal["over_budget", "digest_only"] | None = None


def allot(requests: Sequence[tuple[int, bool]], used_before: int, budget: int | None) -> list[bool]:
    """Which requests of one person's day fit their budget, in order.

    ``requests`` are (new risk alerts, critical) per message; ``used_before`` how many new
    risk alerts the day had already counted. A message fits while the day's count, itself
    included, stays within the budget; a critical one always goes (and counts)."""
    fits: list[bool] = []
    used = used_before
    for count, critical in requests:
        used += count
        fits.append(critical or count == 0 or budget is None or used <= budget)
    return fits
