"""Rescoring accounts as of a moment: lock → gather facts → assess (pure) → write.

Everything for a set of accounts happens in one transaction: their current scores are locked
(in key order, so concurrent rescorers and the sweep never deadlock), their facts gathered,
each assessed by :func:`services.scoring.health.assess`, and the new current scores, history
points and outbox entries written with one statement each. A health change is therefore
committed together with the score it describes — or not at all — and the outbox relay
publishes it afterwards (see ``relay``).

The consumer rescores the accounts a batch touched inside the batch's own transaction when
it is not behind and they are few (:class:`InlineRescorer`): one commit and one wake-up fewer
between an event and its health change. Otherwise it marks them in ``dirty_accounts`` in its
transaction, and :meth:`Scorer.drain_queue` rescores them, so during a burst or a backlog the
events of one account cost one rescoring, not one per batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import msgspec

from services.scoring import due, health, metrics
from services.scoring.model import Model
from services.scoring.store import dirty, facts_sql, scores
from shared.clock import Clock
from shared.db import database_gone
from shared.events import HealthSnapshot
from shared.worker import Backoff, Worker

log = logging.getLogger(__name__)

_snapshot_decoder = msgspec.json.Decoder(HealthSnapshot)
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Rescored:
    accounts: int
    changes: int


class Scorer:
    def __init__(self, model: Model, *, score_delta: float) -> None:
        self.model = model
        self._score_delta = score_delta

    async def rescore(
        self,
        conn: asyncpg.Connection,
        account_ids: Sequence[str],
        as_of: datetime,
        *,
        cause: str,
        due_by: datetime | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> Rescored:
        """Rescore these accounts as of ``as_of``; call inside a transaction. With ``due_by``
        (the sweep), only those whose due time is at or before it once locked. Given ``now``,
        as of its reading once their scores are locked: never older than a score committed
        while this waited for the lock (whose facts may predate what queued the account)."""
        ids = sorted(set(account_ids))
        if not ids:
            return Rescored(0, 0)
        stored = await scores.lock_health(conn, ids, due_by)  # gather
        if due_by is not None:  # another sweeper or the rescorer may have been first
            ids = [i for i in ids if i in stored and stored[i].due]
            if not ids:
                return Rescored(0, 0)
        if now is not None:
            as_of = now()
        facts = await facts_sql.gather_facts(conn, ids, as_of)
        assessments: list[health.Assessment] = []  # decide
        due_at: dict[str, datetime] = {}
        for f in facts:
            previous = _previous(stored.get(f.account_id))
            assessed = health.assess(self.model, f, previous, as_of, score_delta=self._score_delta)
            if assessed is not None:
                assessments.append(assessed)
                due_at[f.account_id] = due.next_evaluation(self.model, f, as_of)
        current, history, changes = _rows(self.model, assessments, as_of, due_at)  # apply
        await scores.write_health(conn, current, history, changes)
        metrics.ACCOUNTS_SCORED.labels(cause).inc(len(assessments))
        metrics.SCORES_WARMING_UP.inc(sum(a.snapshot.warming_up for a in assessments))
        changed = [a.change for a in assessments if a.change is not None]
        triggers = Counter(trigger for change in changed for trigger in change.triggers)
        for trigger, count in triggers.items():  # one labelled child looked up per trigger
            metrics.HEALTH_CHANGES.labels(trigger).inc(count)
        return Rescored(len(assessments), len(changes))

    async def drain_queue(
        self,
        pool: asyncpg.Pool,
        as_of: datetime,
        *,
        chunk: int = 500,
        max_accounts: int | None = None,
        now: Callable[[], datetime] | None = None,
        on_changes: Callable[[], None] = lambda: None,
    ) -> Rescored:
        """Rescore queued accounts as of ``as_of`` (or ``now``'s reading, see :meth:`rescore`),
        ``chunk`` accounts per transaction: every one, or about ``max_accounts`` (whole chunks)
        when given. ``on_changes`` is called after each commit that wrote health changes (the
        relay publishes them at once, not at the end of the round)."""
        accounts = changes = taken = 0
        while True:
            async with pool.acquire() as conn, conn.transaction():
                claimed = await dirty.claim_dirty(conn, chunk)
                ids = [account for account, _ in claimed]
                done = await self.rescore(conn, ids, as_of, cause="events", now=now)
                await dirty.forget_dirty(conn, claimed)
            if done.changes:
                on_changes()
            accounts += done.accounts
            changes += done.changes
            taken += len(ids)
            if len(ids) < chunk or (max_accounts is not None and taken >= max_accounts):
                return Rescored(accounts, changes)


def _previous(row: scores.StoredHealth | None) -> health.Previous | None:
    if row is None:
        return None
    return health.Previous(
        snapshot=_snapshot_decoder.decode(row.snapshot),
        model_version=row.model_version,
        as_of=row.as_of,
        band_since=row.band_since,
        published_score=row.published_score,
        published_silence=row.published_silence,
    )


def _rows(
    model: Model,
    assessments: Sequence[health.Assessment],
    as_of: datetime,
    due_at: dict[str, datetime],
) -> tuple[list[scores.HealthRow], list[scores.HistoryRow], list[tuple[str, str, bytes]]]:
    current: list[scores.HealthRow] = []
    history: list[scores.HistoryRow] = []
    changes: list[tuple[str, str, bytes]] = []
    for a in assessments:
        snapshot = _encoder.encode(a.snapshot).decode()
        current.append(
            scores.HealthRow(
                account_id=a.account_id,
                model_version=model.version,
                profile=a.profile,
                as_of=as_of,
                score=a.snapshot.score,
                band=a.snapshot.band,
                band_since=a.band_since,
                partial=a.snapshot.partial,
                stale=a.snapshot.stale,
                top_reason=a.snapshot.reasons[0] if a.snapshot.reasons else None,
                snapshot=snapshot,
                next_eval_at=due_at.get(a.account_id),
            )
        )
        change = a.change
        if a.record_history:
            history.append(
                scores.HistoryRow(
                    account_id=a.account_id,
                    as_of=as_of,
                    model_version=model.version,
                    score=a.snapshot.score,
                    band=a.snapshot.band,
                    triggers=list(change.triggers) if change else [],
                    change_id=change.change_id if change else None,
                    snapshot=snapshot,
                    moved_by=_encoder.encode(change.moved_by).decode() if change else None,
                )
            )
        if change is not None:
            changes.append((change.change_id, a.account_id, _encoder.encode(change)))
    return current, history, changes


LONG_ROUND_SECONDS = 0.25
IDLE_SECONDS = 0.5
BACKLOG_SECONDS = 5.0


class RescoreWorker(Worker):
    """Runs :meth:`Scorer.drain_queue` when the consumer queued accounts (or every poll), at
    most once per ``min_interval_seconds``.

    A round takes what was queued when it began (at most ``round_accounts``); the next one
    follows after the interval. While a backlog is consumed — ``lag`` (the age of the newest
    record consumed) is ``BACKLOG_SECONDS`` or more — a long round (``LONG_ROUND_SECONDS``)
    is followed by a rest ``rest_ratio`` times as long, cut short once the consumer goes
    quiet: rescoring then takes at most 1 / (1 + ``rest_ratio``) of the time, and the
    consumer catches up first —
    scores computed from half-consumed history would be stale anyway — and every account is
    rescored once the queue settles, with fewer, fuller rounds meanwhile.
    """

    name = "rescorer"

    def __init__(
        self,
        scorer: Scorer,
        pool: asyncpg.Pool,
        clock: Clock,
        *,
        poll_seconds: float,
        chunk: int,
        on_changes: Callable[[], None],
        min_interval_seconds: float = 1.0,
        rest_ratio: float = 4.0,
        round_accounts: int = 20_000,
        lag: Callable[[], float] = lambda: 0.0,
    ) -> None:
        super().__init__(backoff=Backoff(0.5, 30.0))
        self._scorer = scorer
        self._pool = pool
        self._clock = clock
        self._poll_seconds = poll_seconds
        self._chunk = chunk
        self._on_changes = on_changes
        self._min_interval = min_interval_seconds
        self._rest_ratio = rest_ratio
        self._round_accounts = round_accounts
        self._lag = lag

    def transient(self, error: Exception) -> bool:
        return database_gone(error)

    async def step(self) -> float:
        """One round; then rest until the consumer queues accounts (``wake``) or the poll."""
        started = time.monotonic()
        async with self._pool.acquire() as conn:
            queued = await dirty.dirty_count(conn)
        await self._scorer.drain_queue(
            self._pool,
            self._clock.now(),
            chunk=self._chunk,
            max_accounts=min(max(queued, 1), self._round_accounts),
            now=self._clock.now,
            on_changes=self._on_changes,
        )
        async with self._pool.acquire() as conn:
            metrics.RESCORE_QUEUE.set(await dirty.dirty_count(conn))
        # Let the queue gather before the next round: under a stream of events an account
        # is rescored at most once per interval, however many batches touch it.
        busy = time.monotonic() - started
        await self.pause(self._min_interval)
        if busy >= LONG_ROUND_SECONDS and self._lag() >= BACKLOG_SECONDS:
            await self._give_way(busy * self._rest_ratio)  # let the consumer catch up
        if queued > self._round_accounts:
            return 0  # more was waiting than one round takes
        return self._poll_seconds

    async def _give_way(self, seconds: float) -> None:
        """Rest up to ``seconds`` while the consumer keeps queueing accounts (it wakes us per
        batch); a consumer quiet for ``IDLE_SECONDS`` has no backlog left to give way to."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), min(remaining, IDLE_SECONDS))
            except TimeoutError:
                if remaining > IDLE_SECONDS:
                    return


class InlineRescorer:
    """The consumer's ``rescore_inline`` hook: rescores the accounts a batch touched inside the
    batch's transaction — when the consumer is no more than ``max_lag_seconds`` behind (``lag``:
    the age of the batch's newest record) and the batch touched at most ``max_accounts`` — and
    returns them; when it touched more, it still rescores those with a ticket, a survey answer
    or an account record in the batch if they are at most ``max_accounts`` (alert rules react
    to those: they should not wait behind a round over every account with usage); the others
    are queued for the :class:`RescoreWorker`. A batch both rescoring and queueing locks the
    scores before it marks the queue, in key order each: the worker locks scores before it
    forgets what it claimed, so the two never deadlock. Scores, history and health changes
    commit with the batch's effects, in one transaction: a crash leaves both or neither (and
    then the batch is delivered again).

    ``after_commit`` (the handler's ``on_queued``) wakes the relay when the committed batch
    wrote health changes.
    """

    def __init__(
        self,
        scorer: Scorer,
        clock: Clock,
        *,
        max_accounts: int,
        max_lag_seconds: float,
        lag: Callable[[], float],
        on_changes: Callable[[], None],
    ) -> None:
        self._scorer = scorer
        self._clock = clock
        self._max_accounts = max_accounts
        self._max_lag = max_lag_seconds
        self._lag = lag
        self._on_changes = on_changes
        self._changes_written = False

    def decide(self, accounts: int) -> str | None:
        """Why the batch's accounts are queued, or None: they are rescored inline."""
        if self._max_accounts == 0:
            return "off"
        if accounts > self._max_accounts:
            return "too_many"
        if self._lag() > self._max_lag:
            return "behind"
        return None

    async def __call__(
        self, conn: asyncpg.Connection, account_ids: list[str], signals: set[str]
    ) -> Collection[str]:
        """Rescore all of ``account_ids``, or — too many of them — only those in ``signals``
        (a ticket, a survey answer, an account record: what alert rules react to) when they
        are few enough; returns those rescored."""
        if not account_ids:
            return ()
        queued = self.decide(len(account_ids))
        chosen, why = account_ids, "caught_up"
        if queued == "too_many":
            urgent = sorted(signals.intersection(account_ids))
            if urgent and self.decide(len(urgent)) is None:
                chosen, why, queued = urgent, "signals", None
        if queued is not None:
            metrics.TOUCHED_ACCOUNTS.labels("queued", queued).inc(len(account_ids))
            return ()
        done = await self._scorer.rescore(
            conn, chosen, self._clock.now(), cause="inline", now=self._clock.now
        )
        self._changes_written = self._changes_written or done.changes > 0
        metrics.TOUCHED_ACCOUNTS.labels("inline", why).inc(len(chosen))
        if len(chosen) < len(account_ids):
            metrics.TOUCHED_ACCOUNTS.labels("queued", "too_many").inc(
                len(account_ids) - len(chosen)
            )
        return set(chosen)

    def after_commit(self) -> None:
        """The batch committed: publish the health changes it wrote now."""
        if self._changes_written:
            self._changes_written = False
            self._on_changes()
