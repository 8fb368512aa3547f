"""The benchmark's events: ~300-byte usage events over 100k accounts with a Zipf-like skew.

Account ``k`` (1-based rank) is drawn with probability proportional to ``1 / k**s`` (``s`` =
:data:`ACCOUNT_SKEW`), so a few accounts are very busy and most see a handful of events — the
shape of real product usage. Users within an account and features are skewed the same way.
Everything is drawn from a seeded generator: ours and the baseline see the same events.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from shared.events import UsageEvent, encode

ACCOUNTS = 100_000
ACCOUNT_SKEW = 1.0
USERS_PER_ACCOUNT = 40
USER_SKEW = 1.1
FEATURES = [
    "reports.export",
    "reports.schedule",
    "dashboards.view",
    "dashboards.share",
    "alerts.configure",
    "integrations.slack",
    "integrations.salesforce",
    "api.tokens",
    "billing.invoices",
    "admin.sso",
    "admin.roles",
    "search.saved",
    "workflows.run",
    "workflows.edit",
    "imports.csv",
    "notebooks.open",
]
TYPES = ["feature_used", "feature_used", "session", "login", "api_call"]


def account_id(rank: int) -> str:
    return f"acct-{rank:07d}"


def _cumulative(n: int, skew: float) -> list[float]:
    return list(itertools.accumulate(1.0 / k**skew for k in range(1, n + 1)))


@dataclass
class Workload:
    """A seeded stream of usage events as the native API takes them and as Kafka carries them."""

    seed: int = 8
    accounts: int = ACCOUNTS
    now: datetime | None = None
    spread: timedelta = timedelta(hours=20)  # occurred_at within this much before ``now``

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._accounts = _cumulative(self.accounts, ACCOUNT_SKEW)
        self._users = _cumulative(USERS_PER_ACCOUNT, USER_SKEW)
        self._features = _cumulative(len(FEATURES), 1.0)
        self._serial = itertools.count()

    def ranks(self, count: int) -> list[int]:
        return [r + 1 for r in self._pick(range(self.accounts), self._accounts, count)]  # 1-based

    def _pick(self, population: range, cumulative: list[float], count: int) -> list[int]:
        return self._random.choices(population, cum_weights=cumulative, k=count)

    def native_items(self, count: int, now: datetime) -> list[dict[str, object]]:
        """Items for ``POST /v1/events`` (the ingest input), each ~300 bytes of JSON."""
        r = self._random
        ranks = self.ranks(count)
        users = self._pick(range(USERS_PER_ACCOUNT), self._users, count)
        features = self._pick(range(len(FEATURES)), self._features, count)
        spread = self.spread.total_seconds()
        items: list[dict[str, object]] = []
        for rank, user, feature in zip(ranks, users, features, strict=True):
            serial = next(self._serial)
            kind = TYPES[serial % len(TYPES)]
            items.append(
                {
                    "event_type": "usage",
                    "event_id": f"evt-{self.seed:02d}-{serial:012d}-{r.getrandbits(64):016x}",
                    "account_id": account_id(rank),
                    "occurred_at": (now - timedelta(seconds=r.random() * spread)).isoformat(),
                    "user_id": f"user-{user:03d}.{account_id(rank)}@customer.example",
                    "type": kind,
                    "feature": FEATURES[feature] if kind == "feature_used" else None,
                    "quantity": float(1 + serial % 3),
                }
            )
        return items

    def events(
        self, count: int, now: datetime, received_at: datetime | None = None
    ) -> Iterator[UsageEvent]:
        """The same shape as the contract's usage events (what ingest writes to Kafka)."""
        for item in self.native_items(count, now):
            yield UsageEvent(
                event_id=str(item["event_id"]),
                account_id=str(item["account_id"]),
                occurred_at=datetime.fromisoformat(str(item["occurred_at"])),
                received_at=received_at or now,
                source="native",
                user_id=str(item["user_id"]),
                type=str(item["type"]),
                feature=item["feature"] if isinstance(item["feature"], str) else None,
                quantity=float(item["quantity"]),  # type: ignore[arg-type]
            )

    def encoded(self, count: int, now: datetime) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs as they sit on the usage topic."""
        for event in self.events(count, now):
            yield event.account_id.encode(), encode(event)


_json = msgspec.json.Encoder()


def body(items: list[dict[str, object]]) -> bytes:
    """A request body: one object for a single item, an array otherwise."""
    return _json.encode(items[0] if len(items) == 1 else items)
