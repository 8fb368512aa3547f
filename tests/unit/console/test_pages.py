"""The console's pages in-process, over a fake of scoring's and alerts' APIs (an
``httpx.MockTransport``; the real services are in tests/integration/console): the proxy's
identity header (trusted only from configured networks), filters, 404 for another's account,
CSRF on actions, a service away, and the page metrics."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.console import views
from services.console.app import build_app
from services.console.settings import ConsoleSettings
from shared.ops import Draining

TODAY = datetime.now(UTC).date()


def summary(account_id: str, csm: str, band: str, score: float, **extra: Any) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "name": account_id.title(),
        "tier": extra.get("tier", "mid"),
        "arr": extra.get("arr", 10_000.0),
        "renewal_date": extra.get("renewal_date"),
        "csm": csm,
        "account_executive": None,
        "renewal_owner": None,
        "csm_name": csm.removeprefix("p_").title(),
        "score": score,
        "band": band,
        "top_reason": "usage down",
        "line": [{"day": (TODAY - timedelta(days=d)).isoformat(), "score": score} for d in (2, 1)],
    }


ACCOUNTS = [
    summary(
        "acme", "p_maria", "red", 20, arr=50_000.0, renewal_date=str(TODAY + timedelta(days=20))
    ),
    summary("initech", "p_maria", "green", 85, tier="enterprise"),
    summary("globex", "p_james", "yellow", 55),
]
ALERT = {
    "id": 7,
    "account_id": "acme",
    "rule": "band_worsened",
    "severity": "critical",
    "state": "firing",
    "summary": "Health dropped to red",
    "started_at": datetime.now(UTC).isoformat(),
    "acknowledged_by": None,
    "snoozed_until": None,
    "resolved_at": None,
}


class Fake:
    """scoring and alerts, as far as the console asks them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("refused")
        path, params = request.url.path, request.url.params
        body = json.loads(request.content) if request.content else None
        self.calls.append((request.method, path, body))
        if path == "/v1/people":
            email = params["email"]
            found = (
                [{"person_id": f"p_{email.split('@')[0]}", "name": email, "active": True}]
                if email in ("maria@example.com", "james@example.com")
                else []
            )
            return httpx.Response(200, json={"people": found})
        if path.endswith("/reports"):
            return httpx.Response(200, json={"reports": []})
        if path == "/v1/accounts":
            members, ids = params.get_list("member"), params.get_list("account_id")
            found = [
                a
                for a in ACCOUNTS
                if (not members or a["csm"] in members) and (not ids or a["account_id"] in ids)
            ]
            return httpx.Response(200, json={"accounts": found})
        if path == "/v1/alerts":
            ids = params.get_list("account_id")
            return httpx.Response(200, json={"alerts": [ALERT] if "acme" in ids else []})
        if path == "/v1/alerts/7":
            return httpx.Response(200, json=ALERT)
        if path == "/v1/alerts/7/ack":
            return httpx.Response(200, json={**ALERT, "state": "acknowledged"})
        if path.endswith("/health"):
            components = [
                {"name": "usage", "points": 10, "weight": 50, "contribution": 5, "status": "ok"}
            ]
            return httpx.Response(200, json={"components": components, "reasons": ["quiet"]})
        if path.endswith("/history"):
            return httpx.Response(200, json={"points": []})
        if "\x00" in path:
            return httpx.Response(422, json={"code": "invalid_request", "message": "NUL"})
        if path.endswith("/brief"):
            return httpx.Response(404, json={"code": "unknown_account", "message": "no"})
        return httpx.Response(404, json={"code": "not_found", "message": path})


@pytest.fixture
def fake() -> Fake:
    return Fake()


async def client_for(fake: Fake, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    config = ConsoleSettings(
        local_dev=True, public_url="http://console", secret_key="k" * 32, **settings
    )
    app = build_app(config, Draining(), transport=httpx.MockTransport(fake))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("10.1.2.3", 5555)),
        base_url="http://console",
    ) as client:
        yield client


@pytest.fixture
async def proxied(fake: Fake) -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(fake, trusted_proxies="10.0.0.0/8"):
        yield client


MARIA = {"X-Forwarded-Email": "maria@example.com"}


def rows(html: str) -> list[str]:
    return re.findall(r'<tr data-account-id="([^"]+)"', html)


async def test_a_trusted_proxys_header_signs_in_riskiest_first(
    proxied: httpx.AsyncClient,
) -> None:
    page = await proxied.get("/", headers=MARIA)
    assert page.status_code == 200
    assert rows(page.text) == ["acme", "initech"]
    assert "$50k" in page.text  # ARR at risk: acme (red) only
    assert "<svg class='spark'" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    unknown = await proxied.get("/", headers={"X-Forwarded-Email": "mallory@example.com"})
    assert unknown.status_code == 303


async def test_the_header_from_an_untrusted_address_is_ignored(fake: Fake) -> None:
    async for client in client_for(fake, trusted_proxies="192.168.0.0/16"):
        page = await client.get("/", headers=MARIA)
        assert page.status_code == 303
        assert page.headers["location"] == "/sign-in?next=%2F"
    async for client in client_for(fake):  # no proxy configured: never trusted
        assert (await client.get("/", headers=MARIA)).status_code == 303


async def test_filters_by_band_tier_and_renewal_and_refuse_unknown_values(
    proxied: httpx.AsyncClient,
) -> None:
    assert rows((await proxied.get("/?band=green", headers=MARIA)).text) == ["initech"]
    assert rows((await proxied.get("/?tier=enterprise", headers=MARIA)).text) == ["initech"]
    assert rows((await proxied.get("/?renewal=30", headers=MARIA)).text) == ["acme"]
    bad = await proxied.get("/?band=purple", headers=MARIA)
    assert (bad.status_code, bad.headers["x-error-code"]) == (422, "invalid_request")
    as_json = await proxied.get("/?renewal=0", headers={**MARIA, "Accept": "application/json"})
    assert as_json.json()["code"] == "invalid_request"


async def test_another_csms_account_is_404_and_ones_own_renders(
    proxied: httpx.AsyncClient,
) -> None:
    nul = await proxied.get("/alerts/7/../../accounts/%00", headers=MARIA)
    assert nul.status_code == 404
    other = await proxied.get("/accounts/globex", headers=MARIA)
    assert (other.status_code, other.headers["x-error-code"]) == (404, "not_found")
    mine = await proxied.get("/accounts/acme", headers=MARIA)
    assert mine.status_code == 200
    assert "aria-label='score history with band areas and alerts'" in mine.text
    assert 'data-alert-id="7"' in mine.text
    assert "usage" in mine.text
    assert (await proxied.get("/team", headers=MARIA)).status_code == 404
    for cdn_page in ("/docs", "/redoc"):  # FastAPI's would load scripts from a CDN
        assert (await proxied.get(cdn_page, headers=MARIA)).status_code == 404
    unmatched = await proxied.get("/no/such/page", headers=MARIA)
    assert (unmatched.status_code, unmatched.headers["x-error-code"]) == (404, "not_found")


async def test_an_action_needs_the_csrf_token_and_acts_as_the_person(
    proxied: httpx.AsyncClient, fake: Fake
) -> None:
    page = await proxied.get("/alerts", headers=MARIA)
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    refused = await proxied.post("/alerts/7/ack", headers=MARIA, data={"csrf": "nope"})
    assert (refused.status_code, refused.headers["x-error-code"]) == (403, "csrf_failed")
    assert not [c for c in fake.calls if c[1] == "/v1/alerts/7/ack"]
    done = await proxied.post("/alerts/7/ack", headers=MARIA, data={"csrf": token.group(1)})
    assert (done.status_code, done.headers["location"]) == (303, "/alerts")
    assert ("POST", "/v1/alerts/7/ack", {"by": "p_maria"}) in fake.calls
    snooze = await proxied.post(
        "/alerts/7/snooze", headers=MARIA, data={"csrf": token.group(1), "days": "3"}
    )
    assert snooze.status_code == 422


async def test_a_service_away_is_a_503_page_with_its_code(
    proxied: httpx.AsyncClient, fake: Fake
) -> None:
    fake.down = True
    page = await proxied.get("/", headers=MARIA)
    assert (page.status_code, page.headers["x-error-code"]) == (503, "backend_unavailable")
    metrics = (await proxied.get("/metrics")).text
    assert (
        'churnwatch_console_backend_errors_total{reason="unreachable",service="scoring"}' in metrics
    )
    assert 'churnwatch_console_page_seconds_count{page="/",status="5xx"}' in metrics


def test_team_health_counts_unacknowledged_criticals_and_arr_at_risk() -> None:
    from services.console.permissions import Person

    alerts = [ALERT, {**ALERT, "id": 8, "state": "acknowledged"}]
    found = views.team([Person("p_maria", "Maria"), Person("p_james", "James")], ACCOUNTS, alerts)
    maria, james = found
    assert (maria.person.person_id, maria.accounts, maria.red, maria.green) == ("p_maria", 2, 1, 1)
    assert maria.unacknowledged_critical == 1
    assert maria.arr_at_risk == 50_000.0
    assert (james.yellow, james.arr_at_risk) == (1, 10_000.0)


def test_a_sparkline_of_one_day_still_shows_its_point() -> None:
    from services.console import charts

    one = charts.sparkline([(TODAY, 40.0)], TODAY)
    assert "<circle" in one
    assert "aria-label='score over 30 days: 40 to 40'" in one
    assert "no history" in charts.sparkline([], TODAY)


def test_a_portfolio_row_counts_days_to_renewal_from_today() -> None:
    row = views.row(ACCOUNTS[0], [ALERT], TODAY)
    assert (row.days_to_renewal, row.open_alerts, row.critical_alerts) == (20, 1, 1)
    assert views.parse_date(None) is None
    assert views.money(1_250_000) == "$1.2M"
    assert isinstance(views.parse_date("2026-01-02"), date)


def test_days_to_a_renewal_read_in_words_also_once_it_has_passed() -> None:
    assert [views.days_to(d) for d in (12, 1, 0, -1, -45, None)] == [
        "in 12 days",
        "in 1 day",
        "today",
        "1 day ago",
        "45 days ago",
        "—",
    ]
