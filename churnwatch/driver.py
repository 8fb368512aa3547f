"""Drives a simulated portfolio through the real HTTP ingest, in the shared (scaled) time.

Two parts:

- **Translation** (pure): a simulated event becomes the HTTP call its channel would make —
  ``native`` events are batched into ``POST /v1/events``; ``segment`` events become Segment
  HTTP Tracking API calls in ``POST /v1/batch`` (the write key as the HTTP Basic user, as every
  Segment SDK sends it); ``zendesk`` ticket changes become one event-subscribed webhook
  delivery each, signed as Zendesk signs them. Records (accounts, people) go to
  ``POST /v1/accounts`` / ``POST /v1/people``.
- **Pacing** (:class:`Driver`): day by day, the records of the day are sent once the clock
  reaches the day, then every event once the clock reaches its ``occurred_at`` — so ingest and
  scoring see each event a moment after it happened, however fast the clock runs.

How Segment calls are rendered. Ingest turns a named ``track`` (or ``page``) call into a feature
use named after it (docs/ingest.md), and the health model counts distinct features. So only a
feature use is sent as a ``track`` named after the feature (``track("dashboards")``); a login
is ``track("Login")`` (one of ingest's login event names); a session or an integration's API
call is an unnamed ``page`` call — activity that names no feature. What scoring ends up seeing
is then the simulator's own event: same account, user, time and feature.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from churnwatch.client import Client
from churnwatch.simulator import (
    SegmentTrack,
    SimulatedDay,
    SimulatedEvent,
    Simulation,
    ZendeskTicketChange,
)
from services.ingest.zendesk import signature
from shared.clock import Clock
from shared.events import AccountRecord, Event, PersonRecord

NATIVE_BATCH = 1000  # events per POST /v1/events (~250 bytes each: well under 512 KiB)
SEGMENT_BATCH = 500  # calls per POST /v1/batch (Segment's own SDKs send ≤ 500 KB)
RECORD_BATCH = 500
ZENDESK_ACCOUNT = 10_001  # the (simulated) Zendesk account number in every delivery
LIBRARY = {"name": "churnwatch-demo", "version": "1"}

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class HttpCall:
    """One request to ingest: what to send, and what it carries."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    channel: str  # native, segment, zendesk, accounts, people
    items: int  # how many events or records the body carries


# ---------------------------------------------------------------------------------------------
# Translation (pure)


def rfc3339(moment: datetime) -> str:
    """``2026-07-01T00:05:09Z`` (milliseconds when there are any)."""
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace(".000+00:00", "Z").replace("+00:00", "Z")


def native_body(events: Iterable[Event]) -> bytes:
    """A ``POST /v1/events`` body: the v1 events without ``received_at`` and ``source``, which
    ingest sets itself (and refuses when sent)."""
    items = []
    for event in events:
        item = msgspec.to_builtins(event)
        del item["received_at"], item["source"]
        items.append(item)
    return _encoder.encode(items)


def native_call(events: Sequence[Event], api_key: str) -> HttpCall:
    return HttpCall(
        "POST",
        "/v1/events",
        (("Authorization", f"Bearer {api_key}"), ("Content-Type", "application/json")),
        native_body(events),
        "native",
        len(events),
    )


def segment_message(track: SegmentTrack) -> dict[str, Any]:
    """One Segment call as an SDK sends it (see the module docstring for the mapping)."""
    message: dict[str, Any] = {
        "messageId": track.message_id,
        "userId": track.user_id,
        "anonymousId": None,
        "timestamp": rfc3339(track.timestamp),
        "context": {"groupId": track.group_id, "library": LIBRARY},
        "properties": dict(track.properties),
    }
    feature = track.properties.get("feature")
    if track.event == "Feature Used" and isinstance(feature, str):
        message |= {"type": "track", "event": feature}
    elif track.event == "Login":
        message |= {"type": "track", "event": "Login"}
    else:  # a session, an API call: activity that is no feature use
        message |= {"type": "page"}
    return message


def segment_call(tracks: Sequence[SegmentTrack], write_key: str, sent_at: datetime) -> HttpCall:
    """``POST /v1/batch`` with the write key as HTTP Basic user and ``sentAt`` = now."""
    body = {"batch": [segment_message(t) for t in tracks], "sentAt": rfc3339(sent_at)}
    basic = base64.b64encode(f"{write_key}:".encode()).decode()
    return HttpCall(
        "POST",
        "/v1/batch",
        (("Authorization", f"Basic {basic}"), ("Content-Type", "application/json")),
        _encoder.encode(body),
        "segment",
        len(tracks),
    )


_ZENDESK_TYPES = {
    "created": "zen:event-type:ticket.created",
    "status_changed": "zen:event-type:ticket.status_changed",
    "priority_changed": "zen:event-type:ticket.priority_changed",
}


def zendesk_body(change: ZendeskTicketChange) -> bytes:
    """The delivery of an event-subscribed Zendesk webhook for one ticket change."""
    if change.kind == "status_changed":
        event: dict[str, Any] = {
            "previous": (change.previous or "").upper(),
            "current": change.status.upper(),
        }
    elif change.kind == "priority_changed":
        event = {"previous": (change.previous or "").upper(), "current": change.priority.upper()}
    else:
        event = {}
    body = {
        "type": _ZENDESK_TYPES[change.kind],
        "account_id": ZENDESK_ACCOUNT,
        "id": change.event_id,
        "time": rfc3339(change.occurred_at),
        "zendesk_event_version": "2022-11-06",
        "subject": f"zen:ticket:{change.ticket_id}",
        "detail": {
            "id": str(change.ticket_id),
            "organization_id": str(change.organization_id),
            "requester_id": change.requester,
            "subject": change.subject,
            "status": change.status.upper(),
            "priority": change.priority.upper(),
            "created_at": rfc3339(change.created_at),
            "updated_at": rfc3339(change.occurred_at),
            "type": "INCIDENT",
        },
        "event": event,
    }
    return _encoder.encode(body)


def zendesk_call(
    change: ZendeskTicketChange, api_key: str, secret: str, signed_at: datetime
) -> HttpCall:
    """One signed delivery: ``base64(HMAC-SHA256(secret, timestamp + body))``."""
    body = zendesk_body(change)
    timestamp = rfc3339(signed_at)
    return HttpCall(
        "POST",
        "/v1/webhooks/zendesk",
        (
            ("Authorization", f"Bearer {api_key}"),
            ("Content-Type", "application/json"),
            ("X-Zendesk-Webhook-Signature", signature(secret.encode(), timestamp, body)),
            ("X-Zendesk-Webhook-Signature-Timestamp", timestamp),
        ),
        body,
        "zendesk",
        1,
    )


def record_body(records: Iterable[AccountRecord | PersonRecord]) -> bytes:
    """Records without ``source`` (ingest names the API key as their source)."""
    items = []
    for record in records:
        item = msgspec.to_builtins(record)
        item.pop("source", None)
        items.append(item)
    return _encoder.encode(items)


def record_calls(
    records: Sequence[AccountRecord] | Sequence[PersonRecord], api_key: str
) -> list[HttpCall]:
    if not records:
        return []
    kind = "accounts" if isinstance(records[0], AccountRecord) else "people"
    headers = (("Authorization", f"Bearer {api_key}"), ("Content-Type", "application/json"))
    return [
        HttpCall(
            "POST",
            f"/v1/{kind}",
            headers,
            record_body(records[i : i + RECORD_BATCH]),
            kind,
            len(records[i : i + RECORD_BATCH]),
        )
        for i in range(0, len(records), RECORD_BATCH)
    ]


@dataclass(frozen=True)
class Credentials:
    """What the driver signs and authenticates with."""

    api_key: str  # events, accounts and webhooks scopes; also the Segment write key
    zendesk_secret: str


def calls_for(
    events: Sequence[SimulatedEvent], credentials: Credentials, now: datetime
) -> list[HttpCall]:
    """The calls that carry ``events`` (in time order), each through its channel."""
    native = [e.event for e in events if e.channel == "native"]
    tracks = [e.segment for e in events if e.channel == "segment" and e.segment is not None]
    changes = [e.zendesk for e in events if e.channel == "zendesk" and e.zendesk is not None]
    calls = [
        native_call(native[i : i + NATIVE_BATCH], credentials.api_key)
        for i in range(0, len(native), NATIVE_BATCH)
    ]
    calls += [
        segment_call(tracks[i : i + SEGMENT_BATCH], credentials.api_key, now)
        for i in range(0, len(tracks), SEGMENT_BATCH)
    ]
    calls += [
        zendesk_call(change, credentials.api_key, credentials.zendesk_secret, now)
        for change in changes
    ]
    return calls


# ---------------------------------------------------------------------------------------------
# Counting answers


@dataclass
class Counts:
    """What ingest answered, per channel and in all."""

    sent: Counter[str] = field(default_factory=Counter)
    accepted: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)  # by code
    examples: dict[str, str] = field(default_factory=dict)  # code -> one message
    requests: int = 0
    failed_requests: int = 0

    @property
    def total_sent(self) -> int:
        return sum(v for k, v in self.sent.items() if k not in ("accounts", "people"))

    @property
    def total_accepted(self) -> int:
        return sum(v for k, v in self.accepted.items() if k not in ("accounts", "people"))

    @property
    def total_rejected(self) -> int:
        return sum(self.rejected.values())

    def record(self, call: HttpCall, status: int, answer: Any) -> None:
        """Count one answer: a 2xx with ``accepted`` / ``ignored`` / ``rejected``, or an error."""
        self.requests += 1
        self.sent[call.channel] += call.items
        body = answer if isinstance(answer, dict) else {}
        if 200 <= status < 300:
            self.accepted[call.channel] += int(body.get("accepted", 0))
            self.ignored[call.channel] += int(body.get("ignored", 0))
            for item in body.get("rejected", []):
                self._reject(str(item.get("code", "unknown")), str(item.get("message", "")))
            return
        self.failed_requests += 1
        code = str(body.get("code", f"http_{status}"))
        message = str(body.get("message", ""))
        for _ in range(call.items):
            self._reject(code or f"http_{status}", message)

    def _reject(self, code: str, message: str) -> None:
        self.rejected[code] += 1
        self.examples.setdefault(code, message)


# ---------------------------------------------------------------------------------------------
# Pacing


@dataclass(frozen=True)
class Progress:
    """A snapshot for the progress display."""

    day: int
    days: int
    now: datetime
    lag_seconds: float  # clock time between the oldest event due and now
    counts: Counts


class Driver:
    """Sends a simulation through ingest as the clock passes each record's and event's time."""

    def __init__(
        self,
        simulation: Simulation,
        client: Client,
        clock: Clock,
        credentials: Credentials,
        *,
        tick_seconds: float = 0.25,
        concurrency: int = 6,
        on_progress: Callable[[Progress], None] | None = None,
        progress_every_seconds: float = 1.0,
    ) -> None:
        self.simulation = simulation
        self.client = client
        self.clock = clock
        self.credentials = credentials
        self.counts = Counts()
        self._tick = tick_seconds
        self._slots = asyncio.Semaphore(concurrency)
        self._on_progress = on_progress
        self._progress_every = progress_every_seconds
        self._last_progress = 0.0
        self._day = 0
        self.max_lag_seconds = 0.0
        self.accounts: dict[str, AccountRecord] = {}  # the latest record sent of each account

    async def run(self, days: Iterable[SimulatedDay] | None = None) -> Counts:
        """Drive every day: its people and accounts at midnight (when they take effect; day 0
        carries them all), then its events, each at its time."""
        for day in days if days is not None else self.simulation:
            self._day = day.index
            midnight = datetime.combine(day.date, datetime.min.time(), UTC)
            await self._wait_for(midnight)
            await self._send_all(record_calls(day.people, self.credentials.api_key))
            await self._send_all(record_calls(day.accounts, self.credentials.api_key))
            self.accounts.update((record.account_id, record) for record in day.accounts)
            await self._drive_events(day.events)
        self._report(force=True)
        return self.counts

    async def _drive_events(self, events: Sequence[SimulatedEvent]) -> None:
        position = 0
        while position < len(events):
            now = self.clock.now()
            due = position
            while due < len(events) and events[due].event.occurred_at <= now:
                due += 1
            if due == position:
                self._report()
                await self._wait_for(events[position].event.occurred_at, cap=self._tick)
                continue
            lag = (now - events[position].event.occurred_at).total_seconds()
            self.max_lag_seconds = max(self.max_lag_seconds, lag)
            started = time.monotonic()
            await self._send_all(calls_for(events[position:due], self.credentials, now))
            position = due
            self._report(lag)
            # Gather a tick's worth of events into the next calls rather than a call per event.
            rest = self._tick - (time.monotonic() - started)
            if rest > 0 and position < len(events):
                await asyncio.sleep(rest)

    async def _wait_for(self, moment: datetime, *, cap: float | None = None) -> None:
        while True:
            ahead = (moment - self.clock.now()).total_seconds()
            if ahead <= 0:
                return
            wait = self.clock.real_seconds_for(ahead)
            if cap is not None:
                await asyncio.sleep(min(wait, cap))
                return
            await asyncio.sleep(min(wait, 1.0))
            self._report()

    async def _send_all(self, calls: Sequence[HttpCall]) -> None:
        await asyncio.gather(*(self._send(call) for call in calls))

    async def _send(self, call: HttpCall) -> None:
        async with self._slots:
            response = await self.client.request(
                "ingest",
                call.method,
                call.path,
                content=call.body,
                headers=dict(call.headers),
                auth=False,
            )
        try:
            answer: Any = response.json()
        except ValueError:
            answer = {"code": f"http_{response.status_code}", "message": response.text[:200]}
        self.counts.record(call, response.status_code, answer)

    def _report(self, lag: float = 0.0, *, force: bool = False) -> None:
        if self._on_progress is None:
            return
        moment = time.monotonic()
        if not force and moment - self._last_progress < self._progress_every:
            return
        self._last_progress = moment
        self._on_progress(
            Progress(self._day, self.simulation.days, self.clock.now(), lag, self.counts)
        )
