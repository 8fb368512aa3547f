"""The decisions for one account — pure: rules, lifecycle and routing put together.

Three moments call it, all with the account's gathered state and ``now``:

- :func:`on_changes`  new health changes (and/or an ownership change) arrived;
- :func:`on_tick`     the scheduler found one of the account's alerts due (``wake_at``);
- :func:`on_action`   someone acknowledged, snoozed or resolved alerts (API or link).

Each returns a :class:`Decision`: the alerts to write and the notifications to enqueue. The
caller (handler, scheduler, API) applies it in the same transaction it gathered in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from services.alerts import lifecycle, routing, rules
from services.alerts.lifecycle import Alert, Notification, Silence, Timing
from services.alerts.messages import AccountView, Content, Move
from services.alerts.routing import Channel, Channels, Person, Team, TeamChannel
from shared.events import HealthChange


@dataclass(frozen=True)
class Config:
    ruleset: rules.RuleSet
    timing: Timing
    team_channel: TeamChannel
    channels: Channels
    content: Content
    digest_channel: Channel = "email"
    people: routing.PeopleDefaults = field(default_factory=routing.PeopleDefaults)

    @property
    def rules_by_name(self) -> dict[str, rules.Rule]:
        return {r.name: r for r in self.ruleset.rules}


@dataclass(frozen=True)
class Health:
    as_of: datetime
    score: float
    band: str
    before_score: float | None
    before_band: str | None
    reasons: tuple[str, ...]
    days_since_activity: float | None = None
    change_id: str = ""
    moved_by: tuple[Move, ...] = ()  # the change attribution of the latest change


@dataclass
class AccountState:
    """What the caller gathered for one account."""

    account_id: str
    name: str | None = None
    team: Team = field(default_factory=Team)
    renewal_date: object = None  # datetime.date | None
    tier: str | None = None
    arr: float | None = None
    health: Health | None = None
    alerts: list[Alert] = field(default_factory=list)  # open alerts
    people: Mapping[str, Person] = field(default_factory=dict)
    history: list[tuple[datetime, float]] = field(default_factory=list)

    def view(self) -> AccountView:
        health = self.health
        return AccountView(
            account_id=self.account_id,
            name=self.name or self.account_id,
            score=health.score if health else None,
            band=health.band if health else None,
            before_score=health.before_score if health else None,
            before_band=health.before_band if health else None,
            as_of=health.as_of if health else None,
            reasons=health.reasons if health else (),
            moved_by=health.moved_by if health else (),
            tier=self.tier,
            arr=self.arr,
            renewal_date=self.renewal_date,  # type: ignore[arg-type]
        )


@dataclass
class Decision:
    account_id: str
    alerts: list[Alert]  # new or changed
    notifications: list[Notification]
    health: Health | None = None  # the latest health, when it changed
    history: list[tuple[datetime, float]] = field(default_factory=list)
    evaluated: int = 0
    late: int = 0


def on_changes(
    state: AccountState,
    changes: Sequence[HealthChange],
    silences: Sequence[Silence],
    config: Config,
    now: datetime,
    *,
    ownership_changed: bool = False,
) -> Decision:
    by_rule = config.rules_by_name
    current = {a.rule: a for a in state.alerts}
    resolved: list[Alert] = []
    history = list(state.history)
    health = state.health
    new_history: list[tuple[datetime, float]] = []
    evaluated = late = 0

    def route_for(motion: rules.Motion) -> routing.Route:
        return routing.route(motion, state.team, state.people, config.team_channel)

    for change in sorted(changes, key=lambda c: c.as_of):
        if health is not None and change.as_of < health.as_of:
            late += 1  # an older evaluation arriving late: the newer one already decided
            continue
        evaluated += 1
        context = rules.Context(renewal_date=state.renewal_date, score_history=history)  # type: ignore[arg-type]
        verdicts = rules.evaluate(config.ruleset, change, context)
        changed = lifecycle.apply_verdicts(
            current, verdicts, by_rule, route_for, state.account_id, now
        )
        for alert in changed:
            if alert.is_open:
                current[alert.rule] = alert
            else:
                current.pop(alert.rule, None)
                resolved.append(alert)
        history.append((change.as_of, change.after.score))
        new_history.append((change.as_of, change.after.score))
        health = Health(
            as_of=change.as_of,
            score=change.after.score,
            band=change.after.band,
            before_score=change.before.score if change.before else None,
            before_band=change.before.band if change.before else None,
            reasons=tuple(change.reasons or change.after.reasons),
            days_since_activity=change.after.signals.days_since_activity,
            change_id=change.change_id,
            moved_by=tuple(Move.of(m) for m in change.moved_by),
        )

    if ownership_changed:
        for rule_name, alert in list(current.items()):
            current[rule_name] = lifecycle.reroute(alert, route_for(alert.motion), now)

    decision = _plan(state, [*current.values(), *resolved], silences, config, now)
    decision.health = health if health is not state.health else None
    decision.history = new_history
    decision.evaluated, decision.late = evaluated, late
    return decision


def on_tick(
    state: AccountState, silences: Sequence[Silence], config: Config, now: datetime
) -> Decision:
    return _plan(state, state.alerts, silences, config, now)


Action = Literal["ack", "snooze", "resolve"]


def on_action(
    state: AccountState,
    alert_ids: Sequence[int],
    action: Action,
    by: str,
    silences: Sequence[Silence],
    config: Config,
    now: datetime,
    *,
    snooze_for: timedelta | None = None,
) -> Decision:
    wanted = set(alert_ids)
    alerts: list[Alert] = []
    for alert in state.alerts:
        if alert.id in wanted:
            if action == "ack":
                alert = lifecycle.acknowledge(alert, by, now)
            elif action == "snooze":
                assert snooze_for is not None
                alert = lifecycle.snooze(alert, now + snooze_for, by, now)
            else:
                alert = lifecycle.resolve(alert, by, now)
        alerts.append(alert)
    return _plan(state, alerts, silences, config, now)


def _plan(
    state: AccountState,
    alerts: Sequence[Alert],
    silences: Sequence[Silence],
    config: Config,
    now: datetime,
) -> Decision:
    def escalate(alert: Alert) -> routing.Route:
        return routing.escalation(alert.notified_to, state.people, config.team_channel)

    def escalate_at(alert: Alert, first: datetime) -> datetime:
        # escalate_after counts the working time of the first person the alert went to
        to = next((r.person_id for r in alert.notified_to if r.person_id), None)
        person = state.people.get(to) if to else None
        reach = routing.reach(person, config.people) if person else None
        return routing.escalate_at(reach, first, config.timing.escalate_after)

    timing = replace(config.timing, escalate_at=escalate_at)
    result = lifecycle.plan(alerts, silences, timing, now, escalate)
    before = {a.id: a for a in state.alerts if a.id is not None}
    changed = [a for a in result.alerts if a.id is None or before.get(a.id) != a]
    return Decision(state.account_id, changed, result.notifications)


def with_ids(notification: Notification, saved: Mapping[str, Alert]) -> Notification:
    """The notification with the ids its alerts got when stored (matched by rule)."""
    ids = tuple(saved[r].id if r in saved else None for r in notification.rules)
    return replace(notification, alert_ids=ids)
