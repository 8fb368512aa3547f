"""Working on accounts: what the consumer (``handler``), the scheduler and the API share.

All three lock the accounts they touch (advisory lock per account), :func:`gather` their state,
call :mod:`services.alerts.decide` and :func:`apply` the decision — alerts and outbox rows in
the same transaction (the transactional outbox).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts import decide, feedback, hours, messages, metrics, routing, store
from services.alerts.decide import AccountState, Config, Decision
from services.alerts.lifecycle import Alert, Notification
from services.alerts.messages import OutboxEntry

log = logging.getLogger(__name__)


async def gather(
    conn: AsyncConnection,
    account_ids: Iterable[str],
    *,
    history_since: datetime | None = None,
) -> dict[str, AccountState]:
    ids = sorted(set(account_ids))
    teams = await store.load_teams(conn, ids)
    open_alerts = await store.load_open_alerts(conn, ids)
    healths = await store.load_health(conn, ids)
    person_ids: set[str] = set()
    for team in teams.values():
        person_ids |= team.team.members()
    for account_alerts in open_alerts.values():
        for alert in account_alerts:
            person_ids |= {r.person_id for r in alert.notified_to if r.person_id}
            person_ids |= {r.person_id for r in alert.route.recipients if r.person_id}
    people = await store.load_people(conn, person_ids)
    history = (
        await store.load_history(conn, ids, history_since) if history_since is not None else {}
    )
    states = {}
    for account_id in ids:
        row = teams.get(account_id)
        states[account_id] = AccountState(
            account_id=account_id,
            name=row.name if row else None,
            team=row.team if row else routing.Team(),
            renewal_date=row.renewal_date if row else None,
            tier=row.tier if row else None,
            arr=row.arr if row else None,
            lifecycle_stage=row.lifecycle_stage if row else None,
            health=healths.get(account_id),
            alerts=open_alerts.get(account_id, []),
            people=people,
            history=history.get(account_id, []),
        )
    return states


async def _hand_off(
    conn: AsyncConnection,
    states: Mapping[str, AccountState],
    decisions: Sequence[Decision],
    saved: Mapping[str, Mapping[str, Alert]],
    before: Mapping[int | None, Alert],
    config: Config,
    now: datetime,
) -> dict[str, routing.Handoff]:
    """Per notification key, how it reaches its person (routing.Handoff): their preferred
    channel, held until their working hours, or in their digest — when they want only the
    digest, or when its new risk alerts are past their daily budget (counted in the store,
    so the count holds across accounts and replicas)."""
    found: dict[str, routing.Handoff] = {}
    items: list[store.DigestItem] = []
    asks: dict[tuple[str, date], list[tuple[Notification, list[Alert], int]]] = defaultdict(list)
    budgets: dict[str, int | None] = {}
    for d in decisions:
        for n in d.notifications:
            person = states[d.account_id].people.get(n.recipient.person_id or "")
            if person is None:
                continue  # the team channel: no hours, no budget
            reach = routing.reach(person, config.people)
            day = hours.local_date(reach.time_zone, now)
            members = [saved[d.account_id][r] for r in n.rules]
            if reach.channel == "digest":
                found[n.key] = routing.Handoff(to_digest="digest_only")
                if n.kind != "resolved":
                    items += _digest_items(person.person_id, members, "digest_only", day, now)
                continue
            not_before, held = routing.hold_until(reach, n.severity, now)
            found[n.key] = routing.Handoff(reach.channel, not_before, held)
            new_risk = sum(
                1
                for a in members
                if n.kind == "alert"
                and a.motion in routing.RISK_MOTIONS
                and (a.id not in before or before[a.id].notified_severity is None)
            )
            if new_risk:
                asks[(person.person_id, day)].append((n, members, new_risk))
                budgets[person.person_id] = reach.budget
    counts = await store.count_budget(
        conn, {key: sum(c for _n, _m, c in asked) for key, asked in asks.items()}
    )
    for (person_id, day), asked in asks.items():
        used_before = counts[(person_id, day)] - sum(c for _n, _m, c in asked)
        fits = routing.allot(
            [(c, n.severity == "critical") for n, _m, c in asked], used_before, budgets[person_id]
        )
        for (n, members, _c), fit in zip(asked, fits, strict=True):
            if not fit:
                found[n.key] = routing.Handoff(to_digest="over_budget")
                items += _digest_items(person_id, members, "over_budget", day, now)
    await store.add_digest_items(conn, items)
    for item in items:
        metrics.TO_DIGEST.labels(item.reason).inc()
    return found


def _digest_items(
    person_id: str, members: Sequence[Alert], reason: str, day: date, now: datetime
) -> list[store.DigestItem]:
    return [
        store.DigestItem(person_id, a.id, reason, day, now) for a in members if a.id is not None
    ]


async def apply(
    conn: AsyncConnection,
    states: Mapping[str, AccountState],
    decisions: Sequence[Decision],
    config: Config,
    *,
    now: datetime,
    real_now: datetime,
) -> int:
    """Write the decisions; returns how many outbox rows were written."""
    await store.upsert_health(
        conn, [(d.account_id, d.health) for d in decisions if d.health is not None]
    )
    await store.set_next_evaluations(
        conn, [(d.account_id, d.next_evaluation) for d in decisions if d.set_next]
    )
    await store.reset_history(
        conn, [(d.account_id, d.history_reset) for d in decisions if d.history_reset is not None]
    )
    await store.count_rollouts(
        conn, [r for d in decisions for r in d.rebaselines], now, config.rollout_summary_wait
    )
    await store.insert_history(
        conn, [(d.account_id, at, score) for d in decisions for at, score in d.history]
    )
    saved = await store.save_alerts(conn, [a for d in decisions for a in d.alerts])
    before = {a.id: a for s in states.values() for a in s.alerts}
    for alert in saved:
        previous = before.get(alert.id)
        if previous is None or previous.state != alert.state:
            metrics.ALERT_TRANSITIONS.labels(alert.rule, alert.severity, alert.state).inc()
            if (alert.resolved_by or "").startswith("lifecycle:"):
                metrics.LIFECYCLE_RESOLVED.labels(alert.rule).inc()
    for rebaseline in (r for d in decisions for r in d.rebaselines):
        metrics.REBASELINED.labels(rebaseline.model_version).inc()

    by_account: dict[str, dict[str, Alert]] = defaultdict(dict)
    for alert in saved:
        by_account[alert.account_id][alert.rule] = alert
    handoffs = await _hand_off(conn, states, decisions, by_account, before, config, now)
    first: list[OutboxEntry] = []
    replies: list[OutboxEntry] = []
    for d in decisions:
        state = states[d.account_id]
        view = replace(state, health=d.health or state.health).view()
        for notification in d.notifications:
            members = [by_account[d.account_id][r] for r in notification.rules]
            notification = decide.with_ids(notification, by_account[d.account_id])
            payload = messages.alert_payload(notification, view, members, config.content, now)
            handoff = handoffs.get(notification.key, routing.Handoff())
            if handoff.to_digest is not None:
                continue  # in the person's digest instead (store.digest_items)
            options = routing.destinations(
                notification.recipient, config.channels, config.team_channel, prefer=handoff.prefer
            )
            if not options:
                metrics.UNROUTABLE.labels(notification.kind).inc()
                log.warning(
                    "no destination for a notification",
                    extra={"account_id": d.account_id, "kind": notification.kind},
                )
                continue
            rows = messages.outbox_rows(
                notification.key,
                notification.kind,
                d.account_id,
                options,
                payload,
                config.content,
                real_now,
            )
            if handoff.held is not None and rows:
                rows = [replace(r, not_before=handoff.not_before) for r in rows]
                metrics.DEFERRED.labels(handoff.held).inc()
            (replies if notification.kind == "resolved" else first).extend(rows)
            metrics.NOTIFICATIONS.labels(notification.kind).inc()
    written = len(await store.enqueue(conn, first))
    if replies:
        # A resolved notice replies in its thread: it waits for the thread's unsent message.
        keys = sorted({r.thread_key for r in replies if r.thread_key})
        pending = await store.unsent_heads(conn, keys)
        replies = [
            replace(r, depends_on=pending.get(r.thread_key) if r.thread_key else None)
            for r in replies
        ]
        written += len(await store.enqueue(conn, replies))
    return written


async def refresh_messages(
    conn: AsyncConnection,
    account_id: str,
    alert_ids: Sequence[int],
    message_id_domain: str,
    *,
    now: datetime,
    real_now: datetime,
) -> int:
    """Rewrite in place every delivered Slack message that carries one of the alerts, with
    its current status (acknowledged by whom and when, snoozed, resolved, feedback): one
    ``update`` outbox row per message, after that message's previous update. Returns how many."""
    found = await store.slack_messages(conn, account_id, alert_ids)
    if not found:
        return 0
    ids = {int(a["id"]) for m in found for a in m.payload.get("alerts", []) if a.get("id")}
    alerts = {a.id: a for a in await store.load_alerts(conn, ids) if a.id is not None}
    verdicts = await store.feedback_for(conn, ids)
    actors = {a.acknowledged_by for a in alerts.values()} | {a.resolved_by for a in alerts.values()}
    actors |= {v.given_by for v in verdicts}
    person_ids = {part for by in actors if by for part in (by, by.partition(":")[2]) if part}
    people = await store.load_people(conn, person_ids)
    entries = feedback.updates(
        found,
        alerts,
        verdicts,
        people,
        message_id_domain=message_id_domain,
        now=now,
        real_now=real_now,
    )
    heads = await store.unsent_heads(conn, [e.thread_key for e in entries if e.thread_key])
    entries = [
        replace(e, depends_on=heads.get(e.thread_key) if e.thread_key else None) for e in entries
    ]
    return len(await store.enqueue(conn, entries))
