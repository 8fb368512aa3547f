"""The ground truth: every event ingest acknowledged, and what scoring must therefore hold.

Pure: the load generator records each request's answer here; :func:`compare` holds the
per-account counts scoring's aggregates show against the ones the acknowledged events imply.

An event is in exactly one of three sets:

- ``acknowledged`` — answered 2xx (possibly after retries of the same event ids): it must be
  counted, exactly once;
- ``refused`` — answered ``503`` and deliberately never retried (the probes sent while the
  broker is down): it must never be counted;
- ``in_doubt`` — no answer at all and never retried: either outcome is allowed, so it is left
  out of both checks (and counted in the report).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

Item = Mapping[str, Any]
"""One native event exactly as sent to ``POST /v1/events``."""

HIGH_URGENT = frozenset({"high", "urgent"})


@dataclass
class Counts:
    """What scoring's aggregates hold for one account (the columns the ledger can predict)."""

    usage_events: int = 0
    usage_quantity: float = 0.0
    tickets_opened: int = 0
    high_urgent_opened: int = 0
    escalations: int = 0
    reopens: int = 0
    nps_answers: int = 0
    nps_sum: int = 0

    def add(self, item: Item) -> None:
        kind = item["event_type"]
        if kind == "usage":
            self.usage_events += 1
            self.usage_quantity += float(item.get("quantity", 1.0))
        elif kind == "ticket":
            action = item["action"]
            if action == "opened":
                self.tickets_opened += 1
                self.high_urgent_opened += item["priority"] in HIGH_URGENT
            elif action == "escalated":
                self.escalations += 1
            elif action == "reopened":
                self.reopens += 1
        elif kind == "survey" and item["kind"] == "nps":
            self.nps_answers += 1
            self.nps_sum += int(item["score"])

    @property
    def events(self) -> int:
        return self.usage_events + self.tickets_opened + self.escalations + self.reopens


def counts_of(items: Iterable[Item]) -> dict[str, Counts]:
    per_account: dict[str, Counts] = {}
    for item in items:
        per_account.setdefault(item["account_id"], Counts()).add(item)
    return per_account


@dataclass
class Ledger:
    acknowledged: dict[str, Item] = field(default_factory=dict)
    refused: dict[str, Item] = field(default_factory=dict)
    in_doubt: dict[str, Item] = field(default_factory=dict)

    def acknowledge(self, items: Iterable[Item]) -> None:
        for item in items:
            self.acknowledged[item["event_id"]] = item

    def refuse(self, items: Iterable[Item]) -> None:
        for item in items:
            self.refused[item["event_id"]] = item

    def doubt(self, items: Iterable[Item]) -> None:
        for item in items:
            self.in_doubt[item["event_id"]] = item

    def expected(self) -> dict[str, Counts]:
        """Per account, what the acknowledged events add up to."""
        return counts_of(self.acknowledged.values())

    def refused_only_accounts(self) -> set[str]:
        """Accounts that only ever had refused events: scoring must know nothing of them."""
        others = {
            item["account_id"] for item in (*self.acknowledged.values(), *self.in_doubt.values())
        }
        return {item["account_id"] for item in self.refused.values()} - others


@dataclass(frozen=True)
class Difference:
    account_id: str
    column: str
    expected: float
    actual: float


@dataclass(frozen=True)
class Comparison:
    """The outcome of holding scoring's per-account counts against the ledger."""

    accounts: int  # accounts the ledger expects
    matching: int
    differences: tuple[Difference, ...]
    unexpected_accounts: tuple[str, ...]  # scoring counts events for accounts nobody acked

    @property
    def ok(self) -> bool:
        return not self.differences and not self.unexpected_accounts

    def describe(self, limit: int = 10) -> str:
        if self.ok:
            return f"all {self.accounts} accounts match the ledger"
        lines = [
            f"{d.account_id}.{d.column}: expected {d.expected:g}, scoring has {d.actual:g}"
            for d in self.differences[:limit]
        ]
        if self.unexpected_accounts:
            lines.append(f"unexpected accounts: {', '.join(self.unexpected_accounts[:limit])}")
        return "; ".join(lines)


def compare(
    expected: Mapping[str, Counts],
    actual: Mapping[str, Counts],
    *,
    uncertain: Mapping[str, Counts] | None = None,
) -> Comparison:
    """Every column of every expected account must equal scoring's, and scoring may hold no
    other account. Events in doubt (``uncertain``) may or may not have been counted: for an
    account with some, each column must lie between the acknowledged count and that plus the
    events in doubt."""
    doubt = uncertain or {}
    differences: list[Difference] = []
    matching = 0
    for account_id in sorted(set(expected) | set(doubt)):
        want = expected.get(account_id, Counts())
        have = actual.get(account_id, Counts())
        extra = doubt.get(account_id, Counts())
        wrong = [
            Difference(account_id, f.name, getattr(want, f.name), getattr(have, f.name))
            for f in fields(Counts)
            if not getattr(want, f.name)
            <= getattr(have, f.name)
            <= getattr(want, f.name) + getattr(extra, f.name)
        ]
        differences += wrong
        matching += not wrong
    known = set(expected) | set(doubt)
    unexpected = tuple(sorted(a for a in actual if a not in known))
    return Comparison(len(known), matching, tuple(differences), unexpected)
