"""One batch of consumed records: gather → decide → apply, in one database transaction.

Records come from three topics: health changes (deduplicated by ``change_id``), and the
compacted account and person records that keep the service's own view of ownership. Ownership
is applied first, so a health change in the same batch is routed with it. An account whose
team changed has its open alerts re-routed; one whose record says it has ended (churned) has
its open alerts resolved in the same transaction; one whose renewal date or lifecycle stage
changed is due a time-driven evaluation at the scheduler's next tick.

:func:`~services.alerts.accounts.gather` and :func:`~services.alerts.accounts.apply` live in
:mod:`services.alerts.accounts`, shared with the scheduler and the API.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.alerts import decide, digest, hours, metrics, routing, store
from services.alerts.accounts import apply, gather
from services.alerts.decide import Config
from shared import events
from shared.clock import Clock, utc_now
from shared.events import AccountRecord, HealthChange, PersonRecord
from shared.kafka import Record, Rejection, Tombstone, topic_decoder

log = logging.getLogger(__name__)


Message = HealthChange | AccountRecord | PersonRecord | Tombstone


def make_decoder(topics: events.Topics) -> Callable[[str, bytes | None], Message]:
    """Decode by topic; anything undecodable raises ``DecodeFailure`` (→ dead letter)."""
    return topic_decoder(
        {
            topics.health: events.decode_health_change,
            topics.accounts: events.decode_account,
            topics.people: events.decode_person,
        },
        default=events.decode_person,
        compacted={topics.accounts: "account", topics.people: "person"},
    )


# ---------------------------------------------------------------------------------------------
# The consumer's batch handler


class BatchHandler:
    def __init__(
        self,
        engine: AsyncEngine,
        config: Config,
        clock: Clock,
        *,
        digest_hour: int = 9,
        on_enqueued: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_enqueued`` is called once a batch that queued messages has committed: the
        delivery workers send them now (their NOTIFY wake-up and their poll stay, for other
        processes and for a missed notification)."""
        self._engine = engine
        self._config = config
        self._clock = clock
        self._digest_hour = digest_hour
        self._on_enqueued = on_enqueued

    async def __call__(
        self, records: Sequence[Record[Message]]
    ) -> Sequence[tuple[Record[Message], Rejection]]:
        now = self._clock.now()
        people: dict[str, store.PersonRow | None] = {}
        account_rows: dict[str, store.OwnedAccount | None] = {}
        changes: dict[str, HealthChange] = {}
        consumed_changes = 0
        for record in records:  # offset order per partition: the last value of a key wins
            value = record.value
            key = record.key.decode() if record.key else None
            if isinstance(value, HealthChange):
                consumed_changes += 1
                changes.setdefault(value.change_id, value)
            elif isinstance(value, PersonRecord):
                people[value.person_id] = self._person_row(value, now)
            elif isinstance(value, AccountRecord):
                account_rows[value.account_id] = _account_row(value)
            elif key is not None:
                (people if value.kind == "person" else account_rows)[key] = None

        async with self._engine.begin() as conn:
            rerouted = await self._apply_ownership(conn, people, account_rows, now)
            fresh = await store.claim_changes(
                conn, [(c.change_id, c.account_id) for c in changes.values()]
            )
            metrics.HEALTH_CHANGES.labels("duplicate").inc(consumed_changes - len(fresh))
            per_account: dict[str, list[HealthChange]] = defaultdict(list)
            for change in changes.values():
                if change.change_id in fresh:
                    per_account[change.account_id].append(change)
            touched = set(per_account) | rerouted
            if not touched:
                return []
            await store.lock_accounts(conn, touched)
            history_days = self._config.ruleset.history_days
            oldest = min(
                (c.as_of for cs in per_account.values() for c in cs), default=now
            ) - timedelta(days=history_days)
            states = await gather(conn, touched, history_since=oldest)
            silences = await store.active_silences(conn, now)
            decisions = [
                decide.on_changes(
                    states[account_id],
                    per_account.get(account_id, []),
                    silences,
                    self._config,
                    now,
                    ownership_changed=account_id in rerouted,
                )
                for account_id in sorted(touched)
            ]
            queued = await apply(conn, states, decisions, self._config, now=now, real_now=utc_now())
        if queued:
            self._on_enqueued()
        metrics.HEALTH_CHANGES.labels("evaluated").inc(sum(d.evaluated for d in decisions))
        metrics.HEALTH_CHANGES.labels("late").inc(sum(d.late for d in decisions))
        return []

    def _person_row(self, person: PersonRecord, now: datetime) -> store.PersonRow:
        return store.PersonRow(
            person_id=person.person_id,
            name=person.name,
            email=person.email,
            slack_user_id=person.slack_user_id,
            manager_id=person.manager_id,
            time_zone=person.time_zone,
            active=person.active,
            updated_at=person.updated_at,
            next_digest_at=digest.next_digest_at(person.time_zone, self._digest_hour, now),
            working_hours=(
                hours.working_text(list(w.days), w.start, w.end)
                if (w := person.working_hours)
                else None
            ),
            quiet_hours=f"{q.start}-{q.end}" if (q := person.quiet_hours) else None,
            alert_channel=person.alert_channel,
            daily_alert_budget=person.daily_alert_budget,
        )

    async def _apply_ownership(
        self,
        conn: AsyncConnection,
        people: Mapping[str, store.PersonRow | None],
        account_rows: Mapping[str, store.OwnedAccount | None],
        now: datetime,
    ) -> set[str]:
        """Write ownership; returns the accounts whose open alerts may need re-routing (or
        resolving: the account ended)."""
        rerouted: set[str] = set()
        if account_rows:
            old = await store.load_teams(conn, account_rows, for_update=True)
            retimed: set[str] = set()
            for account_id, row in account_rows.items():
                before = old.get(account_id)
                after = row.team if row else routing.Team()
                if before is None or before.team != after:
                    rerouted.add(account_id)
                if row is not None and row.lifecycle_stage in decide.ENDED_STAGES:
                    rerouted.add(account_id)
                if row is not None and (
                    before is None
                    or (before.renewal_date, before.lifecycle_stage)
                    != (row.renewal_date, row.lifecycle_stage)
                ):
                    retimed.add(account_id)
            await store.evaluate_soon(conn, retimed, now)
            await store.upsert_accounts(conn, [r for r in account_rows.values() if r])
            await store.delete_accounts(conn, [k for k, r in account_rows.items() if r is None])
        if people:
            previous = await store.load_people(conn, people)
            changed = [
                pid
                for pid, row in people.items()
                if row is None
                or pid not in previous
                or previous[pid].active != row.active
                or previous[pid].manager_id != row.manager_id
                or bool(previous[pid].email or previous[pid].slack_user_id)
                != bool(row.email or row.slack_user_id)
            ]
            await store.upsert_people(conn, [r for r in people.values() if r])
            await store.delete_people(conn, [k for k, r in people.items() if r is None])
            if changed:
                rerouted |= set(await store.accounts_owned_by(conn, changed))
        return await store.with_open_alerts(conn, rerouted)  # only they need the work


def _account_row(account: AccountRecord) -> store.OwnedAccount:
    return store.OwnedAccount(
        account_id=account.account_id,
        name=account.name,
        tier=account.tier,
        seats=account.seats,
        renewal_date=account.renewal_date,
        csm=account.team.csm,
        account_executive=account.team.account_executive,
        renewal_owner=account.team.renewal_owner,
        updated_at=account.updated_at,
        arr=account.arr,
        lifecycle_stage=account.lifecycle_stage,
    )
