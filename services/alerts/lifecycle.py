"""Alert state and the timing semantics — pure: every function takes ``now`` and returns data.

An alert is deduplicated per (account, rule): while one is open, the same rule updates it.
States: ``firing`` → ``acknowledged`` / ``snoozed`` → ``resolved`` (a snooze ends back in
``firing``; a severity rise re-opens an acknowledged alert).

When is an alert *wanted* in a notification? When it was never notified (to its current
recipients), when its severity rose above the severity last notified, or when its repeat
interval passed since its last notification. A wanted alert waits until it is not *muted*:

- ``digest``     its rule delivers through the daily digest;
- ``silenced``   an active silence matches it (until the silence ends);
- ``inhibited``  a critical alert is open for the same account and this one is less severe.

Grouping: the wanted, unmuted alerts of one account go out together, ``group_wait`` after the
first of them became wanted — one message per recipient. So an unchanged alert repeats no
more often than ``repeat_interval``, and a rise in severity goes out at the next group flush
however recently the alert was notified.

A critical alert that is still ``firing`` ``escalate_after`` after its first notification
escalates once to the managers (see :func:`services.alerts.routing.escalation`).

Each alert carries ``wake_at``: the earliest time at which :func:`plan` may decide something
new for it (a group flush, a repeat, a snooze or silence end, an escalation); the scheduler
calls :func:`plan` for the accounts whose alerts are due.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from services.alerts.routing import Recipient, Route
from services.alerts.rules import SEVERITY_RANK, Delivery, Motion, Rule, Severity, Verdict

State = Literal["firing", "acknowledged", "snoozed", "resolved"]
OPEN_STATES: tuple[State, ...] = ("firing", "acknowledged", "snoozed")
NotificationKind = Literal["alert", "resolved", "escalation"]


@dataclass(frozen=True)
class Timing:
    group_wait: timedelta = timedelta(seconds=30)
    repeat_interval: timedelta = timedelta(days=1)
    escalate_after: timedelta = timedelta(hours=4)
    # When an alert first notified at a moment escalates; None: ``escalate_after`` later.
    # decide gives the recipient's working time (routing.escalate_at).
    escalate_at: Callable[[Alert, datetime], datetime] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Alert:
    account_id: str
    rule: str
    motion: Motion
    severity: Severity
    state: State
    summary: str
    started_at: datetime
    updated_at: datetime
    route: Route
    delivery: Delivery = "immediate"
    send_resolved: bool = True
    id: int | None = None  # None until stored
    pending_since: datetime | None = None  # wanted in a notification since
    notified_at: datetime | None = None
    notified_severity: Severity | None = None  # None: not yet notified to its recipients
    first_notified_at: datetime | None = None
    notified_to: tuple[Recipient, ...] = ()
    snoozed_until: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolve_notice_due: bool = False
    escalated_at: datetime | None = None
    escalation_path: tuple[str, ...] = ()
    muted: str | None = None  # "digest", "inhibited", "silenced:<id>"
    resolves_at: datetime | None = None  # the condition cleared: resolves then unless it returns
    wake_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    def labels(self) -> dict[str, str]:
        owner = self.route.owner
        return {
            "account_id": self.account_id,
            "rule": self.rule,
            "severity": self.severity,
            "motion": self.motion,
            "owner": owner.person_id or "" if owner else "",
        }


# ---------------------------------------------------------------------------------------------
# Silences


MatchOp = Literal["=", "!=", "=~", "!~"]
LABELS = ("account_id", "rule", "severity", "motion", "owner")


@dataclass(frozen=True)
class Matcher:
    label: str
    op: MatchOp
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found


@dataclass(frozen=True)
class Silence:
    """Mutes the alerts its matchers all match, from ``starts_at`` until ``ends_at``."""

    id: int
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str = ""
    comment: str = ""

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def mutes(self, alert: Alert, now: datetime) -> bool:
        labels = alert.labels()
        return self.active(now) and all(m.matches(labels) for m in self.matchers)


# ---------------------------------------------------------------------------------------------
# Rule verdicts → alert state


def apply_verdicts(
    open_alerts: Mapping[str, Alert],
    verdicts: Iterable[Verdict],
    rules: Mapping[str, Rule],
    route_for: Callable[[Motion], Route],
    account_id: str,
    now: datetime,
) -> list[Alert]:
    """The alerts of one account after a health change: new, changed or resolved ones."""
    changed: list[Alert] = []
    for verdict in verdicts:
        rule = rules[verdict.rule]
        current = open_alerts.get(verdict.rule)
        if verdict.outcome == "unknown":
            continue
        if verdict.outcome == "clear":
            if current is None:
                continue
            resolves_at = current.resolves_at or now + rule.keep_firing_for
            if resolves_at <= now:
                changed.append(resolve(current, "rule", now))
            elif current.resolves_at is None:
                changed.append(replace(current, resolves_at=resolves_at, updated_at=now))
            continue
        if current is None:
            if verdict.outcome == "sustain":
                continue
            changed.append(
                Alert(
                    account_id=account_id,
                    rule=rule.name,
                    motion=rule.motion,
                    severity=verdict.severity,
                    state="firing",
                    summary=verdict.summary,
                    started_at=now,
                    updated_at=now,
                    route=route_for(rule.motion),
                    delivery=rule.delivery,
                    send_resolved=rule.send_resolved,
                    pending_since=now,
                )
            )
            continue
        updated = _set_severity(current, verdict.severity, now)
        if updated.resolves_at is not None:  # it returned before resolving: the same alert
            updated = replace(updated, resolves_at=None, updated_at=now)
        if updated.summary != verdict.summary:
            updated = replace(updated, summary=verdict.summary, updated_at=now)
        if updated != current:
            changed.append(updated)
    return changed


def _set_severity(alert: Alert, severity: Severity, now: datetime) -> Alert:
    if severity == alert.severity:
        return alert
    alert = replace(alert, severity=severity, updated_at=now)
    notified = alert.notified_severity
    if notified is not None and SEVERITY_RANK[severity] > SEVERITY_RANK[notified]:
        # A rise is news: wanted again now, and an acknowledgement no longer covers it.
        alert = replace(alert, pending_since=alert.pending_since or now)
        if alert.state == "acknowledged":
            alert = replace(alert, state="firing", acknowledged_at=None, acknowledged_by=None)
    return alert


# ---------------------------------------------------------------------------------------------
# People's actions


def acknowledge(alert: Alert, by: str, now: datetime) -> Alert:
    return _act(
        alert,
        now,
        state="acknowledged",
        acknowledged_at=now,
        acknowledged_by=by,
        snoozed_until=None,
    )


def snooze(alert: Alert, until: datetime, by: str, now: datetime) -> Alert:
    return _act(alert, now, state="snoozed", snoozed_until=until, acknowledged_by=by)


def resolve(alert: Alert, by: str, now: datetime) -> Alert:
    return _act(
        alert,
        now,
        state="resolved",
        resolved_at=now,
        resolved_by=by,
        resolve_notice_due=alert.send_resolved and alert.notified_at is not None,
        resolves_at=None,
        wake_at=None,
    )


def _act(alert: Alert, now: datetime, **changes: Any) -> Alert:
    """A person's action: an open alert takes ``changes`` and is wanted in no notification
    until something new happens; a resolved one stays as it is."""
    if not alert.is_open:
        return alert
    return replace(alert, pending_since=None, updated_at=now, **changes)


def reroute(alert: Alert, new_route: Route, now: datetime) -> Alert:
    """An owner change: the open alert goes to its new recipients (notified afresh)."""
    if not alert.is_open or new_route.recipients == alert.route.recipients:
        return alert
    return replace(
        alert,
        route=new_route,
        notified_severity=None,
        first_notified_at=None,
        pending_since=now if alert.state == "firing" else alert.pending_since,
        updated_at=now,
    )


# ---------------------------------------------------------------------------------------------
# Notifications


@dataclass(frozen=True)
class Notification:
    kind: NotificationKind
    account_id: str
    recipient: Recipient
    alert_ids: tuple[int | None, ...]  # ids of stored alerts; new ones are matched by rule
    rules: tuple[str, ...]
    severity: Severity
    at: datetime
    path: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Deterministic: applying the same decision twice yields the same key."""
        stamp = self.at.isoformat(timespec="microseconds")
        return f"{self.kind}:{self.account_id}:{self.recipient.key}:{','.join(self.rules)}:{stamp}"


@dataclass(frozen=True)
class Plan:
    alerts: list[Alert]  # every alert given, updated
    notifications: list[Notification] = field(default_factory=list)


def wanted_since(alert: Alert, timing: Timing) -> datetime | None:
    """Since when the alert is wanted in a notification (None: not wanted)."""
    if alert.state != "firing" or alert.resolves_at is not None:
        return None  # a cleared condition is not repeated (nor sent, if it never was)
    if alert.notified_severity is None:
        return alert.pending_since or alert.started_at
    if SEVERITY_RANK[alert.severity] > SEVERITY_RANK[alert.notified_severity]:
        return alert.pending_since or alert.updated_at
    if alert.pending_since is not None:
        return alert.pending_since
    assert alert.notified_at is not None
    return alert.notified_at + timing.repeat_interval


def plan(
    alerts: Sequence[Alert],
    silences: Sequence[Silence],
    timing: Timing,
    now: datetime,
    escalate: Callable[[Alert], Route],
) -> Plan:
    """Decide, for one account's alerts, what to notify now and when to look again.

    ``alerts`` are the account's open alerts plus any just resolved; ``silences`` the ones
    that may match; ``escalate`` gives the escalation route of an alert.
    """
    result: list[Alert] = []
    for alert in alerts:
        if alert.is_open and alert.resolves_at is not None and alert.resolves_at <= now:
            alert = resolve(alert, "rule", now)
        if alert.state == "snoozed" and alert.snoozed_until and alert.snoozed_until <= now:
            alert = replace(
                alert,
                state="firing",
                snoozed_until=None,
                pending_since=alert.snoozed_until,
                notified_severity=None,
                first_notified_at=None,
                updated_at=now,
            )
        result.append(alert)

    inhibitors = [
        a for a in result if a.is_open and a.severity == "critical" and a.resolves_at is None
    ]
    muted_result: list[Alert] = []
    for alert in result:
        muted = _muted(alert, inhibitors, silences, now)
        if alert.muted is not None and muted is None and alert.state == "firing":
            # Unmuted now: a wanted alert starts its group wait from this moment.
            since = wanted_since(alert, timing)
            if since is not None and since < now:
                alert = replace(alert, pending_since=now)
        muted_result.append(replace(alert, muted=muted))
    result = muted_result

    notifications: list[Notification] = []

    # Group flush: wanted, unmuted alerts of the account, group_wait after the first wanted.
    wanted = {
        i: since
        for i, a in enumerate(result)
        if a.muted is None and (since := wanted_since(a, timing)) is not None and since <= now
    }
    group_due = min(wanted.values()) + timing.group_wait if wanted else None
    if group_due is not None and group_due <= now:
        chosen = [result[i] for i in wanted]
        notifications += _per_recipient("alert", chosen, lambda a: a.route.recipients, now)
        for i in wanted:
            a = result[i]
            result[i] = replace(
                a,
                pending_since=None,
                notified_at=now,
                notified_severity=a.severity,
                first_notified_at=a.first_notified_at or now,
                notified_to=a.route.recipients,
            )

    # Escalation: critical, still firing, not acknowledged in time — once.
    for i, a in enumerate(result):
        due = _escalation_due(a, timing)
        if due is not None and due <= now:
            route = escalate(a)
            a = result[i] = replace(a, escalated_at=now, escalation_path=route.path)
            notifications += _per_recipient("escalation", [a], _constant(route.recipients), now)

    # Resolved notices, to whoever was last notified.
    resolved = [a for a in result if a.state == "resolved" and a.resolve_notice_due]
    if resolved:
        notifications += _per_recipient("resolved", resolved, lambda a: a.notified_to, now)
        result = [replace(a, resolve_notice_due=False) if a in resolved else a for a in result]

    # When to look again.
    final: list[Alert] = []
    for a in result:
        final.append(replace(a, wake_at=_wake_at(a, timing, silences, now)))
    return Plan(final, notifications)


def _constant(
    recipients: tuple[Recipient, ...],
) -> Callable[[Alert], tuple[Recipient, ...]]:
    return lambda _alert: recipients


def _muted(
    alert: Alert, inhibitors: Sequence[Alert], silences: Sequence[Silence], now: datetime
) -> str | None:
    if not alert.is_open:
        return None
    if alert.delivery == "digest":
        return "digest"
    for silence in silences:
        if silence.mutes(alert, now):
            return f"silenced:{silence.id}"
    if alert.severity != "critical" and any(
        i.account_id == alert.account_id and i is not alert for i in inhibitors
    ):
        return "inhibited"
    return None


def _escalation_due(alert: Alert, timing: Timing) -> datetime | None:
    if (
        alert.state != "firing"
        or alert.resolves_at is not None
        or alert.severity != "critical"
        or alert.muted is not None
        or alert.escalated_at is not None
        or alert.first_notified_at is None
    ):
        return None
    if timing.escalate_at is not None:
        return timing.escalate_at(alert, alert.first_notified_at)
    return alert.first_notified_at + timing.escalate_after


def _wake_at(
    alert: Alert,
    timing: Timing,
    silences: Sequence[Silence],
    now: datetime,
) -> datetime | None:
    if not alert.is_open:
        return None
    candidates: list[datetime] = []
    if alert.resolves_at is not None:
        candidates.append(alert.resolves_at)
    if alert.state == "snoozed" and alert.snoozed_until is not None:
        candidates.append(alert.snoozed_until)
    if alert.muted is not None and alert.muted.startswith("silenced:"):
        ends = [s.ends_at for s in silences if s.mutes(alert, now)]
        candidates += ends
    if alert.muted is None:
        since = wanted_since(alert, timing)
        if since is not None:
            candidates.append(since + timing.group_wait if since <= now else since)
        escalation = _escalation_due(alert, timing)
        if escalation is not None:
            candidates.append(escalation)
    return min(candidates) if candidates else None


def _per_recipient(
    kind: NotificationKind,
    alerts: Sequence[Alert],
    recipients_of: Callable[[Alert], Iterable[Recipient]],
    now: datetime,
) -> list[Notification]:
    grouped: dict[str, tuple[Recipient, list[Alert]]] = {}
    for alert in alerts:
        for recipient in recipients_of(alert):
            grouped.setdefault(recipient.key, (recipient, []))[1].append(alert)
    notifications = []
    for recipient, members in grouped.values():
        members.sort(key=lambda a: (-SEVERITY_RANK[a.severity], a.rule))
        notifications.append(
            Notification(
                kind=kind,
                account_id=members[0].account_id,
                recipient=recipient,
                alert_ids=tuple(a.id for a in members),
                rules=tuple(a.rule for a in members),
                severity=members[0].severity,
                at=now,
                path=members[0].escalation_path if kind == "escalation" else (),
            )
        )
    return notifications
