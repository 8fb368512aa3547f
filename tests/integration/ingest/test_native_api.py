"""The native API against the real broker: partial batches, dead letters, limits, auth, records."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared import events
from shared.events import Topics
from shared.settings import KafkaSettings
from tests.integration.ingest.support import KEYS, bearer, headers, read_topic, values


def usage(event_id: str, **change: Any) -> dict[str, Any]:
    return {
        "event_type": "usage",
        "event_id": event_id,
        "account_id": "acme-corp",
        "occurred_at": datetime.now(UTC).isoformat(),
        "user_id": "u_1",
        "type": "feature_used",
        "feature": "reports.export",
        **change,
    }


async def post(http: httpx.AsyncClient, body: Any, scope: str = "events") -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await http.post(
        "/v1/events",
        content=content,
        headers={"content-type": "application/json", **bearer(scope)},
    )


async def test_a_mixed_batch_publishes_only_the_good_items_and_dead_letters_the_bad_ones(
    http: httpx.AsyncClient, kafka_settings: KafkaSettings, topics: Topics
) -> None:
    bad_schema = usage("bad-1", user_id=None)
    bad_future = usage("bad-2", occurred_at=(datetime.now(UTC) + timedelta(days=2)).isoformat())
    ticket = {
        "event_type": "ticket",
        "event_id": "t-1",
        "account_id": "globex",
        "occurred_at": datetime.now(UTC).isoformat(),
        "ticket_id": "42",
        "action": "opened",
        "priority": "urgent",
        "status": "open",
    }
    answer = await post(http, [usage("good-1"), bad_schema, ticket, bad_future, usage("good-2")])

    assert answer.status_code == 202
    body = answer.json()
    assert body["accepted"] == 3
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [
        (1, "invalid_event"),
        (3, "occurred_in_future"),
    ]
    published = await read_topic(kafka_settings, topics.usage, at_least=2)
    assert sorted(v["event_id"] for v in values(published)) == ["good-1", "good-2"]
    assert {record.key for record in published} == {b"acme-corp"}
    tickets = await read_topic(kafka_settings, topics.tickets, at_least=1)
    assert [events.decode_event(r.value).event_id for r in tickets] == ["t-1"]

    dead = await read_topic(kafka_settings, topics.ingest_dlq, at_least=2)
    by_index = {headers(record)["dlq.index"]: record for record in dead}
    assert set(by_index) == {"1", "3"}
    assert json.loads(by_index["1"].value) == bad_schema  # the original bytes
    assert headers(by_index["1"])["dlq.code"] == "invalid_event"
    assert headers(by_index["3"])["dlq.code"] == "occurred_in_future"
    assert headers(by_index["1"])["dlq.origin"] == "http POST /v1/events"
    assert headers(by_index["1"])["dlq.request_id"] == answer.headers["x-request-id"]
    assert headers(by_index["1"])["dlq.caller"] == "events-source"


async def test_an_event_without_id_gets_the_same_id_when_the_request_is_retried(
    http: httpx.AsyncClient, kafka_settings: KafkaSettings, topics: Topics
) -> None:
    item = usage("x")
    del item["event_id"]
    body = json.dumps([item]).encode()
    assert (await post(http, body)).status_code == 202
    assert (await post(http, body)).status_code == 202
    published = values(await read_topic(kafka_settings, topics.usage, at_least=2))
    assert published[0]["event_id"] == published[1]["event_id"]
    assert published[0]["event_id"].startswith("h:")


# -- limits at their edges, through the running service ------------------------------------


def padded_body(size: int, item: dict[str, Any]) -> bytes:
    compact = json.dumps([item], separators=(",", ":")).encode()
    body = compact[:-1] + b" " * (size - len(compact)) + b"]"
    assert len(body) == size
    return body


async def test_a_body_of_exactly_512_kib_passes_and_one_byte_more_is_413(
    http: httpx.AsyncClient,
) -> None:
    assert (await post(http, padded_body(512 * 1024, usage("edge")))).status_code == 202
    over = await post(http, padded_body(512 * 1024 + 1, usage("over")))
    assert (over.status_code, over.json()["code"]) == (413, "body_too_large")


async def test_an_event_of_exactly_32_kib_passes_and_one_byte_more_is_refused_alone(
    http: httpx.AsyncClient,
) -> None:
    def item_of(size: int, event_id: str) -> bytes:
        compact = json.dumps(usage(event_id), separators=(",", ":")).encode()
        return compact[:-1] + b" " * (size - len(compact)) + b"}"

    body = b"[" + item_of(32 * 1024, "edge") + b"," + item_of(32 * 1024 + 1, "over") + b"]"
    answer = await post(http, body)
    assert answer.json()["accepted"] == 1
    assert [(r["index"], r["code"]) for r in answer.json()["rejected"]] == [(1, "event_too_large")]


async def test_2500_events_pass_and_2501_are_413(http: httpx.AsyncClient) -> None:
    item = usage("same")
    assert (await post(http, [item] * 2500)).json()["accepted"] == 2500
    answer = await post(http, [item] * 2501)
    assert (answer.status_code, answer.json()["code"]) == (413, "too_many_events")


async def test_an_event_just_under_24_hours_ahead_passes_and_just_over_is_refused(
    http: httpx.AsyncClient,
) -> None:
    now = datetime.now(UTC)
    under = usage("under", occurred_at=(now + timedelta(hours=24, minutes=-1)).isoformat())
    over = usage("over", occurred_at=(now + timedelta(hours=24, minutes=1)).isoformat())
    answer = (await post(http, [under, over])).json()
    assert answer["accepted"] == 1
    assert [(r["index"], r["code"]) for r in answer["rejected"]] == [(1, "occurred_in_future")]


async def test_wrong_content_type_is_415_and_invalid_json_is_400(http: httpx.AsyncClient) -> None:
    wrong = await http.post(
        "/v1/events", content=b"[]", headers={"content-type": "text/csv", **bearer("events")}
    )
    assert (wrong.status_code, wrong.json()["code"]) == (415, "unsupported_media_type")
    invalid = await post(http, b"[{,]")
    assert (invalid.status_code, invalid.json()["code"]) == (400, "invalid_json")


# -- the auth matrix -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "scope", "body"),
    [
        ("POST", "/v1/events", "events", []),
        ("PUT", "/v1/accounts/acme-corp", "accounts", {"name": "Acme"}),
        ("POST", "/v1/people", "accounts", []),
        ("POST", "/v1/batch", "events", {"batch": []}),
        ("POST", "/v1/webhooks/zendesk", "webhooks", {}),
    ],
)
async def test_the_auth_matrix(
    http: httpx.AsyncClient, method: str, path: str, scope: str, body: Any
) -> None:
    async def status(headers: dict[str, str]) -> tuple[int, str | None]:
        answer = await http.request(method, path, json=body, headers=headers)
        return answer.status_code, answer.json().get("code")

    assert await status({}) == (401, "unauthenticated")
    assert await status({"Authorization": "Bearer cw_unknown"}) == (401, "unauthenticated")
    wrong = "accounts" if scope != "accounts" else "events"
    assert await status(bearer(wrong)) == (403, "forbidden")
    _, code = await status({"X-API-Key": KEYS[scope]})
    assert code not in ("unauthenticated", "forbidden")  # Zendesk still wants its signature


# -- accounts and people ---------------------------------------------------------------------


async def test_accounts_and_people_land_on_their_compacted_topics_keyed_by_their_ids(
    http: httpx.AsyncClient, kafka_settings: KafkaSettings, topics: Topics
) -> None:
    put = await http.put(
        "/v1/accounts/acme-corp",
        json={"name": "Acme", "seats": 250, "team": {"csm": "p_maria"}},
        headers=bearer("accounts"),
    )
    assert put.json() == {"accepted": 1, "rejected": []}
    bulk = await http.post(
        "/v1/people",
        json=[
            {"person_id": "p_maria", "name": "Maria", "time_zone": "Europe/Madrid"},
            {"person_id": "p_grace", "name": "Grace", "email": "not-an-email"},
        ],
        headers=bearer("accounts"),
    )
    assert bulk.json()["accepted"] == 1
    assert [r["index"] for r in bulk.json()["rejected"]] == [1]

    [account] = await read_topic(kafka_settings, topics.accounts, at_least=1)
    assert account.key == b"acme-corp"
    record = events.decode_account(account.value)
    assert (record.seats, record.team.csm, record.source) == (250, "p_maria", "accounts-source")
    [person] = await read_topic(kafka_settings, topics.people, at_least=1)
    assert person.key == b"p_maria"
    assert events.decode_person(person.value).time_zone == "Europe/Madrid"
    [dead] = await read_topic(kafka_settings, topics.ingest_dlq, at_least=1)
    assert headers(dead)["dlq.source"] == "people"
