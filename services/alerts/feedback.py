"""Feedback on alerts and the in-place update of delivered Slack messages (pure, but for
:func:`set_gauges`, which sets the per-rule gauges).

Every alert can be marked **useful**, **not useful** or **already known** — from Slack's
buttons, an email's signed links or the API. Each person has one verdict per alert (the
latest); an alert counts once, by its latest verdict, in its rule's figures: *precision* is the
share of judged alerts that were right (useful or already known: the risk was real), and
*usefulness* the share that told someone something new (useful).

When an action changes alerts (acknowledge, snooze, resolve, feedback — from Slack, a link or
the API), every delivered Slack message that carries them is rewritten in place: an ``update``
outbox row per message (``chat.update``, with the outbox's retries), whose payload is the
original one plus status lines ("✅ Acknowledged by Maria Lopez, 10:42") and the actions that
are done (their buttons go).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Literal, get_args
from zoneinfo import ZoneInfo

from services.alerts import metrics
from services.alerts.lifecycle import Alert
from services.alerts.messages import OutboxEntry, message_id
from services.alerts.routing import Person
from services.alerts.store.feedback import FeedbackRow, RuleFeedback, SlackMessage

Verdict = Literal["useful", "not_useful", "known"]
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
Source = Literal["slack", "email", "api"]
VERDICT_LABEL: dict[str, str] = {
    "useful": "👍 useful",
    "not_useful": "👎 not useful",
    "known": "🤷 already known",
}
# Slack button action_id / link action → verdict, and the snoozes of the alert actions.
FEEDBACK_ACTIONS: dict[str, Verdict] = {
    "feedback_useful": "useful",
    "feedback_not_useful": "not_useful",
    "feedback_known": "known",
}
SNOOZES: dict[str, timedelta] = {"snooze_1d": timedelta(days=1), "snooze_1w": timedelta(weeks=1)}
ALERT_ACTIONS = ("ack", *SNOOZES)
UPDATE = "update"  # the outbox kind of an in-place update
WINDOW = timedelta(days=90)  # the feedback per-rule figures count (metrics, digest, API default)


def rows(
    alerts: Sequence[Alert], verdict: Verdict, by: str, source: Source, now: datetime
) -> list[FeedbackRow]:
    """The feedback rows of one verdict by one person on ``alerts``."""
    return [
        FeedbackRow(a.id, by, a.account_id, a.rule, verdict, source, now)
        for a in alerts
        if a.id is not None
    ]


# ---------------------------------------------------------------------------------------------
# Who did it, in words


def actor(by: str | None, people: Mapping[str, Person]) -> tuple[str, Person | None]:
    """A display name for ``by`` (a person id, ``link:<person>``, ``slack:<user id>``, an API
    key's name) and the person it is, when known."""
    if not by:
        return "someone", None
    kind, _, rest = by.partition(":")
    person_id = rest if kind in ("link", "slack", "api") and rest else by
    person = people.get(person_id)
    if person is not None:
        return person.name, person
    if kind == "slack" and rest:
        return f"<@{rest}>", None  # Slack shows the user's name
    return (rest if kind in ("link", "api") and rest else by), None


def clock_time(at: datetime, person: Person | None) -> str:
    """``10:42`` in the person's time zone (``10:42 UTC`` when unknown)."""
    zone = _zone(person)
    return at.astimezone(zone).strftime("%H:%M" + (" UTC" if str(zone) == "UTC" else ""))


def status(
    alerts: Sequence[Alert],
    verdicts: Sequence[FeedbackRow],
    people: Mapping[str, Person],
    titles: Mapping[int, str] | None = None,
) -> tuple[list[str], list[str]]:
    """(status lines, done actions) of a message carrying ``alerts``: one line per alert that a
    person acted on (one line for all when they say the same), then the feedback. An action is
    done when it is done for every alert of the message."""
    said: list[tuple[str, str, str]] = []  # (icon, what, the alert's name)
    for alert in alerts:
        name = (titles or {}).get(alert.id or 0) or alert.rule.replace("_", " ")
        who, person = actor(alert.acknowledged_by, people)
        if alert.state == "acknowledged" and alert.acknowledged_at is not None:
            when = clock_time(alert.acknowledged_at, person)
            said.append(("✅", f"Acknowledged by {who}, {when}", name))
        elif alert.state == "snoozed" and alert.snoozed_until is not None:
            until = alert.snoozed_until
            when = f"{_day(until, person)} {clock_time(until, person)}"
            said.append(("💤", f"Snoozed by {who} until {when}", name))
        elif alert.state == "resolved":
            by, _ = actor(alert.resolved_by, people)
            said.append(("✔️", "Resolved" + (f" by {by}" if alert.resolved_by else ""), name))
    if len(said) == len(alerts) and len({(icon, what) for icon, what, _ in said}) == 1:
        lines = [f"{said[0][0]} {said[0][1]}"]  # all alike: one line
    else:
        several = len(alerts) > 1
        lines = [f"{icon} {name + ': ' if several else ''}{what}" for icon, what, name in said]
    done: set[str] = set()
    if alerts and all(a.state in ("acknowledged", "resolved") for a in alerts):
        done.add("ack")
    if alerts and all(a.state == "resolved" for a in alerts):
        done.update(ALERT_ACTIONS)
    by_verdict: dict[str, list[str]] = {}
    for row in verdicts:
        name, _ = actor(row.given_by, people)
        names = by_verdict.setdefault(row.verdict, [])
        if name not in names:
            names.append(name)
    if by_verdict:
        lines.append(
            "Feedback: "
            + " · ".join(
                f"{VERDICT_LABEL[v]} ({', '.join(by_verdict[v])})"
                for v in VERDICTS
                if v in by_verdict
            )
        )
    return lines, sorted(done)


def _day(at: datetime, person: Person | None) -> str:
    return at.astimezone(_zone(person)).strftime("%a %d %b")


def _zone(person: Person | None) -> ZoneInfo:
    if person is not None:
        try:
            return ZoneInfo(person.time_zone)
        except (KeyError, ValueError):
            pass
    return ZoneInfo("UTC")


def updates(
    messages: Sequence[SlackMessage],
    alerts: Mapping[int, Alert],
    verdicts: Sequence[FeedbackRow],
    people: Mapping[str, Person],
    *,
    message_id_domain: str,
    now: datetime,
    real_now: datetime,
) -> list[OutboxEntry]:
    """One ``update`` outbox row per delivered message, with its current status."""
    entries = []
    for message in messages:
        shown = [a for a in message.payload.get("alerts", []) if a.get("id") is not None]
        ids = [int(a["id"]) for a in shown]
        titles = {int(a["id"]): str(a["title"]) for a in shown if a.get("title")}
        members = [alerts[i] for i in ids if i in alerts]
        mine = [v for v in verdicts if v.alert_id in ids]
        lines, done = status(members, mine, people, titles)
        payload = {
            "kind": UPDATE,
            "message": message.payload,
            "ts": message.ts,
            "status": lines,
            "done": done,
        }
        digest = hashlib.sha256(json.dumps([lines, done]).encode()).hexdigest()[:16]
        key = f"update:{message.outbox_id}:{now.isoformat()}:{digest}"
        entries.append(
            OutboxEntry(
                key=key,
                kind=UPDATE,
                account_id=message.payload.get("account", {}).get("id"),
                channel="slack",
                address=message.channel,
                mention=message.mention,
                fallbacks=[],
                payload=payload,
                message_id=message_id(key, message_id_domain),
                thread_key=update_thread(message),
                next_attempt_at=real_now,
                created_at=real_now,
            )
        )
    return entries


def update_thread(message: SlackMessage) -> str:
    """The updates of one message go out in order: each waits for the previous (depends_on)."""
    return f"update|{message.channel}|{message.ts}"


# ---------------------------------------------------------------------------------------------
# Figures


def set_gauges(judged: Sequence[RuleFeedback]) -> None:
    """The per-rule gauges (``churnwatch_alerts_rule_feedback`` / ``_rule_precision``)."""
    metrics.RULE_JUDGED.clear()
    metrics.RULE_PRECISION.clear()
    for figures in judged:
        for verdict in VERDICTS:
            metrics.RULE_JUDGED.labels(figures.rule, verdict).set(getattr(figures, verdict))
        if figures.precision is not None:
            metrics.RULE_PRECISION.labels(figures.rule).set(figures.precision)


def with_rules(entry: OutboxEntry, judged: Sequence[RuleFeedback], leads: set[str]) -> OutboxEntry:
    """A CS lead's digest (they manage someone) with the per-rule feedback figures."""
    if not judged or entry.payload["person"]["person_id"] not in leads:
        return entry
    figures = [rule_json(f) for f in sorted(judged, key=lambda f: (f.precision or 0, f.rule))]
    section = {"days": WINDOW.days, "rules": figures}
    return replace(entry, payload={**entry.payload, "rules_feedback": section})


def rule_json(figures: RuleFeedback) -> dict[str, object]:
    judged = figures.judged
    return {
        "rule": figures.rule,
        "judged": judged,
        "useful": figures.useful,
        "not_useful": figures.not_useful,
        "known": figures.known,
        "precision": None if figures.precision is None else round(figures.precision, 4),
        "usefulness": round(figures.useful / judged, 4) if judged else None,
    }
