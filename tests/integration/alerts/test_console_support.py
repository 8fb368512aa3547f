"""What the console asks of the alerts API: alerts of several accounts at once, and a
single-use token recorded once (the console's sign-in links)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import httpx

from tests.integration.alerts.support import T0, Harness
from tests.integration.alerts.test_api import (  # noqa: F401 (fixtures)
    READER,
    as_admin,
    client,
    fire,
    listed,
)


async def test_alerts_of_several_accounts_at_once(
    harness: Harness,
    client: httpx.AsyncClient,  # noqa: F811
) -> None:
    await fire(harness)
    both = await listed(client, account_id=["acme", "globex"])
    assert {a["account_id"] for a in both} == {"acme", "globex"}
    assert len(both) == 3
    one = await listed(client, account_id=["globex", "nobody"])
    assert {a["account_id"] for a in one} == {"globex"}
    too_many = await client.get(
        "/v1/alerts",
        params={"account_id": [f"a{i}" for i in range(501)]},
        headers={"X-API-Key": READER},
    )
    assert too_many.status_code == 422


async def test_a_token_is_used_once_and_only_with_the_admin_scope(
    client: httpx.AsyncClient,  # noqa: F811
) -> None:
    body = {
        "digest": hashlib.sha256(b"sign-in token").hexdigest(),
        "expires_at": (T0 + timedelta(minutes=15)).isoformat(),
    }
    first = await client.post("/v1/used-tokens", json=body, headers=as_admin())
    assert first.status_code == 201, first.text
    again = await client.post("/v1/used-tokens", json=body, headers=as_admin())
    assert (again.status_code, again.json()["code"]) == (409, "already_used")
    reader = await client.post("/v1/used-tokens", json=body, headers={"X-API-Key": READER})
    assert reader.status_code == 403
    bad = await client.post("/v1/used-tokens", json={**body, "digest": "XYZ"}, headers=as_admin())
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_request")
