"""The HTTP layer with a recording publisher: auth, limits at their edges, answers, DLQ hand-off."""

from __future__ import annotations

import base64
import gzip
import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.ingest import zendesk
from services.ingest.memberships import InMemoryMemberships
from shared import events
from shared.logs import JsonFormatter
from tests.unit.ingest.fakes import KEYS, NOW, Clock, RecordingPublisher, app, bearer

USAGE = {
    "event_type": "usage",
    "event_id": "e-1",
    "account_id": "acme-corp",
    "occurred_at": "2026-11-20T11:00:00Z",
    "user_id": "u_1",
    "type": "login",
}
JSON_HEADERS = {"content-type": "application/json"}


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def client(publisher: RecordingPublisher) -> Iterator[TestClient]:
    with TestClient(app(publisher)) as test_client:
        yield test_client


def post_events(client: TestClient, body: Any, scope: str = "events", **headers: str) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        "/v1/events", content=content, headers={**JSON_HEADERS, **bearer(scope), **headers}
    )


# -- the native endpoint ---------------------------------------------------------------------


def test_a_batch_is_accepted_partially_and_the_refused_items_are_handed_to_the_dlq(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    answer = post_events(client, [USAGE, {**USAGE, "user_id": None}, USAGE | {"event_id": "e-2"}])
    assert answer.status_code == 202
    assert answer.json() == {
        "accepted": 2,
        "rejected": [
            {
                "index": 1,
                "code": "invalid_event",
                "message": "Expected `str`, got `null` - at `$.user_id`",
            }
        ],
    }
    [call] = publisher.calls
    assert [events.decode_event(m.value).event_id for m in call.messages] == ["e-1", "e-2"]
    [dead] = call.refused
    assert dead.index == 1
    assert json.loads(dead.raw)["user_id"] is None
    assert call.origin == "http POST /v1/events"
    assert call.headers["dlq.source"] == "native"
    assert call.headers["dlq.caller"] == "events-caller"
    assert call.headers["dlq.request_id"] == answer.headers["x-request-id"]


def test_nothing_is_claimed_when_kafka_does_not_acknowledge(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    publisher.unavailable = True
    answer = post_events(client, [USAGE])
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["code"] == "kafka_unavailable"
    assert "accepted" not in answer.json()


def test_the_request_id_is_echoed_or_made(client: TestClient) -> None:
    given = post_events(client, [USAGE], **{"x-request-id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = post_events(client, [USAGE])
    assert len(made.headers["x-request-id"]) == 32
    odd = post_events(client, [USAGE], **{"x-request-id": "a b\tc"})
    assert odd.headers["x-request-id"] != "a b\tc"


# -- the auth matrix ---------------------------------------------------------------------------

ROUTES = [
    ("POST", "/v1/events", "events", [USAGE]),
    ("PUT", "/v1/accounts/acme-corp", "accounts", {"name": "Acme"}),
    ("POST", "/v1/accounts", "accounts", [{"account_id": "a", "name": "A"}]),
    ("PUT", "/v1/people/p_1", "accounts", {"name": "Maria"}),
    ("POST", "/v1/people", "accounts", [{"person_id": "p_1", "name": "Maria"}]),
    ("POST", "/v1/batch", "events", {"batch": []}),
    ("POST", "/v1/track", "events", {"userId": "u", "event": "x", "context": {"groupId": "a"}}),
    ("POST", "/v1/identify", "events", {"userId": "u"}),
]


@pytest.mark.parametrize(("method", "path", "scope", "body"), ROUTES)
def test_the_right_scope_is_let_in(
    client: TestClient, method: str, path: str, scope: str, body: Any
) -> None:
    answer = client.request(method, path, json=body, headers=bearer(scope))
    assert answer.status_code in (200, 202), answer.text


@pytest.mark.parametrize(("method", "path", "scope", "body"), ROUTES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"X-API-Key": "nope"},
        {"Authorization": "Basic !!"},
        {"Authorization": "Basic w7w="},  # base64 of bytes that are not UTF-8
        {"Authorization": "Basic \u00e9t\u00e9".encode("latin-1")},  # not even ASCII
    ],
)
def test_a_missing_or_unknown_key_is_401(
    client: TestClient,
    method: str,
    path: str,
    scope: str,
    body: Any,
    headers: dict[str, str | bytes],
) -> None:
    answer = client.request(method, path, json=body, headers=headers)
    assert answer.status_code == 401
    assert answer.json()["code"] == "unauthenticated"
    assert "www-authenticate" in answer.headers


@pytest.mark.parametrize(("method", "path", "scope", "body"), ROUTES)
def test_a_key_without_the_scope_is_403(
    client: TestClient, method: str, path: str, scope: str, body: Any
) -> None:
    other = "accounts" if scope == "events" else "events"
    for wrong in (other, "webhooks", "read"):
        answer = client.request(method, path, json=body, headers=bearer(wrong))
        assert answer.status_code == 403
        assert answer.json()["code"] == "forbidden"


def test_the_zendesk_webhook_needs_the_webhooks_scope(client: TestClient) -> None:
    answer = client.post("/v1/webhooks/zendesk", json={}, headers=bearer("events"))
    assert (answer.status_code, answer.json()["code"]) == (403, "forbidden")
    assert client.post("/v1/webhooks/zendesk", json={}).status_code == 401


def test_segment_takes_the_write_key_as_basic_user_or_in_the_body(client: TestClient) -> None:
    key = KEYS["events"]
    basic = base64.b64encode(f"{key}:".encode()).decode()
    batch = {"batch": [{"type": "identify", "userId": "u"}]}
    by_header = client.post("/v1/batch", json=batch, headers={"Authorization": f"Basic {basic}"})
    assert by_header.status_code == 200
    by_body = client.post("/v1/batch", json={**batch, "writeKey": key})
    assert by_body.status_code == 200
    assert by_body.json() == {"success": True, "accepted": 0, "ignored": 1, "rejected": []}
    wrong = client.post("/v1/batch", json={**batch, "writeKey": KEYS["accounts"]})
    assert wrong.status_code == 403


# -- limits at their edges -----------------------------------------------------------------


def body_of(size: int) -> bytes:
    """A valid one-event body of exactly ``size`` bytes."""
    compact = json.dumps([USAGE], separators=(",", ":")).encode()
    padded = compact[:-1] + b" " * (size - len(compact)) + b"]"
    assert len(padded) == size
    return padded


@pytest.mark.parametrize("streamed", [False, True])
def test_a_body_of_exactly_the_limit_passes_and_one_byte_more_is_413(
    publisher: RecordingPublisher, streamed: bool
) -> None:
    with TestClient(app(publisher, max_body_bytes=2048)) as client:

        def send(content: bytes) -> Any:
            payload: Any = iter([content[:1000], content[1000:]]) if streamed else content
            return client.post(
                "/v1/events", content=payload, headers={**JSON_HEADERS, **bearer("events")}
            )

        assert send(body_of(2048)).status_code == 202
        over = send(body_of(2049))
        assert over.status_code == 413
        assert over.json()["code"] == "body_too_large"


def test_the_default_body_limit_is_512_kib(client: TestClient) -> None:
    assert post_events(client, body_of(512 * 1024)).status_code == 202
    assert post_events(client, body_of(512 * 1024 + 1)).status_code == 413


def test_a_gzipped_body_is_read_and_its_inflated_size_is_limited(
    publisher: RecordingPublisher,
) -> None:
    with TestClient(app(publisher, max_body_bytes=2048)) as client:
        headers = {**JSON_HEADERS, **bearer("events"), "content-encoding": "gzip"}
        fits = client.post("/v1/events", content=gzip.compress(body_of(2048)), headers=headers)
        assert fits.status_code == 202
        bomb = client.post("/v1/events", content=gzip.compress(body_of(2049)), headers=headers)
        assert (bomb.status_code, bomb.json()["code"]) == (413, "body_too_large")
        corrupt = client.post("/v1/events", content=b"not gzip", headers=headers)
        assert (corrupt.status_code, corrupt.json()["code"]) == (400, "invalid_gzip")


def test_2500_events_pass_and_2501_are_413(client: TestClient) -> None:
    assert post_events(client, [USAGE] * 2500).json()["accepted"] == 2500
    answer = post_events(client, [USAGE] * 2501)
    assert (answer.status_code, answer.json()["code"]) == (413, "too_many_events")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_a_wrong_content_type_is_415(client: TestClient, content_type: str) -> None:
    answer = client.post(
        "/v1/events",
        content=json.dumps([USAGE]),
        headers={"content-type": content_type, **bearer("events")},
    )
    assert (answer.status_code, answer.json()["code"]) == (415, "unsupported_media_type")


def test_json_with_a_charset_is_fine_and_segment_also_takes_text_plain(client: TestClient) -> None:
    charset = post_events(client, [USAGE], **{"content-type": "application/json; charset=utf-8"})
    assert charset.status_code == 202
    answer = client.post(
        "/v1/batch",
        content=json.dumps({"batch": [], "writeKey": KEYS["events"]}),
        headers={"content-type": "text/plain"},
    )
    assert answer.status_code == 200


def test_invalid_json_is_400(client: TestClient) -> None:
    answer = post_events(client, b'[{"event_type": ')
    assert (answer.status_code, answer.json()["code"]) == (400, "invalid_json")


def test_an_event_24_hours_ahead_passes_and_one_second_more_is_refused(client: TestClient) -> None:
    at_edge = {**USAGE, "occurred_at": (NOW + timedelta(hours=24)).isoformat()}
    beyond = {**at_edge, "occurred_at": (NOW + timedelta(hours=24, seconds=1)).isoformat()}
    answer = post_events(client, [at_edge, beyond]).json()
    assert answer["accepted"] == 1
    assert [(r["index"], r["code"]) for r in answer["rejected"]] == [(1, "occurred_in_future")]


def test_a_key_over_its_rate_gets_429_with_retry_after_until_time_passes(
    publisher: RecordingPublisher,
) -> None:
    clock = Clock()
    limited = app(publisher, clock=clock, rate_limit_per_second=1, rate_limit_burst=2)
    with TestClient(limited) as client:
        assert [post_events(client, [USAGE]).status_code for _ in range(2)] == [202, 202]
        refused = post_events(client, [USAGE])
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["code"] == "rate_limited"
        other_key = client.put("/v1/people/p_1", json={"name": "M"}, headers=bearer("accounts"))
        assert other_key.status_code == 200
        clock.monotonic_now += 1.0
        assert post_events(client, [USAGE]).status_code == 202


# -- accounts, people ------------------------------------------------------------------------


def test_a_refused_put_is_422_with_its_code_and_still_dead_lettered(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    answer = client.put(
        "/v1/accounts/acme-corp", json={"name": "Acme", "seats": -1}, headers=bearer("accounts")
    )
    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid_record"
    assert [r.code for r in publisher.refused] == ["invalid_record"]


def test_a_person_put_is_published_keyed_by_person_id(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    answer = client.put(
        "/v1/people/p_maria",
        json={"name": "Maria", "email": "maria@example.com", "manager_id": "p_grace"},
        headers=bearer("accounts"),
    )
    assert answer.json() == {"accepted": 1, "rejected": []}
    [message] = publisher.messages
    assert (message.topic, message.key) == ("t.people.v1", b"p_maria")
    assert events.decode_person(message.value).source == "accounts-caller"


# -- Segment across requests -----------------------------------------------------------------


def test_a_group_call_attaches_the_users_later_track_calls(publisher: RecordingPublisher) -> None:
    memberships = InMemoryMemberships()
    with TestClient(app(publisher, memberships=memberships)) as client:
        headers = bearer("events")
        group = {"userId": "u_9", "groupId": "acme-corp", "messageId": "g"}
        assert client.post("/v1/group", json=group, headers=headers).json()["accepted"] == 1
        assert memberships.accounts == {"u_9": "acme-corp"}
        track = {"userId": "u_9", "event": "Report Exported", "messageId": "t"}
        assert client.post("/v1/track", json=track, headers=headers).json()["accepted"] == 1
    assert events.decode_event(publisher.messages[-1].value).account_id == "acme-corp"


def test_a_group_call_kafka_did_not_take_is_not_remembered(publisher: RecordingPublisher) -> None:
    memberships = InMemoryMemberships()
    publisher.unavailable = True
    with TestClient(app(publisher, memberships=memberships)) as client:
        group = {"userId": "u_9", "groupId": "acme-corp"}
        assert client.post("/v1/group", json=group, headers=bearer("events")).status_code == 503
    assert memberships.accounts == {}


# -- Zendesk ---------------------------------------------------------------------------------

DELIVERY: dict[str, Any] = {
    "type": "zen:event-type:ticket.created",
    "id": "ev-1",
    "time": "2026-11-20T11:59:00Z",
    "detail": {"id": "88231", "organization_id": "3601", "priority": "URGENT", "status": "NEW"},
}


def signed(
    body: bytes, *, at: str | None = None, secret: bytes = b"zendesk-secret"
) -> dict[str, str]:
    timestamp = at or NOW.isoformat()
    return {
        **JSON_HEADERS,
        **bearer("webhooks"),
        "X-Zendesk-Webhook-Signature": zendesk.signature(b"zendesk-secret", timestamp, body),
        "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
    }


def test_a_signed_zendesk_delivery_becomes_a_ticket_event(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    body = json.dumps(DELIVERY).encode()
    answer = client.post("/v1/webhooks/zendesk", content=body, headers=signed(body))
    assert answer.status_code == 202
    assert answer.json() == {"accepted": 1, "ignored": 0, "rejected": []}
    event = events.decode_event(publisher.messages[0].value)
    assert isinstance(event, events.TicketEvent)
    assert (event.action, event.priority, event.event_id) == ("opened", "urgent", "zendesk:ev-1")


def test_tampered_and_stale_zendesk_deliveries_are_401(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    body = json.dumps(DELIVERY).encode()
    tampered = client.post(
        "/v1/webhooks/zendesk", content=body.replace(b"URGENT", b"LOW"), headers=signed(body)
    )
    assert (tampered.status_code, tampered.json()["code"]) == (401, "invalid_signature")
    old = (NOW - timedelta(minutes=6)).isoformat()
    stale = client.post("/v1/webhooks/zendesk", content=body, headers=signed(body, at=old))
    assert (stale.status_code, stale.json()["code"]) == (401, "stale_signature")
    assert publisher.calls == []


def test_an_unmapped_zendesk_organization_is_422_and_dead_lettered(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    delivery = {**DELIVERY, "detail": {**DELIVERY["detail"], "organization_id": "77"}}
    body = json.dumps(delivery).encode()
    answer = client.post("/v1/webhooks/zendesk", content=body, headers=signed(body))
    assert (answer.status_code, answer.json()["code"]) == (422, "unmapped_organization")
    [dead] = publisher.refused
    assert (dead.code, dead.raw) == ("unmapped_organization", body)


def test_without_a_signing_secret_the_zendesk_endpoint_is_not_configured(
    publisher: RecordingPublisher,
) -> None:
    with TestClient(app(publisher, zendesk_signing_secret=None)) as client:
        answer = client.post("/v1/webhooks/zendesk", json=DELIVERY, headers=bearer("webhooks"))
    assert (answer.status_code, answer.json()["code"]) == (404, "not_configured")


# -- the rest of the surface -------------------------------------------------------------------


def test_unknown_routes_and_methods_answer_with_a_code(client: TestClient) -> None:
    assert client.get("/v1/nothing").json()["code"] == "not_found"
    assert client.get("/v1/events").json()["code"] == "method_not_allowed"


def test_metrics_count_items_by_source_and_code(client: TestClient) -> None:
    post_events(client, [USAGE, {"event_type": "usage"}])
    text = client.get("/metrics").text
    assert 'churnwatch_ingest_items_accepted_total{source="native"}' in text
    assert 'churnwatch_ingest_items_rejected_total{code="invalid_event",source="native"}' in text
    assert "churnwatch_ingest_produce_seconds" in text
    assert 'churnwatch_ingest_batch_items_bucket{le="2.0",source="native"}' in text
    assert 'churnwatch_ingest_request_seconds_count{route="/v1/events"}' in text


def test_readiness_follows_the_publisher(client: TestClient, publisher: RecordingPublisher) -> None:
    assert client.get("/readyz").status_code == 200
    publisher.unavailable = True
    assert client.get("/readyz").json()["checks"] == {"kafka": False}


def test_every_intake_operation_is_documented_with_examples(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operations = [
        (path, method, operation)
        for path, item in document["paths"].items()
        if path.startswith("/v1/")
        for method, operation in item.items()
    ]
    assert len(operations) == 13
    for path, method, operation in operations:
        where = f"{method.upper()} {path}"
        content = operation["requestBody"]["content"]
        assert all(media["examples"] for media in content.values()), where
        answers = operation["responses"]
        success = next(code for code in answers if code.startswith("2"))
        assert answers[success]["content"]["application/json"]["example"] is not None, where
        assert {"401", "413", "415", "503"} <= set(answers), where
        assert operation["security"], where
    for path in ("/healthz", "/readyz", "/metrics"):
        content = document["paths"][path]["get"]["responses"]["200"]["content"]
        assert all("example" in media for media in content.values()), path
    schemas = document["components"]["schemas"]
    assert {"UsageEventIn", "AccountIn", "PersonIn", "SegmentBatch", "ZendeskWebhook"} <= set(
        schemas
    )


def test_a_requests_logs_carry_its_request_id_and_never_the_key(client: TestClient) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("ingest"))
    logger = logging.getLogger("services.ingest")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        post_events(client, [USAGE, {"event_type": "usage"}], **{"x-request-id": "req-42"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [refused] = [line for line in lines if line["msg"] == "items refused and dead-lettered"]
    assert refused["request_id"] == "req-42"
    assert (refused["source"], refused["refused"], refused["codes"]) == (
        "native",
        1,
        ["invalid_event"],
    )
    assert KEYS["events"] not in stream.getvalue()
