"""Pure checks: what the sinks received held against the alerts outbox, and the dead-letter
topics held against the poison the harness sent. The faults gather the inputs; these decide."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

TERMINAL = frozenset({"sent", "fallen_back", "failed"})


@dataclass(frozen=True)
class Check:
    """One thing verified after a fault: what, whether it held, and the figures behind it."""

    name: str
    ok: bool
    detail: str


# ---------------------------------------------------------------------------------------------
# Notifications: outbox ↔ sinks


@dataclass(frozen=True)
class Row:
    """An alerts outbox row, as far as delivery is concerned."""

    key: str
    channel: str  # slack | email
    state: str
    message_id: str
    address: str = ""


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt a sink saw. ``delivered``: the sink accepted it (a real provider
    would have posted it). ``timed_out``: it was held longer than the sender waits, so the
    sender could not know it was delivered."""

    key: str | None
    channel: str
    delivered: bool
    reply: str
    message_id: str | None = None
    timed_out: bool = False


@dataclass
class DeliveryAudit:
    rows: int = 0
    states: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)  # "slack 429", "email 451"…
    exactly_once: int = 0
    fallen_back: int = 0
    exhausted: list[str] = field(default_factory=list)
    documented_duplicates: list[str] = field(default_factory=list)
    unexplained_duplicates: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    phantom: list[str] = field(default_factory=list)
    not_terminal: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    missing_fallback: list[str] = field(default_factory=list)
    message_id_changed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.unexplained_duplicates
            or self.lost
            or self.phantom
            or self.not_terminal
            or self.failed
            or self.missing_fallback
            or self.message_id_changed
        )

    def describe(self) -> str:
        parts = [
            f"{self.rows} outbox rows ("
            + ", ".join(f"{k} {v}" for k, v in sorted(self.states.items()))
            + ")",
            f"{self.exactly_once} delivered exactly once",
            f"{self.fallen_back} fell back to the next channel",
            f"{len(self.documented_duplicates)} delivered twice in the documented window",
        ]
        if self.exhausted:
            parts.append(
                f"{len(self.exhausted)} failed at the last destination of their chain, every "
                "destination having refused permanently (as designed)"
            )
        for name in (
            "unexplained_duplicates",
            "lost",
            "phantom",
            "not_terminal",
            "failed",
            "missing_fallback",
            "message_id_changed",
        ):
            found: list[str] = getattr(self, name)
            if found:
                parts.append(f"{name.replace('_', ' ')}: {len(found)} ({', '.join(found[:3])})")
        return "; ".join(parts)


def audit_deliveries(
    rows: Sequence[Row],
    attempts: Sequence[Attempt],
    *,
    unrecorded: Iterable[str] = (),
    last_resort: Iterable[str] = (),
) -> DeliveryAudit:
    """Every outbox row must end ``sent`` (delivered once) or ``fallen_back`` (with its next
    row); no delivery without a ``sent`` row. A second delivery is allowed only in the window
    docs/alerts.md documents: the sender could not learn the outcome of an attempt the provider
    accepted (it timed out, or its outcome could not be recorded: ``unrecorded`` keys).

    ``failed`` is as designed only for a row to a ``last_resort`` address (the team mailbox:
    nothing comes after it) whose last attempt was refused permanently."""
    audit = DeliveryAudit(rows=len(rows), states=Counter(r.state for r in rows))
    by_key = {r.key: r for r in rows}
    delivered: dict[str, list[Attempt]] = defaultdict(list)
    last_reply: dict[str, Attempt] = {}
    offered_ids: dict[str, set[str]] = defaultdict(set)
    for attempt in attempts:
        audit.attempts[f"{attempt.channel} {attempt.reply}"] += 1
        if attempt.key is None:
            audit.phantom.append(f"{attempt.channel} message without a key")
            continue
        last_reply[attempt.key] = attempt
        if attempt.message_id:
            offered_ids[attempt.key].add(attempt.message_id)
        if attempt.delivered:
            delivered[attempt.key].append(attempt)
    window = set(unrecorded)
    ends = set(last_resort)
    for row in rows:
        copies = delivered.get(row.key, [])
        if row.state not in TERMINAL:
            audit.not_terminal.append(f"{row.key} ({row.state})")
        elif row.state == "failed":
            last = last_reply.get(row.key)
            if row.address in ends and last is not None and _permanent(last):
                audit.exhausted.append(row.key)
            else:
                audit.failed.append(row.key)
        elif row.state == "fallen_back":
            audit.fallen_back += 1
            if not any(k.startswith(row.key + ">") for k in by_key):
                audit.missing_fallback.append(row.key)
        if row.state == "sent" and not copies:
            audit.lost.append(row.key)
        elif row.state != "sent" and copies and row.state in TERMINAL:
            audit.phantom.append(f"{row.key} delivered but {row.state}")
        elif len(copies) == 1:
            audit.exactly_once += 1
        elif len(copies) > 1:
            earlier_unknown = any(a.timed_out for a in copies[:-1]) or row.key in window
            label = f"{row.key} ×{len(copies)}"
            if earlier_unknown:
                audit.documented_duplicates.append(label)
            else:
                audit.unexplained_duplicates.append(label)
        ids = offered_ids.get(row.key, set())
        if row.channel == "email" and ids and ids != {row.message_id}:
            audit.message_id_changed.append(row.key)
    for key in delivered:
        if key not in by_key:
            audit.phantom.append(f"{key} has no outbox row")
    return audit


def _permanent(attempt: Attempt) -> bool:
    """A refusal no retry can change: an SMTP 5xx, a Slack error such as channel_not_found."""
    if attempt.channel == "email":
        return attempt.reply.startswith("5")
    return attempt.reply not in ("ok", "slow", "timeout", "drop") and not attempt.reply.isdigit()


# ---------------------------------------------------------------------------------------------
# Poison → dead letters


@dataclass(frozen=True)
class Poison:
    """A message the harness put on a topic, and the dead-letter topics it must reach."""

    name: str
    topic: str
    partition: int
    offset: int
    value: bytes | None
    dead_letter_topics: tuple[str, ...]
    expected_code: str | None = None  # the dead letter's code must be this one, when given

    @property
    def origin(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    value: bytes | None
    headers: Mapping[str, str]


@dataclass(frozen=True)
class PoisonOutcome:
    poison: Poison
    dlq_topic: str
    copies: int
    code: str | None
    reason: str | None
    bytes_kept: bool

    @property
    def ok(self) -> bool:
        expected = self.poison.expected_code
        return (
            self.copies == 1
            and bool(self.code)
            and (expected is None or self.code == expected)
            and bool(self.reason)
            and self.bytes_kept
        )


def audit_poison(poison: Sequence[Poison], dead: Sequence[DeadLetter]) -> list[PoisonOutcome]:
    """For each poison message and each dead-letter topic it must reach: exactly one dead
    letter naming its origin, with a code, a reason and the original bytes."""
    by_origin: dict[tuple[str, str], list[DeadLetter]] = defaultdict(list)
    for letter in dead:
        by_origin[(letter.topic, letter.headers.get("dlq.origin", ""))].append(letter)
    outcomes: list[PoisonOutcome] = []
    for item in poison:
        for dlq in item.dead_letter_topics:
            found = by_origin.get((dlq, item.origin), [])
            first = found[0] if found else None
            outcomes.append(
                PoisonOutcome(
                    item,
                    dlq,
                    len(found),
                    first.headers.get("dlq.code") if first else None,
                    first.headers.get("dlq.reason") if first else None,
                    first is not None and (first.value or b"") == (item.value or b""),
                )
            )
    return outcomes
