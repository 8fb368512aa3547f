"""Zendesk webhooks: the signature scheme, freshness, and ticket events from Zendesk events."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import pytest

from services.ingest import zendesk
from services.ingest.decisions import Decision, RequestRefused
from services.ingest.settings import IngestSettings
from shared import events
from shared.events import Topics
from tests.unit.ingest.fakes import NOW

SECRET = b"dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
ORGS = {"3601": "acme-corp"}


def delivery(kind: str = "ticket.status_changed", **change: Any) -> dict[str, Any]:
    return {
        "type": f"zen:event-type:{kind}",
        "account_id": 10973248,
        "id": "2b24ef10-19d4-4740-93cf-8f98ec4776c0",
        "time": "2026-11-20T11:59:00Z",
        "zendesk_event_version": "2022-11-06",
        "subject": "zen:ticket:88231",
        "detail": {
            "id": "88231",
            "organization_id": "3601",
            "priority": "HIGH",
            "status": "OPEN",
            "tags": ["vip"],
        },
        "event": change,
    }


def decide(payload: dict[str, Any], organizations: dict[str, str] = ORGS) -> Decision:
    return zendesk.decide(
        json.dumps(payload).encode(),
        now=NOW,
        topics=Topics("t."),
        organizations=organizations,
    )


def ticket(decision: Decision) -> events.TicketEvent:
    [message] = decision.messages
    event = events.decode_event(message.value)
    assert isinstance(event, events.TicketEvent)
    return event


# -- the signature ---------------------------------------------------------------------------


def test_the_signature_is_base64_hmac_sha256_of_timestamp_then_body() -> None:
    timestamp, body = "2026-11-20T11:59:30Z", b'{"say": "hello"}'
    expected = base64.b64encode(
        hmac.new(SECRET, timestamp.encode() + body, hashlib.sha256).digest()
    ).decode()
    assert zendesk.signature(SECRET, timestamp, body) == expected


def verify(
    body: bytes, signature: str | None, timestamp: str | None, max_age_s: float = 300
) -> None:
    zendesk.verify(
        secrets=[SECRET],
        signature_header=signature,
        timestamp_header=timestamp,
        body=body,
        now=NOW,
        max_age=timedelta(seconds=max_age_s),
    )


def test_a_signed_fresh_delivery_passes() -> None:
    timestamp = (NOW - timedelta(seconds=30)).isoformat()
    verify(b"{}", zendesk.signature(SECRET, timestamp, b"{}"), timestamp)


def test_a_delivery_signed_exactly_five_minutes_ago_passes_and_a_second_older_is_stale() -> None:
    edge = (NOW - timedelta(minutes=5)).isoformat()
    verify(b"{}", zendesk.signature(SECRET, edge, b"{}"), edge)
    stale = (NOW - timedelta(minutes=5, seconds=1)).isoformat()
    with pytest.raises(RequestRefused) as refused:
        verify(b"{}", zendesk.signature(SECRET, stale, b"{}"), stale)
    assert (refused.value.status, refused.value.code) == (401, "stale_signature")


def test_a_timestamp_far_in_the_future_is_refused_too() -> None:
    ahead = (NOW + timedelta(minutes=6)).isoformat()
    with pytest.raises(RequestRefused) as refused:
        verify(b"{}", zendesk.signature(SECRET, ahead, b"{}"), ahead)
    assert refused.value.code == "stale_signature"


@pytest.mark.parametrize(
    ("body", "sign_body", "secret"),
    [
        (b'{"a": 2}', b'{"a": 1}', SECRET),  # the body was changed after signing
        (b'{"a": 1}', b'{"a": 1}', b"another secret"),  # signed by someone else
    ],
)
def test_a_tampered_or_foreign_delivery_is_refused(
    body: bytes, sign_body: bytes, secret: bytes
) -> None:
    timestamp = NOW.isoformat()
    with pytest.raises(RequestRefused) as refused:
        verify(body, zendesk.signature(secret, timestamp, sign_body), timestamp)
    assert (refused.value.status, refused.value.code) == (401, "invalid_signature")


def test_while_rotating_a_signature_made_with_a_previous_secret_is_accepted() -> None:
    timestamp, old, new = NOW.isoformat(), b"old secret", b"new secret"
    for used in (old, new):
        zendesk.verify(
            secrets=[new, old],
            signature_header=zendesk.signature(used, timestamp, b"{}"),
            timestamp_header=timestamp,
            body=b"{}",
            now=NOW,
            max_age=timedelta(seconds=300),
        )
    with pytest.raises(RequestRefused) as refused:
        zendesk.verify(
            secrets=[new],
            signature_header=zendesk.signature(old, timestamp, b"{}"),
            timestamp_header=timestamp,
            body=b"{}",
            now=NOW,
            max_age=timedelta(seconds=300),
        )
    assert refused.value.code == "invalid_signature"


def test_previous_secrets_come_from_a_comma_separated_setting() -> None:
    configured = IngestSettings(
        zendesk_signing_secret="current", zendesk_previous_signing_secrets="older, oldest,"
    )
    assert configured.zendesk_secrets() == (b"current", b"older", b"oldest")
    # Without a current secret the webhook is off, whatever the previous ones say.
    assert IngestSettings(zendesk_previous_signing_secrets="x").zendesk_secrets() == ()


def test_a_signature_for_another_timestamp_is_refused() -> None:
    signed = zendesk.signature(SECRET, NOW.isoformat(), b"{}")
    with pytest.raises(RequestRefused) as refused:
        verify(b"{}", signed, (NOW - timedelta(seconds=1)).isoformat())
    assert refused.value.code == "invalid_signature"


@pytest.mark.parametrize(("signature", "timestamp"), [(None, "x"), ("x", None), ("", "")])
def test_a_delivery_without_its_signature_headers_is_refused(
    signature: str | None, timestamp: str | None
) -> None:
    with pytest.raises(RequestRefused) as refused:
        verify(b"{}", signature, timestamp)
    assert (refused.value.status, refused.value.code) == (401, "missing_signature")


# -- the mapping -------------------------------------------------------------------------------


def status(previous: str, current: str) -> tuple[str, dict[str, str]]:
    return "ticket.status_changed", {"previous": previous, "current": current}


def priority(previous: str, current: str) -> tuple[str, dict[str, str]]:
    return "ticket.priority_changed", {"previous": previous, "current": current}


@pytest.mark.parametrize(
    ("zendesk_event", "expected"),
    [
        (("ticket.created", {}), ("opened", "open", "high")),
        (status("OPEN", "SOLVED"), ("solved", "solved", "high")),
        (status("NEW", "CLOSED"), ("solved", "closed", "high")),
        (status("SOLVED", "OPEN"), ("reopened", "open", "high")),
        (status("OPEN", "PENDING"), ("updated", "pending", "high")),
        (priority("NORMAL", "URGENT"), ("escalated", "open", "urgent")),
        (priority("HIGH", "LOW"), ("updated", "open", "low")),
        (priority("LOW", "NORMAL"), ("updated", "open", "normal")),
    ],
)
def test_ticket_changes_become_ticket_events(
    zendesk_event: tuple[str, dict[str, str]], expected: tuple[str, str, str]
) -> None:
    kind, change = zendesk_event
    event = ticket(decide(delivery(kind, **change)))
    assert (event.action, event.status, event.priority) == expected
    assert (event.ticket_id, event.account_id, event.source) == ("88231", "acme-corp", "zendesk")
    assert event.occurred_at == NOW - timedelta(minutes=1)
    assert event.received_at == NOW


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        ("ticket.comment_added", {}),
        ("ticket.status_changed", {"previous": "SOLVED", "current": "CLOSED"}),
        ("ticket.status_changed", {"previous": "OPEN", "current": "DELETED"}),
        ("user.created", {}),
    ],
)
def test_events_that_mean_nothing_to_scoring_are_ignored(kind: str, change: dict[str, str]) -> None:
    decision = decide(delivery(kind, **change))
    assert (decision.accepted, decision.ignored, decision.messages) == (0, 1, [])


def test_a_redelivery_carries_the_same_event_id() -> None:
    first = ticket(decide(delivery(previous="OPEN", current="SOLVED")))
    again = ticket(decide(delivery(previous="OPEN", current="SOLVED")))
    assert first.event_id == again.event_id == "zendesk:2b24ef10-19d4-4740-93cf-8f98ec4776c0"


def test_an_unmapped_organization_is_refused_with_its_raw_delivery() -> None:
    payload = delivery(previous="OPEN", current="SOLVED")
    payload["detail"]["organization_id"] = "9999"
    decision = decide(payload)
    assert decision.messages == []
    [refused] = decision.refused
    assert refused.code == "unmapped_organization"
    assert "'9999'" in refused.message
    assert json.loads(refused.raw) == payload


def test_a_ticket_without_organization_is_unmapped_too() -> None:
    payload = delivery("ticket.created")
    payload["detail"]["organization_id"] = None
    assert decide(payload).refused[0].code == "unmapped_organization"


def test_a_body_that_is_not_a_zendesk_event_is_422() -> None:
    with pytest.raises(RequestRefused) as refused:
        zendesk.decide(b'{"hello": "world"}', now=NOW, topics=Topics(), organizations={})
    assert (refused.value.status, refused.value.code) == (422, "invalid_webhook")


def test_a_delivery_without_a_ticket_id_is_422() -> None:
    payload = delivery("ticket.created")
    payload["detail"]["id"] = ""
    with pytest.raises(RequestRefused) as refused:
        decide(payload)
    assert (refused.value.status, refused.value.code) == (422, "invalid_webhook")


def test_a_long_delivery_is_one_event_whatever_its_size() -> None:
    payload = delivery("ticket.created")
    payload["detail"]["description"] = "x" * 100_000
    assert decide(payload).accepted == 1
