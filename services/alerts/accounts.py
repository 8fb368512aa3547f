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
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts import decide, messages, metrics, routing, store
from services.alerts.decide import AccountState, Config, Decision
from services.alerts.lifecycle import Alert
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
            health=healths.get(account_id),
            alerts=open_alerts.get(account_id, []),
            people=people,
            history=history.get(account_id, []),
        )
    return states


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
    await store.insert_history(
        conn, [(d.account_id, at, score) for d in decisions for at, score in d.history]
    )
    saved = await store.save_alerts(conn, [a for d in decisions for a in d.alerts])
    before = {a.id: a for s in states.values() for a in s.alerts}
    for alert in saved:
        previous = before.get(alert.id)
        if previous is None or previous.state != alert.state:
            metrics.ALERT_TRANSITIONS.labels(alert.rule, alert.severity, alert.state).inc()

    by_account: dict[str, dict[str, Alert]] = defaultdict(dict)
    for alert in saved:
        by_account[alert.account_id][alert.rule] = alert
    first: list[OutboxEntry] = []
    replies: list[OutboxEntry] = []
    for d in decisions:
        state = states[d.account_id]
        view = replace(state, health=d.health or state.health).view()
        for notification in d.notifications:
            members = [by_account[d.account_id][r] for r in notification.rules]
            notification = decide.with_ids(notification, by_account[d.account_id])
            payload = messages.alert_payload(notification, view, members, config.content, now)
            options = routing.destinations(
                notification.recipient, config.channels, config.team_channel
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
