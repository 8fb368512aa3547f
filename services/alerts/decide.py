"""The decisions for one account — pure: rules, lifecycle and routing put together.

Three moments call it, all with the account's gathered state and ``now``:

- :func:`on_changes`  new health changes (and/or an ownership change) arrived;
- :func:`on_tick`     the scheduler found one of the account's alerts due (``wake_at``);
- :func:`on_time`     the scheduler found the account due a time-driven evaluation: its rules
                      judge its latest health as of ``now`` (``next_evaluation``);
- :func:`on_action`   someone acknowledged, snoozed or resolved alerts (API or link).

Each returns a :class:`Decision`: the alerts to write and the notifications to enqueue. The
caller (handler, scheduler, API) applies it in the same transaction it gathered in.

**Lifecycle.** An account whose record says it has ended (:data:`ENDED_STAGES`) gets no
alerts: its open ones resolve (``resolved_by = "lifecycle:<stage>"``, no resolved notice) and
its health changes are kept but judged by no rule. A health change whose model version is not
the one the account was last judged with is a *re-baseline* (:func:`rules.rebaselined`): its
score history restarts, and the change is counted for the rollout summary (:class:`Rebaseline`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from services.alerts import lifecycle, routing, rules
from services.alerts.lifecycle import Alert, Notification, Silence, Timing
from services.alerts.messages import AccountView, Content, Move
from services.alerts.routing import Channel, Channels, Person, Team, TeamChannel
from shared.events import HealthChange, HealthSnapshot, Signals

# Account lifecycle stages (``AccountRecord.lifecycle_stage``) after which nothing is alerted.
ENDED_STAGES: frozenset[str] = frozenset({"churned"})


@dataclass(frozen=True)
class Config:
    ruleset: rules.RuleSet
    timing: Timing
    team_channel: TeamChannel
    channels: Channels
    content: Content
    digest_channel: Channel = "email"
    people: routing.PeopleDefaults = field(default_factory=routing.PeopleDefaults)
    # a model rollout's summary goes to CS ops (default: the team channel) this long after the
    # first re-baselined change, counting the changes seen meanwhile
    cs_ops: TeamChannel | None = None
    rollout_summary_wait: timedelta = timedelta(hours=1)

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
    signals: Signals = field(default_factory=Signals)  # what the rules read, as published
    warming_up: bool = False
    model_version: str | None = None  # None: known from before versions were kept

    def snapshot(self) -> HealthSnapshot:
        """What the rules read of the latest health (no components)."""
        return HealthSnapshot(
            score=self.score,
            band=self.band,  # type: ignore[arg-type]
            components=[],
            signals=self.signals,
            warming_up=self.warming_up,
        )


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
    lifecycle_stage: str | None = None

    @property
    def ended(self) -> bool:
        return self.lifecycle_stage in ENDED_STAGES

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


@dataclass(frozen=True)
class Rebaseline:
    """One account's health judged for the first time with ``model_version``."""

    model_version: str
    previous_version: str
    before_band: str
    after_band: str


@dataclass
class Decision:
    account_id: str
    alerts: list[Alert]  # new or changed
    notifications: list[Notification]
    health: Health | None = None  # the latest health, when it changed
    history: list[tuple[datetime, float]] = field(default_factory=list)
    evaluated: int = 0
    late: int = 0
    # when the rules must look at the account again as time passes (set_next: write it)
    next_evaluation: datetime | None = None
    set_next: bool = False
    history_reset: datetime | None = None  # forget the score history before this (re-baseline)
    rebaselines: list[Rebaseline] = field(default_factory=list)


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

    rebaselines: list[Rebaseline] = []
    history_reset: datetime | None = None
    for change in sorted(changes, key=lambda c: c.as_of):
        if health is not None and change.as_of < health.as_of:
            late += 1  # an older evaluation arriving late: the newer one already decided
            continue
        evaluated += 1
        previous_version = health.model_version if health is not None else None
        rebase = previous_version not in (None, change.model_version)
        if health is not None and previous_version is not None and rebase:
            rebaselines.append(
                Rebaseline(change.model_version, previous_version, health.band, change.after.band)
            )
            history, new_history, history_reset = [], [], change.as_of
        if not state.ended:
            context = rules.Context(renewal_date=state.renewal_date, score_history=history)  # type: ignore[arg-type]
            verdicts = rules.evaluate(config.ruleset, change, context)
            if rebase:
                verdicts = rules.rebaselined(config.ruleset, verdicts)
            _judge(current, resolved, verdicts, by_rule, route_for, state.account_id, now)
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
            signals=change.after.signals,
            warming_up=change.after.warming_up,
            model_version=change.model_version,
        )

    if state.ended:
        _end(current, resolved, state.lifecycle_stage, now)
    if ownership_changed:
        for rule_name, alert in list(current.items()):
            current[rule_name] = lifecycle.reroute(alert, route_for(alert.motion), now)

    decision = _plan(state, [*current.values(), *resolved], silences, config, now)
    decision.health = health if health is not state.health else None
    decision.history = new_history
    decision.evaluated, decision.late = evaluated, late
    decision.rebaselines, decision.history_reset = rebaselines, history_reset
    if decision.health is not None:
        decision.set_next = True
        decision.next_evaluation = _next_evaluation(state, decision.health, history, config)
    return decision


def on_time(
    state: AccountState, silences: Sequence[Silence], config: Config, now: datetime
) -> Decision:
    """Time passed since the account's latest health: its rules judge that health as of
    ``now`` (:func:`rules.as_time_passes`) — the alerts a renewal window, a critical step or a
    duration opens, raises or clears — and say when to look again."""
    current = {a.rule: a for a in state.alerts}
    resolved: list[Alert] = []
    health = state.health
    if state.ended:
        _end(current, resolved, state.lifecycle_stage, now)
    elif health is not None:
        change = rules.as_time_passes(
            state.account_id, health.model_version or "", health.snapshot(), health.as_of, now
        )
        context = rules.Context(renewal_date=state.renewal_date, score_history=state.history)  # type: ignore[arg-type]
        verdicts = rules.evaluate(config.ruleset, change, context)

        def route_for(motion: rules.Motion) -> routing.Route:
            return routing.route(motion, state.team, state.people, config.team_channel)

        _judge(current, resolved, verdicts, config.rules_by_name, route_for, state.account_id, now)
    decision = _plan(state, [*current.values(), *resolved], silences, config, now)
    decision.set_next = True
    if health is not None and not state.ended:
        decision.next_evaluation = _next_evaluation(state, health, state.history, config, since=now)
    return decision


def _judge(
    current: dict[str, Alert],
    resolved: list[Alert],
    verdicts: Sequence[rules.Verdict],
    by_rule: Mapping[str, rules.Rule],
    route_for: Callable[[rules.Motion], routing.Route],
    account_id: str,
    now: datetime,
) -> None:
    """Apply the verdicts to the open alerts (``current``, by rule); resolved ones move out."""
    for alert in lifecycle.apply_verdicts(current, verdicts, by_rule, route_for, account_id, now):
        if alert.is_open:
            current[alert.rule] = alert
        else:
            current.pop(alert.rule, None)
            resolved.append(alert)


def _end(
    current: dict[str, Alert], resolved: list[Alert], stage: str | None, now: datetime
) -> None:
    """The account has ended: its open alerts resolve, with no resolved notice."""
    for rule_name, alert in list(current.items()):
        done = lifecycle.resolve(alert, f"lifecycle:{stage}", now)
        resolved.append(replace(done, resolve_notice_due=False))
        del current[rule_name]


def _next_evaluation(
    state: AccountState,
    health: Health,
    history: Sequence[tuple[datetime, float]],
    config: Config,
    *,
    since: datetime | None = None,
) -> datetime | None:
    if state.ended:
        return None
    context = rules.Context(renewal_date=state.renewal_date, score_history=history)  # type: ignore[arg-type]
    return rules.next_evaluation(
        config.ruleset, health.snapshot(), health.as_of, context, since or health.as_of
    )


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
