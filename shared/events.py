"""The v1 event contract: every message on the wire, the topics they travel on, encode/decode.

JSON on the wire. Every message carries ``schema_version``; events (usage, ticket, survey)
and health changes carry an ``event_type`` tag so a consumer can tell them apart.

Producers are strict: they build these structs, so what they write always matches the schema.
Consumers are tolerant: decoding ignores fields it does not know, so a producer may add an
optional field without breaking older consumers.

One example payload per kind lives in ``shared/examples/``; both sides test against them.
The JSON Schema export (``python -m shared.events schema``) is kept in ``shared/schemas/``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeVar

import msgspec

SCHEMA_VERSION = 1

# ---------------------------------------------------------------------------------------------
# Field types

Timestamp = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 with a UTC offset")]
EventId = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=128, description="Idempotency key, unique per event"),
]
AccountId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=256, description="Customer account, case-sensitive")
]
PersonId = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Name = Annotated[str, msgspec.Meta(max_length=512)]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
MAX_SEATS = 10_000_000  # an account record with more seats is refused (scoring stores an int4)
Source = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
MAX_TICKET_IDS = 10  # ticket ids a health snapshot names as evidence
MAX_EVIDENCE = 8  # facts a component move names
MAX_DAILY_ALERT_BUDGET = 1000  # new risk alerts a person may get directly per day

TicketAction = Literal["opened", "updated", "escalated", "solved", "reopened"]
TicketPriority = Literal["low", "normal", "high", "urgent"]
TicketStatus = Literal["new", "open", "pending", "hold", "solved", "closed"]
SurveyKind = Literal["nps", "csat"]
Band = Literal["green", "yellow", "red"]
LifecycleStage = Literal["onboarding", "adopting", "mature", "renewing", "churned"]


# ---------------------------------------------------------------------------------------------
# Events: usage, ticket, survey


class Envelope(msgspec.Struct, kw_only=True, tag_field="event_type"):
    """Fields every event carries. ``received_at`` and ``source`` are set by ingest."""

    event_id: EventId
    account_id: AccountId
    occurred_at: Timestamp
    received_at: Timestamp
    source: Source
    schema_version: int = SCHEMA_VERSION


class UsageEvent(Envelope, tag="usage"):
    """Someone at the account used the product."""

    user_id: Short
    type: Short  # login, session, feature_used, api_call, ...
    feature: Short | None = None
    quantity: NonNegative = 1.0


class TicketEvent(Envelope, tag="ticket"):
    """A support ticket of the account was opened or changed."""

    ticket_id: Short
    action: TicketAction
    priority: TicketPriority
    status: TicketStatus


class SurveyEvent(Envelope, tag="survey"):
    """An NPS (0–10) or CSAT (1–5) answer from someone at the account."""

    user_id: Short
    kind: SurveyKind
    score: Annotated[int, msgspec.Meta(ge=0, le=10)]

    def __post_init__(self) -> None:
        if self.kind == "csat" and not 1 <= self.score <= 5:
            raise ValueError("a CSAT score is between 1 and 5")


Event = UsageEvent | TicketEvent | SurveyEvent


# ---------------------------------------------------------------------------------------------
# Records on compacted topics: accounts and people (latest value per key wins; a null value
# is a tombstone that deletes the key).


class AccountTeam(msgspec.Struct, kw_only=True):
    """Person ids of who owns each motion for the account; any may be absent."""

    csm: PersonId | None = None
    account_executive: PersonId | None = None
    renewal_owner: PersonId | None = None


class AccountRecord(msgspec.Struct, kw_only=True):
    account_id: AccountId
    name: Name
    tier: Short | None = None
    seats: Annotated[int, msgspec.Meta(ge=0, le=MAX_SEATS)] | None = None
    arr: NonNegative | None = None
    renewal_date: date | None = None
    lifecycle_stage: LifecycleStage | None = None
    team: AccountTeam = msgspec.field(default_factory=AccountTeam)
    updated_at: Timestamp
    source: Source
    schema_version: int = SCHEMA_VERSION


LocalTime = Annotated[
    str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM, 24 h")
]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
AlertChannel = Literal["slack", "email", "digest"]


class WorkingHours(msgspec.Struct, kw_only=True):
    """A person's working week in their own time zone: the days, and the local start and end
    of each (the end after the start, on the same day)."""

    days: Annotated[list[Weekday], msgspec.Meta(min_length=1, max_length=7)]
    start: LocalTime
    end: LocalTime

    def __post_init__(self) -> None:
        if self.start >= self.end:
            raise ValueError(f"working hours must start before they end ({self.start}-{self.end})")


class QuietHours(msgspec.Struct, kw_only=True):
    """A daily local window with no messages at all; an end before the start crosses
    midnight (22:00-07:00)."""

    start: LocalTime
    end: LocalTime

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError(f"quiet hours start and end at the same time ({self.start})")


class PersonRecord(msgspec.Struct, kw_only=True):
    """A CSM, account executive, renewal owner or manager.

    How alerts reach them (each optional; absent = the alerts service's defaults): their
    ``working_hours`` and ``quiet_hours`` (local, in ``time_zone``), the ``alert_channel`` they
    prefer (``digest``: no direct messages, everything in the daily digest) and a
    ``daily_alert_budget`` of new risk alerts sent directly per local day."""

    person_id: PersonId
    name: Name
    email: Annotated[str, msgspec.Meta(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    slack_user_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    manager_id: PersonId | None = None
    time_zone: Annotated[str, msgspec.Meta(max_length=64)] = "UTC"
    active: bool = True
    working_hours: WorkingHours | None = None
    quiet_hours: QuietHours | None = None
    alert_channel: AlertChannel | None = None
    daily_alert_budget: Annotated[int, msgspec.Meta(ge=0, le=MAX_DAILY_ALERT_BUDGET)] | None = None
    updated_at: Timestamp
    source: Source
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.time_zone!r}") from exc


class MembershipRecord(msgspec.Struct, kw_only=True):
    """A product user belongs to a customer account (a Segment ``group`` call said so).

    Keyed by ``user_id`` on a compacted topic: the latest account per user wins. Ingest keeps
    no state of its own; it reads this topic back to attach later ``track``/``page`` calls that
    name no account to the user's account.
    """

    user_id: Short
    account_id: AccountId
    updated_at: Timestamp
    source: Source
    schema_version: int = SCHEMA_VERSION


# ---------------------------------------------------------------------------------------------
# Health changes: published by scoring, consumed by alerts.


class ComponentScore(msgspec.Struct, kw_only=True):
    """One component of a score. ``contribution = points * weight / 100``; they add up to it."""

    name: str
    raw: float | None  # the measured value (None when the input is missing)
    points: float  # 0–100, how healthy this component is on its own
    weight: float  # 0–100, from the model; weights add up to 100
    contribution: float  # points * weight / 100
    status: Literal["ok", "missing", "stale"] = "ok"
    detail: str | None = None


class Signals(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Plain facts about the account at ``as_of`` that rules read; None when unknown."""

    days_since_activity: float | None = None
    active_users_7d: int | None = None
    seats: int | None = None
    seat_utilisation: float | None = None  # active users (30 days) / seats, 0..n
    open_high_urgent_tickets: int | None = None
    high_urgent_opened_7d: int | None = None
    # ids of the open high/urgent tickets, oldest first, at most MAX_TICKET_IDS (evidence)
    open_high_urgent_ticket_ids: (
        Annotated[list[Short], msgspec.Meta(max_length=MAX_TICKET_IDS)] | None
    ) = None
    nps_latest: int | None = None
    renewal_date: date | None = None
    days_in_band: float | None = None


# Scoring publishes a health change whenever ``days_since_activity`` crosses this many days,
# either way, since the change it last published (trigger ``threshold_crossed``). So a consumer
# may count silence forward from a published snapshot that shows at least this much of it (no
# activity can have happened since without a change), and must not from one that shows less.
SILENCE_DAYS = 3.0


class HealthSnapshot(msgspec.Struct, kw_only=True):
    score: float
    band: Band
    components: list[ComponentScore]
    partial: bool = False  # some inputs missing: named in `missing`
    stale: bool = False  # some inputs older than their maximum age: named in `stale_inputs`
    missing: list[str] = msgspec.field(default_factory=list)
    stale_inputs: list[str] = msgspec.field(default_factory=list)
    reasons: list[str] = msgspec.field(default_factory=list)
    signals: Signals = msgspec.field(default_factory=Signals)
    # The account's data does not cover the baseline window yet: the band is never worse than
    # yellow and no risk alert is raised; the reason says how much history there is.
    warming_up: bool = False
    warming_up_reason: str | None = None


class ComponentMove(msgspec.Struct, kw_only=True):
    name: str
    delta_points: float  # change of the component's contribution to the score
    # the facts behind the move, in words: "weekly active users 12 → 4",
    # "3 high/urgent tickets open: #4512, #4519, #4533" (absent in messages before 2026-12)
    evidence: Annotated[list[str], msgspec.Meta(max_length=MAX_EVIDENCE)] = msgspec.field(
        default_factory=list
    )


class HealthChange(msgspec.Struct, kw_only=True, tag_field="event_type", tag="health_change"):
    """The health of an account moved meaningfully (band, score delta, or a threshold)."""

    change_id: EventId  # deterministic: the same evaluation always yields the same id
    account_id: AccountId
    as_of: Timestamp
    model_version: Short
    before: HealthSnapshot | None  # None for the first score of an account
    after: HealthSnapshot
    triggers: list[Literal["band_changed", "score_delta", "threshold_crossed", "first_score"]]
    moved_by: list[ComponentMove] = msgspec.field(default_factory=list)
    reasons: list[str] = msgspec.field(default_factory=list)
    schema_version: int = SCHEMA_VERSION


# ---------------------------------------------------------------------------------------------
# Topics


@dataclass(frozen=True)
class TopicSpec:
    suffix: str
    partitions: int
    compacted: bool = False
    retention_ms: int = 7 * 24 * 3600 * 1000


TOPIC_SPECS: dict[str, TopicSpec] = {
    "usage": TopicSpec("usage.v1", partitions=6),
    "tickets": TopicSpec("tickets.v1", partitions=6),
    "surveys": TopicSpec("surveys.v1", partitions=3),
    "accounts": TopicSpec("accounts.v1", partitions=3, compacted=True),
    "people": TopicSpec("people.v1", partitions=1, compacted=True),
    "memberships": TopicSpec("memberships.v1", partitions=3, compacted=True),
    "health": TopicSpec("health-changes.v1", partitions=6, compacted=True),
    "ingest_dlq": TopicSpec("ingest.dlq.v1", partitions=1, retention_ms=30 * 24 * 3600 * 1000),
    "scoring_dlq": TopicSpec("scoring.dlq.v1", partitions=1, retention_ms=30 * 24 * 3600 * 1000),
    "alerts_dlq": TopicSpec("alerts.dlq.v1", partitions=1, retention_ms=30 * 24 * 3600 * 1000),
}


@dataclass(frozen=True)
class Topics:
    """Topic names under one prefix (``TOPIC_PREFIX``, default ``churnwatch.``)."""

    prefix: str = "churnwatch."

    def name(self, key: str) -> str:
        return self.prefix + TOPIC_SPECS[key].suffix

    @property
    def usage(self) -> str:
        return self.name("usage")

    @property
    def tickets(self) -> str:
        return self.name("tickets")

    @property
    def surveys(self) -> str:
        return self.name("surveys")

    @property
    def accounts(self) -> str:
        return self.name("accounts")

    @property
    def people(self) -> str:
        return self.name("people")

    @property
    def memberships(self) -> str:
        return self.name("memberships")

    @property
    def health(self) -> str:
        return self.name("health")

    @property
    def ingest_dlq(self) -> str:
        return self.name("ingest_dlq")

    @property
    def scoring_dlq(self) -> str:
        return self.name("scoring_dlq")

    @property
    def alerts_dlq(self) -> str:
        return self.name("alerts_dlq")

    def all(self) -> dict[str, TopicSpec]:
        """Every topic name with its spec."""
        return {self.prefix + spec.suffix: spec for spec in TOPIC_SPECS.values()}


# ---------------------------------------------------------------------------------------------
# Encode / decode

_encoder = msgspec.json.Encoder()
_event_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)
_account_decoder = msgspec.json.Decoder(AccountRecord)
_person_decoder = msgspec.json.Decoder(PersonRecord)
_membership_decoder = msgspec.json.Decoder(MembershipRecord)
_health_decoder = msgspec.json.Decoder(HealthChange)

T = TypeVar("T")


def encode(message: msgspec.Struct) -> bytes:
    return _encoder.encode(message)


_NUL = b"\\u0000"  # how JSON writes the NUL character (a raw NUL is invalid JSON)


def _decode(decoder: msgspec.json.Decoder[T], raw: bytes) -> T:
    try:
        value = decoder.decode(raw)
    except RecursionError:
        # msgspec recurses into nested values (even to skip an unknown field): JSON nested
        # deeper than the interpreter's recursion limit is refused like any other bad input.
        raise msgspec.DecodeError("JSON is malformed: nested too deeply") from None
    # PostgreSQL text cannot hold NUL: a record carrying one would fail its consumer's
    # transaction again and again and stop the partition. Checked on the decoded fields only,
    # and only when the bytes hold an escaped NUL at all.
    if _NUL in raw and _NUL in _encoder.encode(value):
        raise msgspec.ValidationError("a string contains the NUL character (\\u0000)")
    return value


def decode_event(raw: bytes) -> Event:
    """Decode a usage, ticket or survey event; raises ``msgspec.DecodeError`` (incl. validation)."""
    return _decode(_event_decoder, raw)


def decode_account(raw: bytes) -> AccountRecord:
    return _decode(_account_decoder, raw)


def decode_person(raw: bytes) -> PersonRecord:
    return _decode(_person_decoder, raw)


def decode_membership(raw: bytes) -> MembershipRecord:
    return _decode(_membership_decoder, raw)


def decode_health_change(raw: bytes) -> HealthChange:
    return _decode(_health_decoder, raw)


# ---------------------------------------------------------------------------------------------
# JSON Schema export

SCHEMA_TYPES: dict[str, Any] = {
    "usage": UsageEvent,
    "ticket": TicketEvent,
    "survey": SurveyEvent,
    "account": AccountRecord,
    "person": PersonRecord,
    "membership": MembershipRecord,
    "health_change": HealthChange,
}


def json_schema() -> dict[str, Any]:
    """One JSON Schema document with a definition per message kind."""
    names = list(SCHEMA_TYPES)
    refs, components = msgspec.json.schema_components(
        [SCHEMA_TYPES[name] for name in names], ref_template="#/$defs/{name}"
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://churnwatch.dev/schemas/events.v1.json",
        "title": f"churnwatch event contract v{SCHEMA_VERSION}",
        "oneOf": list(refs),
        "x-kinds": {name: ref["$ref"] for name, ref in zip(names, refs, strict=True)},
        "$defs": components,
    }


def main(argv: list[str]) -> int:
    if argv[1:] != ["schema"]:
        print("usage: python -m shared.events schema", file=sys.stderr)
        return 2
    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
