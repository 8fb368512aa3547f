"""Signed Zendesk deliveries against a running ingest and the real broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.ingest import zendesk
from shared import events
from shared.events import Topics
from shared.settings import KafkaSettings
from tests.integration.ingest.support import ZENDESK_SECRET, bearer, headers, read_topic


def delivery(organization: str = "3601") -> bytes:
    payload: dict[str, Any] = {
        "type": "zen:event-type:ticket.priority_changed",
        "account_id": 10973248,
        "id": "9f1c5d7e-0a42-4b6e-8f3a-2c1d0e9b8a77",
        "time": datetime.now(UTC).isoformat(),
        "zendesk_event_version": "2022-11-06",
        "subject": "zen:ticket:88231",
        "detail": {
            "id": "88231",
            "organization_id": organization,
            "priority": "URGENT",
            "status": "OPEN",
        },
        "event": {"previous": "NORMAL", "current": "URGENT"},
    }
    return json.dumps(payload).encode()


def signed(body: bytes, at: datetime | None = None) -> dict[str, str]:
    timestamp = (at or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    return {
        "content-type": "application/json",
        **bearer("webhooks"),
        "X-Zendesk-Webhook-Signature": zendesk.signature(ZENDESK_SECRET.encode(), timestamp, body),
        "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
    }


async def test_a_signed_delivery_is_a_ticket_event_and_its_redelivery_has_the_same_event_id(
    http: httpx.AsyncClient, kafka_settings: KafkaSettings, topics: Topics
) -> None:
    body = delivery()
    first = await http.post("/v1/webhooks/zendesk", content=body, headers=signed(body))
    assert first.status_code == 202
    assert first.json() == {"accepted": 1, "ignored": 0, "rejected": []}
    # Zendesk retries the same event later: same body, a new signature timestamp.
    later = datetime.now(UTC) + timedelta(seconds=30)
    again = await http.post("/v1/webhooks/zendesk", content=body, headers=signed(body, later))
    assert again.status_code == 202

    records = await read_topic(kafka_settings, topics.tickets, at_least=2)
    tickets = [events.decode_event(record.value) for record in records]
    assert all(isinstance(t, events.TicketEvent) for t in tickets)
    assert {t.event_id for t in tickets} == {"zendesk:9f1c5d7e-0a42-4b6e-8f3a-2c1d0e9b8a77"}
    ticket = tickets[0]
    assert isinstance(ticket, events.TicketEvent)
    assert (ticket.account_id, ticket.action, ticket.priority) == (
        "acme-corp",
        "escalated",
        "urgent",
    )
    assert {record.key for record in records} == {b"acme-corp"}


async def test_tampered_and_stale_deliveries_are_refused_and_publish_nothing(
    http: httpx.AsyncClient, kafka_settings: KafkaSettings, topics: Topics
) -> None:
    body = delivery()
    tampered = await http.post(
        "/v1/webhooks/zendesk",
        content=body.replace(b"URGENT", b"LOW"),
        headers=signed(body),
    )
    assert (tampered.status_code, tampered.json()["code"]) == (401, "invalid_signature")
    stale_at = datetime.now(UTC) - timedelta(minutes=6)
    stale = await http.post("/v1/webhooks/zendesk", content=body, headers=signed(body, stale_at))
    assert (stale.status_code, stale.json()["code"]) == (401, "stale_signature")
    unsigned = await http.post(
        "/v1/webhooks/zendesk",
        content=body,
        headers={"content-type": "application/json", **bearer("webhooks")},
    )
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "missing_signature")
    assert await read_topic(kafka_settings, topics.tickets) == []


async def test_an_unmapped_organization_is_a_clear_error_and_a_dead_letter(
    http: httpx.AsyncClient, kafka_settings: KafkaSettings, topics: Topics
) -> None:
    body = delivery(organization="424242")
    answer = await http.post("/v1/webhooks/zendesk", content=body, headers=signed(body))
    assert answer.status_code == 422
    assert answer.json()["code"] == "unmapped_organization"
    assert "424242" in answer.json()["message"]
    [dead] = await read_topic(kafka_settings, topics.ingest_dlq, at_least=1)
    assert dead.value == body
    assert headers(dead)["dlq.code"] == "unmapped_organization"
    assert headers(dead)["dlq.source"] == "zendesk"
    assert await read_topic(kafka_settings, topics.tickets) == []
