"""The driver's translation: each simulated event becomes the HTTP call of its channel, and
ingest's own pure code turns that call back into the event the simulator meant."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta

import msgspec
import pytest

from churnwatch import driver
from churnwatch.driver import Counts, Credentials, HttpCall
from churnwatch.simulator import SimulatedEvent, Simulation, simulate
from services.ingest import native, zendesk
from services.ingest.decisions import Limits, Message, RequestRefused
from services.ingest.segment import SegmentRules, SegmentTranslator
from shared.events import TicketEvent, Topics, UsageEvent, decode_event

TOPICS = Topics("t.")
SECRET = "zendesk-signing-secret-for-tests"
CREDENTIALS = Credentials(api_key="cw_test_key", zendesk_secret=SECRET)


@pytest.fixture(scope="module")
def simulation() -> Simulation:
    return simulate(5, accounts=40, days=30, start=date(2026, 7, 1))


@pytest.fixture(scope="module")
def events(simulation: Simulation) -> list[SimulatedEvent]:
    return [e for day in list(simulation)[:12] for e in day.events]


def header(call: HttpCall, name: str) -> str:
    return dict(call.headers)[name]


def published(decision_messages: list[Message]) -> list[UsageEvent | TicketEvent]:
    decoded = []
    for message in decision_messages:
        event = decode_event(message.value)
        assert isinstance(event, UsageEvent | TicketEvent)
        decoded.append(event)
    return decoded


def test_native_events_become_one_body_that_ingest_accepts_as_the_same_events(
    events: list[SimulatedEvent],
) -> None:
    natives = [e for e in events if e.channel == "native"][:300]
    [call] = driver.calls_for(natives, CREDENTIALS, datetime(2026, 7, 12, tzinfo=UTC))
    assert (call.method, call.path, call.items) == ("POST", "/v1/events", 300)
    assert header(call, "Authorization") == "Bearer cw_test_key"
    assert all("received_at" not in item and "source" not in item for item in json.loads(call.body))

    now = datetime(2026, 7, 12, tzinfo=UTC)
    decision = native.decide_events(call.body, now=now, limits=Limits(), topics=TOPICS)

    assert decision.refused == []
    seen = [decode_event(m.value) for m in decision.messages]
    for sent, got in zip(natives, seen, strict=True):
        expected = msgspec.structs.replace(sent.event, received_at=now, source="native")
        assert got == expected


def test_segment_calls_carry_the_write_key_and_become_the_simulated_usage(
    events: list[SimulatedEvent],
) -> None:
    segment = [e for e in events if e.channel == "segment"][:400]
    assert {e.segment.event for e in segment if e.segment} == {
        "Login",
        "Session",
        "Feature Used",
        "API Call",
    }
    now = max(e.event.occurred_at for e in segment) + timedelta(minutes=1)
    [call] = driver.calls_for(segment, CREDENTIALS, now)
    assert call.path == "/v1/batch"
    assert base64.b64decode(header(call, "Authorization").removeprefix("Basic ")) == (
        b"cw_test_key:"
    )

    decision = SegmentTranslator(SegmentRules()).decide(
        call.body, "batch", now=now, limits=Limits(), topics=TOPICS, memberships=lambda _: None
    )

    assert decision.refused == []
    got = published(decision.messages)
    assert len(got) == len(segment)
    for sent, event in zip(segment, got, strict=True):
        meant = sent.event
        assert isinstance(meant, UsageEvent)
        assert isinstance(event, UsageEvent)
        assert (event.event_id, event.account_id, event.user_id) == (
            meant.event_id,
            meant.account_id,
            meant.user_id,
        )
        # sentAt is the moment of sending, so no clock correction moves the time
        assert event.occurred_at == meant.occurred_at
        # what the health model reads: a feature use names its feature, nothing else does
        assert event.feature == meant.feature


def test_a_zendesk_delivery_is_signed_as_zendesk_signs_and_becomes_the_ticket_event(
    simulation: Simulation, events: list[SimulatedEvent]
) -> None:
    changes = [e for e in events if e.channel == "zendesk"]
    assert {e.zendesk.kind for e in changes if e.zendesk} >= {"created", "status_changed"}
    organizations = {str(org): account for org, account in simulation.zendesk_organizations.items()}
    now = datetime(2026, 7, 13, 8, 0, 0, 250_000, tzinfo=UTC)

    for item in changes:
        [call] = driver.calls_for([item], CREDENTIALS, now)
        zendesk.verify(
            secrets=[SECRET.encode()],
            signature_header=header(call, "X-Zendesk-Webhook-Signature"),
            timestamp_header=header(call, "X-Zendesk-Webhook-Signature-Timestamp"),
            body=call.body,
            now=now + timedelta(seconds=2),
            max_age=timedelta(minutes=5),
        )
        decision = zendesk.decide(call.body, now=now, topics=TOPICS, organizations=organizations)
        assert decision.refused == []
        meant = item.event
        assert isinstance(meant, TicketEvent)
        if meant.action == "escalated" and meant.priority not in ("high", "urgent"):
            # Ingest counts only a raise to high/urgent as an escalation (docs/ingest.md).
            [event] = published(decision.messages)
            assert isinstance(event, TicketEvent)
            assert event.action == "updated"
            continue
        [event] = published(decision.messages)
        assert isinstance(event, TicketEvent)
        assert (event.account_id, event.ticket_id, event.occurred_at) == (
            meant.account_id,
            meant.ticket_id,
            meant.occurred_at,
        )
        assert (event.action, event.status, event.priority) == (
            meant.action,
            meant.status,
            meant.priority,
        )
        assert event.event_id == f"zendesk:{item.zendesk.event_id}"  # type: ignore[union-attr]


def test_a_tampered_zendesk_delivery_fails_verification(events: list[SimulatedEvent]) -> None:
    item = next(e for e in events if e.channel == "zendesk")
    now = datetime(2026, 7, 13, tzinfo=UTC)
    [call] = driver.calls_for([item], CREDENTIALS, now)
    with pytest.raises(RequestRefused) as refused:
        zendesk.verify(
            secrets=[SECRET.encode()],
            signature_header=header(call, "X-Zendesk-Webhook-Signature"),
            timestamp_header=header(call, "X-Zendesk-Webhook-Signature-Timestamp"),
            body=call.body.replace(b"OPEN", b"SOLVED").replace(b"NEW", b"SOLVED"),
            now=now,
            max_age=timedelta(minutes=5),
        )
    assert refused.value.code == "invalid_signature"


def test_records_go_without_source_in_batches_that_ingest_accepts(simulation: Simulation) -> None:
    now = datetime(2026, 7, 1, tzinfo=UTC)
    [accounts] = driver.record_calls(simulation.accounts, "k")
    [people] = driver.record_calls(simulation.people, "k")
    assert (accounts.path, accounts.items) == ("/v1/accounts", len(simulation.accounts))
    assert (people.path, people.items) == ("/v1/people", len(simulation.people))

    decided = native.decide_accounts(
        accounts.body, now=now, limits=Limits(), topics=TOPICS, source="local-dev"
    )
    assert decided.refused == []
    assert decided.accepted == len(simulation.accounts)
    decided = native.decide_people(
        people.body, now=now, limits=Limits(), topics=TOPICS, source="local-dev"
    )
    assert decided.refused == []
    assert decided.accepted == len(simulation.people)


def test_counts_add_accepted_ignored_and_rejected_by_code_and_whole_refusals() -> None:
    counts = Counts()
    call = HttpCall("POST", "/v1/events", (), b"[]", "native", 3)
    counts.record(
        call,
        202,
        {"accepted": 2, "rejected": [{"index": 1, "code": "invalid_event", "message": "no"}]},
    )
    counts.record(call, 413, {"code": "body_too_large", "message": "too big"})
    hook = HttpCall("POST", "/v1/webhooks/zendesk", (), b"{}", "zendesk", 1)
    counts.record(hook, 202, {"accepted": 0, "ignored": 1, "rejected": []})

    assert counts.total_sent == 7
    assert counts.total_accepted == 2
    assert counts.ignored["zendesk"] == 1
    assert counts.rejected == {"invalid_event": 1, "body_too_large": 3}
    assert counts.examples["body_too_large"] == "too big"
    assert (counts.requests, counts.failed_requests) == (3, 1)


def test_times_are_rfc3339_in_utc_with_z() -> None:
    assert driver.rfc3339(datetime(2026, 7, 1, 0, 5, 9, tzinfo=UTC)) == "2026-07-01T00:05:09Z"
    assert (
        driver.rfc3339(datetime(2026, 7, 1, 0, 5, 9, 250_000, tzinfo=UTC))
        == "2026-07-01T00:05:09.250Z"
    )
