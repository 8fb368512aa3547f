"""The read API against the real database: health, history, portfolio, brief, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.scoring import api
from services.scoring.handler import BatchHandler
from services.scoring.scorer import Scorer
from services.scoring.sweep import Horizons, Sweeper
from shared.auth import ApiKeyEntry, ApiKeys, digest
from shared.clock import FixedClock
from tests.unit.scoring.builders import (
    NOW,
    account,
    person,
    records,
    steady_usage,
    survey,
    ticket,
)

READ = "cw_read"
EVENTS_ONLY = "cw_events"
AUTH = {"Authorization": f"Bearer {READ}"}


@pytest.fixture
async def client(pool: asyncpg.Pool, clock: FixedClock) -> AsyncIterator[httpx.AsyncClient]:
    keys = ApiKeys(
        [
            ApiKeyEntry(name="reader", sha256=digest(READ), scopes=frozenset({"read"})),
            ApiKeyEntry(name="writer", sha256=digest(EVENTS_ONLY), scopes=frozenset({"events"})),
        ]
    )
    app = FastAPI()
    api.install_error_handlers(app)
    api.install(app, keys, clock)
    app.state.pool = pool
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://scoring") as client:
        yield client


@pytest.fixture
async def portfolio(
    pool: asyncpg.Pool, handler: BatchHandler, scorer: Scorer, clock: FixedClock
) -> None:
    """Maria owns three accounts: one healthy, one silent for weeks, one drowning in tickets."""
    await handler(
        records(
            person("p_maria", "Maria Rossi"),
            person("p_james", "James Okafor"),
            account("healthy", seats=5, csm="p_maria"),
            account("silent", seats=5, csm="p_maria", renewal_owner="p_james"),
            account("tickets", seats=5, csm="p_james", account_executive="p_maria"),
            account("other", seats=5, csm="p_james"),
            *steady_usage("healthy", users=4),
            survey("healthy", score=10),
            *steady_usage("silent", users=4, until=NOW - timedelta(days=20)),
            *steady_usage("tickets", users=4),
            *steady_usage("other", users=4),
            *[ticket("tickets", ticket_id=f"t{i}", at=NOW - timedelta(hours=i)) for i in range(4)],
        )
    )
    clock.advance(timedelta(days=-8))
    await scorer.drain_queue(pool, clock.now())
    clock.advance(timedelta(days=8))
    sweep = Sweeper(
        scorer,
        pool,
        clock,
        interval_seconds=60,
        chunk=100,
        horizons=Horizons(timedelta(days=8), timedelta(days=400), timedelta(days=730)),
    )
    await sweep.sweep(clock.now())


async def test_health_is_the_current_score_with_components_reasons_and_signals(
    client: httpx.AsyncClient, portfolio: None
) -> None:
    response = await client.get("/v1/accounts/silent/health", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["account_id"] == "silent"
    assert body["band"] == "red"
    assert body["model_version"] == "health-v1"
    assert abs(sum(c["contribution"] for c in body["components"]) - body["score"]) <= 0.5
    assert {c["name"] for c in body["components"]} == {
        "activity",
        "recency",
        "breadth",
        "seat_utilisation",
        "support",
        "sentiment",
    }
    assert "no activity for 20 days" in body["reasons"]
    assert body["stale"] is True
    assert body["signals"]["days_since_activity"] == pytest.approx(20.0, abs=0.1)
    assert body["signals"]["renewal_date"] == "2027-03-31"


async def test_history_lists_the_scores_in_the_range_oldest_first(
    client: httpx.AsyncClient, portfolio: None
) -> None:
    everything = await client.get("/v1/accounts/silent/health/history", headers=AUTH)
    assert everything.status_code == 200
    points = everything.json()["points"]
    assert [p["as_of"][:10] for p in points] == [
        (NOW - timedelta(days=8)).date().isoformat(),
        NOW.date().isoformat(),
    ]
    assert points[0]["triggers"] == ["first_score"]
    assert points[1]["reasons"]

    recent = await client.get(
        "/v1/accounts/silent/health/history",
        params={"from": (NOW - timedelta(days=1)).isoformat(), "to": NOW.isoformat()},
        headers=AUTH,
    )
    assert [p["as_of"][:10] for p in recent.json()["points"]] == [NOW.date().isoformat()]


async def test_portfolio_lists_the_owners_accounts_riskiest_first_with_trend_and_reason(
    client: httpx.AsyncClient, portfolio: None
) -> None:
    response = await client.get("/v1/portfolio", params={"owner": "p_maria"}, headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["owner"] == {"person_id": "p_maria", "name": "Maria Rossi", "active": True}
    entries = body["accounts"]
    assert [e["account_id"] for e in entries] == ["silent", "tickets", "healthy"]
    assert next(e["band"] for e in entries) == "red"
    assert entries[-1]["band"] == "green"
    assert entries[1]["roles"] == ["account_executive"]
    assert entries[0]["trend"] == "down"
    assert entries[0]["trend_7d"] < 0
    assert entries[0]["top_reason"]
    scores = [e["score"] for e in entries]
    assert scores[0] < scores[-1]


async def test_brief_tells_what_changed_usage_tickets_renewal_as_json_and_text(
    client: httpx.AsyncClient, portfolio: None
) -> None:
    as_json = await client.get("/v1/accounts/tickets/brief", headers=AUTH)
    assert as_json.status_code == 200
    brief = as_json.json()
    assert brief["team"]["csm"] == {"person_id": "p_james", "name": "James Okafor"}
    assert len(brief["open_tickets"]) == 4
    assert brief["open_tickets"][0]["priority"] == "urgent"
    assert brief["renewal_date"] == "2027-03-31"
    assert brief["days_to_renewal"] == 130
    assert len(brief["usage"]["weeks"]) == 8
    assert brief["usage"]["trend"].startswith("flat")
    assert brief["health"]["reasons"]
    assert brief["changes_30d"][0]["triggers"] == ["first_score"]

    as_text = await client.get("/v1/accounts/tickets/brief?format=text", headers=AUTH)
    assert as_text.headers["content-type"].startswith("text/plain")
    text = as_text.text
    assert text.startswith("Pre-call brief: Tickets Inc. (tickets)")
    assert "Open tickets: 4" in text
    assert "Renewal: 2027-03-31 (in 130 days)" in text
    assert "CSM: James Okafor" in text

    negotiated = await client.get(
        "/v1/accounts/tickets/brief", headers={**AUTH, "Accept": "text/plain"}
    )
    assert negotiated.text == text

    document = (await client.get("/openapi.json")).json()
    answers = document["paths"]["/v1/accounts/{account_id}/brief"]["get"]["responses"]["200"]
    assert set(answers["content"]) == {"application/json", "text/plain"}


@pytest.mark.parametrize(
    "path",
    [
        "/v1/accounts/nobody/health",
        "/v1/accounts/nobody/health/history",
        "/v1/accounts/nobody/brief",
    ],
)
async def test_unknown_accounts_are_404_with_a_code(
    client: httpx.AsyncClient, portfolio: None, path: str
) -> None:
    response = await client.get(path, headers=AUTH)
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_account"


async def test_unknown_owner_is_404_and_bad_parameters_are_422_with_a_code(
    client: httpx.AsyncClient, portfolio: None
) -> None:
    unknown = await client.get("/v1/portfolio", params={"owner": "p_nobody"}, headers=AUTH)
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "unknown_owner"
    missing = await client.get("/v1/portfolio", headers=AUTH)
    assert missing.status_code == 422
    assert missing.json()["code"] == "invalid_request"
    backwards = await client.get(
        "/v1/accounts/silent/health/history",
        params={"from": NOW.isoformat(), "to": (NOW - timedelta(days=1)).isoformat()},
        headers=AUTH,
    )
    assert backwards.status_code == 422
    assert backwards.json()["code"] == "invalid_range"


async def test_the_api_needs_a_key_with_the_read_scope(
    client: httpx.AsyncClient, portfolio: None
) -> None:
    anonymous = await client.get("/v1/accounts/healthy/health")
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "unauthenticated"
    writer = await client.get("/v1/accounts/healthy/health", headers={"X-API-Key": EVENTS_ONLY})
    assert writer.status_code == 403
    assert writer.json()["code"] == "forbidden"
