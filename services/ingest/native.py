"""The native API's pure core: usage / ticket / survey events, account and person records.

Input models are strict: an unknown field, a missing one or a value out of range refuses the
item with msgspec's message, which names the field (``Object contains unknown field `foo```,
``Expected `str`, got `int` - at `$.user_id```). ``received_at`` and ``source`` are set here,
never taken from the caller. The wire types are ``shared.events``'s; the input models reuse
their field types, and a unit test keeps the two in step.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

from services.ingest.decisions import (
    Decision,
    ItemRefused,
    Limits,
    Message,
    Refused,
    derived_id,
    split_items,
    too_large,
    utf8_or_refused,
)
from shared.events import (
    MAX_DAILY_ALERT_BUDGET,
    AccountId,
    AccountRecord,
    AccountTeam,
    AlertChannel,
    EventId,
    LifecycleStage,
    Name,
    NonNegative,
    PersonId,
    PersonRecord,
    QuietHours,
    Short,
    SurveyEvent,
    SurveyKind,
    TicketAction,
    TicketEvent,
    TicketPriority,
    TicketStatus,
    Timestamp,
    Topics,
    UsageEvent,
    WorkingHours,
    encode,
)

NATIVE_SOURCE = "native"

# ---------------------------------------------------------------------------------------------
# Input models


class _EventIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, tag_field="event_type"):
    account_id: AccountId
    occurred_at: Timestamp
    event_id: EventId | None = None
    schema_version: Literal[1] = 1


class UsageEventIn(_EventIn, tag="usage"):
    """Someone at the account used the product."""

    user_id: Short
    type: Short
    feature: Short | None = None
    quantity: NonNegative = 1.0

    def to_event(self, event_id: str, received_at: datetime) -> UsageEvent:
        return UsageEvent(
            event_id=event_id,
            account_id=self.account_id,
            occurred_at=self.occurred_at,
            received_at=received_at,
            source=NATIVE_SOURCE,
            user_id=self.user_id,
            type=self.type,
            feature=self.feature,
            quantity=self.quantity,
        )


class TicketEventIn(_EventIn, tag="ticket"):
    """A support ticket of the account was opened or changed."""

    ticket_id: Short
    action: TicketAction
    priority: TicketPriority
    status: TicketStatus

    def to_event(self, event_id: str, received_at: datetime) -> TicketEvent:
        return TicketEvent(
            event_id=event_id,
            account_id=self.account_id,
            occurred_at=self.occurred_at,
            received_at=received_at,
            source=NATIVE_SOURCE,
            ticket_id=self.ticket_id,
            action=self.action,
            priority=self.priority,
            status=self.status,
        )


class SurveyEventIn(_EventIn, tag="survey"):
    """An NPS (0–10) or CSAT (1–5) answer from someone at the account."""

    user_id: Short
    kind: SurveyKind
    score: Annotated[int, msgspec.Meta(ge=0, le=10)]

    def to_event(self, event_id: str, received_at: datetime) -> SurveyEvent:
        # SurveyEvent checks the CSAT range itself (ValueError).
        return SurveyEvent(
            event_id=event_id,
            account_id=self.account_id,
            occurred_at=self.occurred_at,
            received_at=received_at,
            source=NATIVE_SOURCE,
            user_id=self.user_id,
            kind=self.kind,
            score=self.score,
        )


EventIn = UsageEventIn | TicketEventIn | SurveyEventIn
_event_in: msgspec.json.Decoder[EventIn] = msgspec.json.Decoder(EventIn)
_encoder = msgspec.json.Encoder()


class AccountTeamIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    csm: PersonId | None = None
    account_executive: PersonId | None = None
    renewal_owner: PersonId | None = None


class AccountIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An account record. ``account_id`` comes from the path of a PUT (or must equal it)."""

    account_id: AccountId | None = None
    name: Name
    tier: Short | None = None
    seats: Annotated[int, msgspec.Meta(ge=0)] | None = None
    arr: NonNegative | None = None
    renewal_date: date | None = None
    lifecycle_stage: LifecycleStage | None = None
    team: AccountTeamIn | None = None
    updated_at: Timestamp | None = None
    schema_version: Literal[1] = 1


class PersonIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A person record (CSM, account executive, renewal owner, manager)."""

    person_id: PersonId | None = None
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
    updated_at: Timestamp | None = None
    schema_version: Literal[1] = 1


_account_in = msgspec.json.Decoder(AccountIn)
_person_in = msgspec.json.Decoder(PersonIn)

# ---------------------------------------------------------------------------------------------
# Decisions


@utf8_or_refused
def decide_events(body: bytes, *, now: datetime, limits: Limits, topics: Topics) -> Decision:
    """Usage, ticket and survey events from a native body (one object or an array)."""
    items = split_items(body, limits)
    decision = Decision()
    messages, refused = decision.messages, decision.refused
    topic_of = {
        UsageEventIn: topics.usage,
        TicketEventIn: topics.tickets,
        SurveyEventIn: topics.surveys,
    }
    horizon = now + limits.max_future
    max_bytes = limits.max_event_bytes
    decode, encode_event = _event_in.decode, _encoder.encode  # the hot loop: no lookups
    for index, raw in enumerate(items):
        if len(raw) > max_bytes:
            problem = too_large(raw, limits) or ""
            refused.append(Refused(index, "event_too_large", problem, bytes(raw)))
            continue
        try:
            item = decode(raw)
        except msgspec.ValidationError as exc:
            refused.append(Refused(index, "invalid_event", str(exc), bytes(raw)))
            continue
        key = item.account_id.encode()
        if item.occurred_at > horizon:
            why = _future(item.occurred_at, now)
            refused.append(Refused(index, "occurred_in_future", why, bytes(raw), key))
            continue
        try:
            event = item.to_event(item.event_id or derived_id(raw), now)
        except ValueError as exc:
            refused.append(Refused(index, "invalid_event", str(exc), bytes(raw), key))
            continue
        messages.append(Message(topic_of[type(item)], key, encode_event(event)))
    decision.accepted = len(messages)
    return decision


def _future(occurred_at: datetime, now: datetime) -> str:
    ahead = occurred_at - now
    return (
        f"occurred_at is {ahead.total_seconds() / 3600:.1f} h after the time it was received "
        f"({now.isoformat()}); events from the future are refused"
    )


@utf8_or_refused
def decide_accounts(
    body: bytes,
    *,
    now: datetime,
    limits: Limits,
    topics: Topics,
    source: str,
    path_id: str | None = None,
) -> Decision:
    """Account records: a bulk array (each names its ``account_id``) or, for a PUT of
    ``path_id``, one object."""
    decision = Decision()
    for index, raw in enumerate(_record_items(body, limits, single=path_id is not None)):
        try:
            item = _account_in.decode(raw)
            account_id = _record_id(item.account_id, path_id, "account_id")
            record = AccountRecord(
                account_id=account_id,
                name=item.name,
                tier=item.tier,
                seats=item.seats,
                arr=item.arr,
                renewal_date=item.renewal_date,
                lifecycle_stage=item.lifecycle_stage,
                team=_team(item.team),
                updated_at=item.updated_at or now,
                source=source[:64],
            )
        except ItemRefused as exc:
            decision.refused.append(Refused(index, exc.code, str(exc), bytes(raw)))
            continue
        except (msgspec.ValidationError, ValueError) as exc:
            decision.refused.append(Refused(index, "invalid_record", str(exc), bytes(raw)))
            continue
        decision.messages.append(Message(topics.accounts, account_id.encode(), encode(record)))
    decision.accepted = len(decision.messages)
    return decision


@utf8_or_refused
def decide_people(
    body: bytes,
    *,
    now: datetime,
    limits: Limits,
    topics: Topics,
    source: str,
    path_id: str | None = None,
) -> Decision:
    """Person records, keyed by person id: a bulk array or, for a PUT, one object."""
    decision = Decision()
    for index, raw in enumerate(_record_items(body, limits, single=path_id is not None)):
        try:
            item = _person_in.decode(raw)
            person_id = _record_id(item.person_id, path_id, "person_id")
            record = PersonRecord(  # checks the time zone (ValueError)
                person_id=person_id,
                name=item.name,
                email=item.email,
                slack_user_id=item.slack_user_id,
                manager_id=item.manager_id,
                time_zone=item.time_zone,
                active=item.active,
                working_hours=item.working_hours,
                quiet_hours=item.quiet_hours,
                alert_channel=item.alert_channel,
                daily_alert_budget=item.daily_alert_budget,
                updated_at=item.updated_at or now,
                source=source[:64],
            )
        except ItemRefused as exc:
            decision.refused.append(Refused(index, exc.code, str(exc), bytes(raw)))
            continue
        except (msgspec.ValidationError, ValueError) as exc:
            decision.refused.append(Refused(index, "invalid_record", str(exc), bytes(raw)))
            continue
        decision.messages.append(Message(topics.people, person_id.encode(), encode(record)))
    decision.accepted = len(decision.messages)
    return decision


def _record_items(body: bytes, limits: Limits, *, single: bool) -> list[msgspec.Raw]:
    return split_items(body, limits, what="records", single=single)


def _record_id(given: str | None, path_id: str | None, field_name: str) -> str:
    if path_id is None:
        if given is None:
            raise ItemRefused("invalid_record", f"Object missing required field `{field_name}`")
        return given
    if given is not None and given != path_id:
        raise ItemRefused(
            "id_mismatch", f"`{field_name}` in the body ({given!r}) differs from the path"
        )
    if not 1 <= len(path_id) <= 256:
        raise ItemRefused("invalid_record", f"`{field_name}` must be 1 to 256 characters")
    return path_id


def _team(team: AccountTeamIn | None) -> AccountTeam:
    if team is None:
        return AccountTeam()
    return AccountTeam(
        csm=team.csm, account_executive=team.account_executive, renewal_owner=team.renewal_owner
    )
