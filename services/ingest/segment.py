"""The Segment HTTP Tracking API, translated to churnwatch events. Pure: ``now`` is passed in.

What each call becomes (source ``segment``):

- ``track`` → a usage event: ``type`` ``feature_used`` with the event name as ``feature``
  (or ``login`` for the configured login event names);
- ``page`` / ``screen`` → a usage event of type ``page_view`` / ``screen_view``, the page or
  screen name as ``feature``;
- ``group`` → a membership record (this user belongs to this account) on the compacted
  memberships topic, and — only when enabled — an account record from the group's traits;
- ``identify`` and ``alias`` → nothing: end users' traits are not part of churnwatch's model.
  They are answered 200 and counted as ``ignored``.

The account of a track / page / screen call is, in order: ``context.groupId``; the configured
property (``properties.account_id`` by default); a ``group`` call for the same user earlier in
the same batch; the user's membership as ingest last read it from the memberships topic. With
none of them the item is refused (``account_unresolved``) and dead-lettered: replay it after
the group call.

``messageId`` becomes ``event_id``. The event time is corrected for the client's clock the way
Segment does it: ``timestamp = receivedAt − (sentAt − originalTimestamp)`` when the message
(or its batch) carries ``sentAt`` and the message a client time (``originalTimestamp``, else
``timestamp``); with only a client time that time is used; with neither, ``receivedAt``.

Segment payloads are read tolerantly: fields ingest does not use are ignored, as SDKs add
their own (``context``, ``integrations``, ``_metadata``…); the fields it reads are type-checked.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

import msgspec

from services.ingest.decisions import (
    Decision,
    ItemRefused,
    Limits,
    Message,
    Refused,
    RequestRefused,
    check_count,
    derived_id,
    too_large,
    utf8_or_refused,
)
from shared.events import (
    AccountRecord,
    AccountTeam,
    LifecycleStage,
    MembershipRecord,
    Topics,
    UsageEvent,
    encode,
)

SEGMENT_SOURCE = "segment"

Kind = Literal["batch", "track", "page", "screen", "identify", "group", "alias"]


# ---------------------------------------------------------------------------------------------
# The payload (tolerant: only what ingest reads is declared)


class SegmentContext(msgspec.Struct):
    groupId: str | int | None = None  # Segment spells its fields in camelCase


class _SegmentMessage(msgspec.Struct, kw_only=True, tag_field="type"):
    messageId: str | None = None
    userId: str | int | None = None
    anonymousId: str | int | None = None
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    context: SegmentContext | None = None
    # Values stay undecoded: only the account property is read, and only when needed.
    properties: dict[str, msgspec.Raw] | None = None


class Track(_SegmentMessage, tag="track"):
    event: str


class Page(_SegmentMessage, tag="page"):
    name: str | None = None


class Screen(_SegmentMessage, tag="screen"):
    name: str | None = None


class Identify(_SegmentMessage, tag="identify"):
    pass


class Group(_SegmentMessage, tag="group"):
    groupId: str | int
    traits: dict[str, msgspec.Raw] | None = None


class Alias(_SegmentMessage, tag="alias"):
    previousId: str | int | None = None


SegmentMessage = Track | Page | Screen | Identify | Group | Alias

_SINGLE: dict[str, type[SegmentMessage]] = {
    "track": Track,
    "page": Page,
    "screen": Screen,
    "identify": Identify,
    "group": Group,
    "alias": Alias,
}


class SegmentBatch(msgspec.Struct, kw_only=True):
    batch: list[msgspec.Raw]
    sentAt: datetime | None = None
    writeKey: str | None = None


class _WriteKey(msgspec.Struct):
    writeKey: str | None = None


class GroupTraits(msgspec.Struct, kw_only=True):
    """Account traits read from a group call (when INGEST_SEGMENT_GROUP_UPDATES_ACCOUNTS)."""

    name: str | None = None
    plan: str | None = None
    seats: int | None = None
    arr: float | None = None
    renewal_date: date | None = None
    lifecycle_stage: LifecycleStage | None = None
    csm: str | None = None
    account_executive: str | None = None
    renewal_owner: str | None = None


_write_key = msgspec.json.Decoder(_WriteKey)
_batch = msgspec.json.Decoder(SegmentBatch)
_any_message: msgspec.json.Decoder[SegmentMessage] = msgspec.json.Decoder(SegmentMessage)
_group_traits = msgspec.json.Decoder(GroupTraits)
_scalar_id: msgspec.json.Decoder[str | int | None] = msgspec.json.Decoder(str | int | None)


def write_key_in_body(body: bytes) -> str | None:
    """The ``writeKey`` field of a body, if it has one (SDKs that do not use Basic auth)."""
    try:
        return _write_key.decode(body).writeKey
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None


def event_time(
    original: datetime | None, sent_at: datetime | None, received_at: datetime
) -> datetime:
    """Segment's clock-skew correction: ``receivedAt − (sentAt − originalTimestamp)``."""
    if original is None:
        return received_at
    if sent_at is None:
        return original
    return received_at - (sent_at - original)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


@dataclass(frozen=True)
class SegmentRules:
    account_property: str = "account_id"
    login_events: Collection[str] = ("Signed In", "Logged In", "Login", "User Logged In")
    group_updates_accounts: bool = False


MembershipLookup = Callable[[str], str | None]


class SegmentTranslator:
    """Turns Segment bodies into a :class:`Decision` under the configured rules."""

    def __init__(self, rules: SegmentRules) -> None:
        self._rules = rules
        self._login_events = frozenset(rules.login_events)
        self._single: dict[str, msgspec.json.Decoder[SegmentMessage]] = {
            kind: msgspec.json.Decoder(cls) for kind, cls in _SINGLE.items()
        }

    @utf8_or_refused
    def decide(
        self,
        body: bytes,
        kind: Kind,
        *,
        now: datetime,
        limits: Limits,
        topics: Topics,
        memberships: MembershipLookup,
    ) -> Decision:
        """A ``/v1/batch`` body (``kind="batch"``) or one call's body (``/v1/track``…)."""
        decision = Decision()
        if kind == "batch":
            try:
                envelope = _batch.decode(body)
            except msgspec.ValidationError as exc:
                raise RequestRefused(422, "invalid_body", f"not a Segment batch: {exc}") from None
            except (msgspec.DecodeError, RecursionError) as exc:
                raise RequestRefused(
                    400, "invalid_json", f"the body is not valid JSON: {exc}"
                ) from None
            check_count(len(envelope.batch), limits)
            raws: list[msgspec.Raw | bytes] = list(envelope.batch)
            batch_sent_at = _utc(envelope.sentAt)
        else:
            try:
                msgspec.json.decode(body)
            except (msgspec.DecodeError, RecursionError) as exc:
                raise RequestRefused(
                    400, "invalid_json", f"the body is not valid JSON: {exc}"
                ) from None
            raws = [body]
            batch_sent_at = None

        learned: dict[str, str] = {}

        def account_of(user_id: str) -> str | None:
            return learned.get(user_id) or memberships(user_id)

        for index, raw in enumerate(raws):
            problem = too_large(raw, limits)
            if problem is not None:
                decision.refused.append(Refused(index, "event_too_large", problem, bytes(raw)))
                continue
            try:
                message = (
                    _any_message.decode(raw) if kind == "batch" else self._single[kind].decode(raw)
                )
                produced = self._translate(
                    message, raw, now=now, limits=limits, topics=topics,
                    batch_sent_at=batch_sent_at, account_of=account_of, learned=learned,
                )  # fmt: skip
            except msgspec.ValidationError as exc:
                decision.refused.append(Refused(index, "invalid_message", str(exc), bytes(raw)))
                continue
            except ItemRefused as exc:
                decision.refused.append(Refused(index, exc.code, str(exc), bytes(raw)))
                continue
            if produced:
                decision.messages.extend(produced)
                decision.accepted += 1
            else:
                decision.ignored += 1
        decision.learned.update(learned)
        return decision

    def _translate(
        self,
        message: SegmentMessage,
        raw: msgspec.Raw | bytes,
        *,
        now: datetime,
        limits: Limits,
        topics: Topics,
        batch_sent_at: datetime | None,
        account_of: MembershipLookup,
        learned: dict[str, str],
    ) -> list[Message]:
        if isinstance(message, Identify | Alias):
            return []
        user_id = _user(message)
        original = _utc(message.originalTimestamp or message.timestamp)
        try:
            occurred_at = event_time(original, _utc(message.sentAt) or batch_sent_at, now)
        except OverflowError:
            raise ItemRefused(
                "invalid_message", "timestamp and sentAt are too far apart to correct"
            ) from None
        if occurred_at > now + limits.max_future:
            hours = (occurred_at - now).total_seconds() / 3600
            raise ItemRefused(
                "occurred_in_future",
                f"the event time is {hours:.1f} h after the time it was received",
            )
        event_id = message.messageId or derived_id(raw)
        if len(event_id) > 128:
            raise ItemRefused("invalid_message", "messageId is longer than 128 characters")

        if isinstance(message, Group):
            account_id = _account_id(message.groupId, "groupId")
            learned[user_id] = account_id
            membership = MembershipRecord(
                user_id=user_id, account_id=account_id, updated_at=occurred_at, source="segment"
            )
            produced = [Message(topics.memberships, user_id.encode(), encode(membership))]
            account = self._account_from_traits(message, account_id, occurred_at)
            if account is not None:
                produced.append(Message(topics.accounts, account_id.encode(), encode(account)))
            return produced

        account_id = self._resolve_account(message, user_id, account_of)
        if isinstance(message, Track):
            if message.event in self._login_events:
                usage_type, feature = "login", None
            else:
                usage_type, feature = "feature_used", message.event[:256] or None
        elif isinstance(message, Page):
            usage_type, feature = "page_view", (message.name or "")[:256] or None
        else:
            usage_type, feature = "screen_view", (message.name or "")[:256] or None
        event = UsageEvent(
            event_id=event_id,
            account_id=account_id,
            occurred_at=occurred_at,
            received_at=now,
            source=SEGMENT_SOURCE,
            user_id=user_id,
            type=usage_type,
            feature=feature,
        )
        return [Message(topics.usage, account_id.encode(), encode(event))]

    def _resolve_account(
        self, message: Track | Page | Screen, user_id: str, account_of: MembershipLookup
    ) -> str:
        if message.context is not None and message.context.groupId not in (None, ""):
            return _account_id(message.context.groupId, "context.groupId")
        raw = (message.properties or {}).get(self._rules.account_property)
        if raw is not None:
            where = f"properties.{self._rules.account_property}"
            try:
                value = _scalar_id.decode(raw)
            except msgspec.ValidationError as exc:
                raise ItemRefused("invalid_message", f"{where}: {exc}") from None
            if value not in (None, ""):
                return _account_id(value, where)
        account_id = account_of(user_id)
        if account_id is None:
            raise ItemRefused(
                "account_unresolved",
                f"no account for user {user_id!r}: send context.groupId or "
                f"properties.{self._rules.account_property}, or a group call for the user first",
            )
        return account_id

    def _account_from_traits(
        self, message: Group, account_id: str, occurred_at: datetime
    ) -> AccountRecord | None:
        if not self._rules.group_updates_accounts or message.traits is None:
            return None
        traits = _group_traits.decode(msgspec.json.encode(message.traits))
        if not traits.name:
            return None
        try:
            return msgspec.convert(  # validates against the contract's constraints
                {
                    "account_id": account_id,
                    "name": traits.name,
                    "tier": traits.plan,
                    "seats": traits.seats,
                    "arr": traits.arr,
                    "renewal_date": traits.renewal_date,
                    "lifecycle_stage": traits.lifecycle_stage,
                    "team": AccountTeam(
                        csm=traits.csm,
                        account_executive=traits.account_executive,
                        renewal_owner=traits.renewal_owner,
                    ),
                    "updated_at": occurred_at,
                    "source": SEGMENT_SOURCE,
                },
                AccountRecord,
            )
        except msgspec.ValidationError as exc:
            raise ItemRefused("invalid_message", f"group traits: {exc}") from None


def _user(message: _SegmentMessage) -> str:
    for value in (message.userId, message.anonymousId):
        if value not in (None, ""):
            user_id = str(value)
            if len(user_id) > 256:
                raise ItemRefused("invalid_message", "userId is longer than 256 characters")
            return user_id
    raise ItemRefused("missing_user", "a message needs a userId or an anonymousId")


def _account_id(value: str | int, where: str) -> str:
    account_id = str(value)
    if not 1 <= len(account_id) <= 256:
        raise ItemRefused("invalid_message", f"{where} must be 1 to 256 characters")
    return account_id
