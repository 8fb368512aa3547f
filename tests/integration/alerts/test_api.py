"""The alert API against the real database: listing and filtering, acknowledge / snooze /
resolve, silences (mandatory expiry, muting, early expiry), and API-key scopes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from shared.auth import ApiKeys, digest, new_key
from tests.integration.alerts.support import (
    BAND_ONLY,
    T0,
    Harness,
    account,
    change,
    make_config,
    person,
)

ADMIN, READER = new_key(), new_key()
KEYS = ApiKeys.from_json(
    json.dumps(
        [
            {"name": "ops", "sha256": digest(ADMIN), "scopes": ["read", "admin"]},
            {"name": "dashboard", "sha256": digest(READER), "scopes": ["read"]},
        ]
    )
)


@pytest.fixture
async def client(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    harness.config = make_config(group_wait=30, rules_text=BAND_ONLY)
    app = harness.api_app(KEYS)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://alerts"
    ) as client:
        yield client


def as_admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}


async def fire(harness: Harness) -> None:
    await harness.feed(
        person("p_maria", slack="U_MARIA"),
        person("p_james", slack="U_JAMES"),
        account("acme"),
        account("globex", csm="p_james"),
        change("acme", T0, (80, "green"), (30, "red")),
        change("globex", T0, (80, "green"), (55, "yellow"), days_since_activity=20),
    )


async def listed(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    answer = await client.get("/v1/alerts", params=params, headers={"X-API-Key": READER})
    assert answer.status_code == 200, answer.text
    alerts: list[dict[str, Any]] = answer.json()["alerts"]
    return alerts


async def test_alerts_are_listed_and_filtered(harness: Harness, client: httpx.AsyncClient) -> None:
    await fire(harness)
    everything = await listed(client)
    assert {(a["account_id"], a["rule"]) for a in everything} == {
        ("acme", "band_worsened"),
        ("globex", "band_worsened"),
        ("globex", "no_activity"),
    }
    assert [a["account_id"] for a in await listed(client, severity="critical")] == ["acme"]
    assert {a["rule"] for a in await listed(client, owner="p_james")} == {
        "band_worsened",
        "no_activity",
    }
    [acme] = await listed(client, account_id="acme")
    assert acme["route"]["path"] == ["CSM → p_maria (Maria)"]
    page = await listed(client, limit=2)
    assert len(page) == 2


async def test_the_api_needs_a_key_and_changes_need_the_admin_scope(
    harness: Harness, client: httpx.AsyncClient
) -> None:
    await fire(harness)
    [acme] = await listed(client, account_id="acme")
    missing = await client.get("/v1/alerts")
    assert (missing.status_code, missing.json()["code"]) == (401, "unauthenticated")
    refused = await client.post(f"/v1/alerts/{acme['id']}/ack", headers={"X-API-Key": READER})
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    unknown = await client.get("/v1/alerts/999999", headers={"X-API-Key": READER})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")


async def test_acknowledge_snooze_and_resolve(harness: Harness, client: httpx.AsyncClient) -> None:
    await fire(harness)
    globex = {a["rule"]: a for a in await listed(client, account_id="globex")}
    acked = await client.post(
        f"/v1/alerts/{globex['band_worsened']['id']}/ack", headers=as_admin(), json={"by": "maria"}
    )
    assert (acked.json()["state"], acked.json()["acknowledged_by"]) == ("acknowledged", "maria")

    snoozed = await client.post(
        f"/v1/alerts/{globex['no_activity']['id']}/snooze",
        headers=as_admin(),
        json={"seconds": 3600},
    )
    assert snoozed.json()["state"] == "snoozed"
    assert snoozed.json()["snoozed_until"] == (T0 + timedelta(hours=1)).isoformat()
    both = await client.post(
        f"/v1/alerts/{globex['no_activity']['id']}/snooze",
        headers=as_admin(),
        json={"seconds": 10, "until": "2030-01-01T00:00:00Z"},
    )
    assert (both.status_code, both.json()["code"]) == (422, "invalid_request")

    resolved = await client.post(
        f"/v1/alerts/{globex['band_worsened']['id']}/resolve", headers=as_admin()
    )
    assert (resolved.json()["state"], resolved.json()["resolved_by"]) == ("resolved", "ops")
    again = await client.post(f"/v1/alerts/{globex['band_worsened']['id']}/ack", headers=as_admin())
    assert (again.status_code, again.json()["code"]) == (409, "already_resolved")


async def test_a_silence_needs_an_expiry_and_mutes_until_it_is_expired(
    harness: Harness, client: httpx.AsyncClient
) -> None:
    body = {
        "matchers": [{"label": "account_id", "op": "=", "value": "acme"}],
        "comment": "migration",
    }
    missing = await client.post("/v1/silences", headers=as_admin(), json=body)
    assert (missing.status_code, missing.json()["code"]) == (422, "invalid_request")
    too_long = await client.post(
        "/v1/silences",
        headers=as_admin(),
        json={**body, "ends_at": (T0 + timedelta(days=31)).isoformat()},
    )
    assert (too_long.status_code, too_long.json()["code"]) == (422, "silence_too_long")
    bad_regex = await client.post(
        "/v1/silences",
        headers=as_admin(),
        json={
            "matchers": [{"label": "rule", "op": "=~", "value": "("}],
            "ends_at": (T0 + timedelta(days=1)).isoformat(),
        },
    )
    assert bad_regex.status_code == 422

    created = await client.post(
        "/v1/silences",
        headers=as_admin(),
        json={**body, "ends_at": (T0 + timedelta(days=1)).isoformat()},
    )
    assert created.status_code == 201
    silence = created.json()
    listed_silences = await client.get("/v1/silences", headers={"X-API-Key": READER})
    assert [s["id"] for s in listed_silences.json()["silences"]] == [silence["id"]]

    await fire(harness)
    scheduler = harness.scheduler()
    harness.clock.advance(timedelta(seconds=30))
    await scheduler.flush_due(harness.clock.now())
    assert await notified_accounts(harness) == ["globex"]  # acme is silenced
    [acme] = await listed(client, account_id="acme")
    assert acme["muted"] == f"silenced:{silence['id']}"

    expired = await client.delete(f"/v1/silences/{silence['id']}", headers=as_admin())
    assert expired.status_code == 200
    await scheduler.flush_due(harness.clock.now())
    harness.clock.advance(timedelta(seconds=30))
    await scheduler.flush_due(harness.clock.now())
    assert await notified_accounts(harness) == ["acme", "globex"]


async def notified_accounts(harness: Harness) -> list[str]:
    async with harness.engine.connect() as conn:
        rows = await conn.execute(text("SELECT DISTINCT account_id FROM alerts.outbox ORDER BY 1"))
        return [r[0] for r in rows]
