"""Steady load through ingest's native API, with every answer written to the ledger.

Each client posts batches of native events (usage, tickets, NPS answers) over a few hundred
accounts, paced to a total rate. A batch answered ``202`` is acknowledged in the ledger. A
batch answered ``503`` (``Retry-After``) or not answered at all is sent again — the same bytes,
so the same event ids — until it is acknowledged, as a well-behaved client would; a batch that
runs out of attempts goes to the ledger's ``in_doubt``. Probes are the exception: sent once,
never retried, so a refused probe must never be counted.

Every loop is bounded: by a deadline, a number of batches and a number of attempts per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from chaos.ledger import Item, Ledger

FEATURES = ("reports", "exports", "dashboards", "alerts", "api", "sso", "billing", "search")
TICKET_ACTIONS = ("opened", "opened", "opened", "escalated", "reopened", "solved")
PRIORITIES = ("low", "normal", "high", "urgent")


def logins(
    account: str, now: datetime, count: int, *, every_hours: float, users: int, first_user: int = 0
) -> list[dict[str, Any]]:
    """``count`` logins to ``account``, the latest 2 hours ago, one every ``every_hours``, by
    users ``u<first_user % users>``, the next one… (event ids ``use-<account>-<i>``)."""
    return [
        {
            "event_type": "usage",
            "event_id": f"use-{account}-{i}",
            "account_id": account,
            "occurred_at": (now - timedelta(hours=2 + every_hours * i)).isoformat(),
            "user_id": f"u{(first_user + i) % users}",
            "type": "login",
            "quantity": 1.0,
        }
        for i in range(count)
    ]


def urgent_tickets(
    account: str, now: datetime, *, event_prefix: str = "surge", ticket_prefix: str = "surge"
) -> list[dict[str, Any]]:
    """Three urgent tickets opened for ``account`` minutes ago: a ticket-surge alert to its CSM.
    Event ids ``<event_prefix>-<account>-<i>``, ticket ids ``<ticket_prefix>-<i>``."""
    return [
        {
            "event_type": "ticket",
            "event_id": f"{event_prefix}-{account}-{i}",
            "account_id": account,
            "occurred_at": (now - timedelta(minutes=5 + i)).isoformat(),
            "ticket_id": f"{ticket_prefix}-{i}",
            "action": "opened",
            "priority": "urgent",
            "status": "open",
        }
        for i in range(3)
    ]


@dataclass(frozen=True)
class Workload:
    """What the events look like: which accounts, users and features, and the mix of kinds."""

    accounts: tuple[str, ...]
    users_per_account: int = 6
    ticket_share: float = 0.08
    survey_share: float = 0.04
    max_age_hours: float = 36.0
    surge_accounts: tuple[str, ...] = ()  # each gets, once, three urgent tickets: an alert
    surge_every_batches: int = 10

    def items(self, rng: random.Random, prefix: str, n: int, now: datetime) -> list[dict[str, Any]]:
        return [self.item(rng, f"{prefix}-{i}", rng.choice(self.accounts), now) for i in range(n)]

    def item(
        self, rng: random.Random, event_id: str, account: str, now: datetime
    ) -> dict[str, Any]:
        at = now - timedelta(seconds=rng.uniform(0, self.max_age_hours * 3600))
        base: dict[str, Any] = {
            "event_id": event_id,
            "account_id": account,
            "occurred_at": at.isoformat(),
        }
        user = f"u{rng.randrange(self.users_per_account)}"
        draw = rng.random()
        if draw < self.ticket_share:
            return base | {
                "event_type": "ticket",
                "ticket_id": f"t{rng.randrange(40)}",
                "action": rng.choice(TICKET_ACTIONS),
                "priority": rng.choice(PRIORITIES),
                "status": "open",
            }
        if draw < self.ticket_share + self.survey_share:
            return base | {
                "event_type": "survey",
                "user_id": user,
                "kind": "nps",
                "score": rng.randrange(11),
            }
        return base | {
            "event_type": "usage",
            "user_id": user,
            "type": rng.choice(("login", "session", "feature_used", "api_call")),
            "feature": rng.choice(FEATURES),
            "quantity": float(rng.randrange(1, 6)),
        }


@dataclass(frozen=True)
class Answer:
    """One request and how it was answered (``status`` None: no answer)."""

    at: float  # monotonic
    status: int | None
    code: str | None
    events: int
    retry_after: str | None = None
    probe: bool = False


@dataclass
class LoadStats:
    answers: list[Answer] = field(default_factory=list)
    batches_started: int = 0
    batches_acknowledged: int = 0
    batches_given_up: int = 0
    retries: int = 0
    unexpected: list[str] = field(default_factory=list)
    active_seconds: float = 0.0

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> Counter[str]:
        return Counter(
            f"{a.status}" + (f" {a.code}" if a.code else "") if a.status else "no answer"
            for a in self.answers
            if since <= a.at <= until and not a.probe
        )


@dataclass(frozen=True)
class LoadConfig:
    clients: int = 4
    batch_size: int = 50
    events_per_second: float = 800.0
    max_attempts: int = 200
    retry_cap_seconds: float = 1.0
    request_timeout_seconds: float = 15.0
    max_batches: int = 1_000_000
    deadline_seconds: float = 3600.0
    seed: int = 9


class LoadGenerator:
    """``start()`` it, ``pause()`` it to let everything settle, ``resume()``, ``stop()``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        ledger: Ledger,
        workload: Workload,
        config: LoadConfig,
    ) -> None:
        self._base_url = base_url
        self._api_key = api_key
        self.ledger = ledger
        self._workload = workload
        self._config = config
        self.stats = LoadStats()
        self._running = asyncio.Event()
        self._stopping = asyncio.Event()
        self._idle = asyncio.Condition()
        self._busy = 0
        self._next_slot = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._http: httpx.AsyncClient | None = None
        self._batches = 0
        self._resumed_at: float | None = None
        self._deadline = 0.0
        self._surges = 0

    async def start(self) -> None:
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            headers={"Authorization": f"Bearer {self._api_key}"},
            timeout=self._config.request_timeout_seconds,
            limits=httpx.Limits(max_connections=self._config.clients + 4),
        )
        self._deadline = time.monotonic() + self._config.deadline_seconds
        self._tasks = [
            asyncio.create_task(self._client(n), name=f"load-{n}")
            for n in range(self._config.clients)
        ]
        self.resume()

    def resume(self) -> None:
        self._next_slot = time.monotonic()
        self._resumed_at = time.monotonic()
        self._running.set()

    async def pause(self, timeout_s: float = 300.0) -> None:
        """Start no new batch; return once every batch in hand is acknowledged or given up."""
        self._running.clear()
        if self._resumed_at is not None:
            self.stats.active_seconds += time.monotonic() - self._resumed_at
            self._resumed_at = None
        async with asyncio.timeout(timeout_s), self._idle:
            await self._idle.wait_for(lambda: self._busy == 0)

    async def stop(self) -> None:
        if self._running.is_set():
            await self.pause()
        self._stopping.set()
        self._running.set()  # wake the clients so they see the stop
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._http is not None:
            await self._http.aclose()

    @property
    def events_per_second(self) -> float:
        return self._config.events_per_second

    # -- the clients -----------------------------------------------------------------------

    async def _client(self, number: int) -> None:
        rng = random.Random(self._config.seed * 1000 + number)
        sequence = 0
        while not self._stopping.is_set():
            await self._running.wait()
            if self._stopping.is_set():
                return
            if self._batches >= self._config.max_batches or time.monotonic() > self._deadline:
                return
            await self._pace()
            if not self._running.is_set():
                continue
            self._batches += 1
            sequence += 1
            now = datetime.now(UTC)
            items = self._workload.items(rng, f"L{number}-{sequence}", self._config.batch_size, now)
            surges = self._workload.surge_accounts
            if self._batches % self._workload.surge_every_batches == 0 and self._surges < len(
                surges
            ):
                items += urgent_tickets(surges[self._surges], now)
                self._surges += 1
            async with self._idle:
                self._busy += 1
            try:
                await self._deliver(items)
            finally:
                async with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    async def _pace(self) -> None:
        slot = max(self._next_slot, time.monotonic())
        self._next_slot = slot + self._config.batch_size / self._config.events_per_second
        delay = slot - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _deliver(self, items: list[dict[str, Any]]) -> None:
        """Send the batch until it is acknowledged or out of attempts."""
        self.stats.batches_started += 1
        body = json.dumps(items).encode()
        backoff = 0.2
        for attempt in range(self._config.max_attempts):
            if attempt:
                self.stats.retries += 1
            outcome = await self._post(body, len(items))
            if outcome.status == 202:
                self._acknowledged(items, outcome)
                return
            if outcome.status == 503 and outcome.code in ("kafka_unavailable", "shutting_down"):
                await asyncio.sleep(self._retry_wait(outcome.retry_after))
                continue
            if outcome.status is None:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            self.stats.unexpected.append(f"{outcome.status} {outcome.code}")
            break
        self.stats.batches_given_up += 1
        self.ledger.doubt(items)

    def _acknowledged(self, items: list[dict[str, Any]], outcome: _Outcome) -> None:
        rejected = {int(r["index"]) for r in outcome.body.get("rejected", [])}
        if rejected:
            self.stats.unexpected.append(f"202 with {len(rejected)} items refused")
        self.ledger.acknowledge(item for i, item in enumerate(items) if i not in rejected)
        self.stats.batches_acknowledged += 1

    def _retry_wait(self, header: str | None) -> float:
        try:
            seconds = float(header) if header is not None else 1.0
        except ValueError:
            seconds = 1.0
        return min(max(seconds, 0.05), self._config.retry_cap_seconds)

    async def _post(self, body: bytes, events: int, *, probe: bool = False) -> _Outcome:
        assert self._http is not None
        try:
            response = await self._http.post(
                "/v1/events", content=body, headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError:
            answer = Answer(time.monotonic(), None, None, events, probe=probe)
            self.stats.answers.append(answer)
            return _Outcome(None, None, None, {})
        try:
            decoded = response.json()
        except ValueError:
            decoded = {}
        parsed: dict[str, Any] = decoded if isinstance(decoded, dict) else {}
        code = parsed.get("code") if response.status_code >= 400 else None
        retry_after = response.headers.get("retry-after")
        self.stats.answers.append(
            Answer(time.monotonic(), response.status_code, code, events, retry_after, probe)
        )
        return _Outcome(response.status_code, code, retry_after, parsed)

    # -- probes ------------------------------------------------------------------------------

    async def probe(self, accounts: Sequence[str], events_each: int, tag: str) -> Counter[str]:
        """One request per account, sent once and never retried; returns the answers."""
        rng = random.Random(zlib.crc32(tag.encode()))
        answered: Counter[str] = Counter()
        now = datetime.now(UTC)
        for account in accounts:
            items: list[Item] = [
                self._workload.item(rng, f"{tag}-{account}-{i}", account, now)
                for i in range(events_each)
            ]
            outcome = await self._post(json.dumps(items).encode(), len(items), probe=True)
            if outcome.status == 202:
                self.ledger.acknowledge(items)
            elif outcome.status == 503:
                if outcome.retry_after is None:
                    self.stats.unexpected.append("503 without Retry-After")
                self.ledger.refuse(items)
            else:
                self.ledger.doubt(items)
            answered[f"{outcome.status} {outcome.code or ''}".strip()] += 1
        return answered


@dataclass(frozen=True)
class _Outcome:
    status: int | None
    code: str | None
    retry_after: str | None
    body: dict[str, Any]
