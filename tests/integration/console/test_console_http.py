"""The console run for real (``python -m services.console``) over the real scoring and alerts
services, Kafka and PostgreSQL, with an SMTP server: sign-in by the emailed link, who sees
what (404 for another team's account), acting on an alert as the signed-in person, CSRF, and
expired, reused and forged links — with a plain HTTP client (the browser versions are in
``browser/``)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.console.signin import Tokens, link_url
from shared.settings import KafkaSettings
from tests.integration.console.stack import ADMIN_EMAIL, SECRET, Stack, running_stack
from tests.support import eventually

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def stack(
    tmp_path: Path, kafka_settings: KafkaSettings, database_url: str
) -> AsyncIterator[Stack]:
    async for running in running_stack(tmp_path, kafka_settings, database_url):
        yield running


@pytest.fixture
async def behind_proxy(
    tmp_path: Path, kafka_settings: KafkaSettings, database_url: str
) -> AsyncIterator[Stack]:
    """The same, with the loopback address trusted as an authenticating proxy."""
    trusted = {"CONSOLE_TRUSTED_PROXIES": "127.0.0.1/32"}
    async for running in running_stack(tmp_path, kafka_settings, database_url, **trusted):
        yield running


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "a form with a CSRF token"
    return match.group(1)


async def sign_in(stack: Stack, http: httpx.AsyncClient, link: str) -> httpx.Response:
    """Open the link (a page with a Continue button), press it; returns the redirect."""
    shown = await http.get(link)
    assert shown.status_code == 200, shown.text
    return await http.post(link, data={"csrf": csrf_of(shown.text)})


def minted(email: str, *, issued_s_ago: float = 0.0, next_path: str = "/") -> str:
    tokens = Tokens(
        SECRET, sign_in_ttl=900, session_ttl=3600, now=lambda: time.time() - issued_s_ago
    )
    return tokens.sign_in(email, next_path)


async def test_sign_in_by_emailed_link_roles_actions_and_refusals(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as maria:
        # a page without a session goes to the sign-in page, and comes back after it
        first = await maria.get("/accounts/acme")
        assert first.status_code == 303
        assert first.headers["location"] == "/sign-in?next=%2Faccounts%2Facme"
        form = await maria.get(first.headers["location"])
        asked = await maria.post(
            "/sign-in",
            data={
                "email": "Maria@Example.com",
                "csrf": csrf_of(form.text),
                "next": "/accounts/acme",
            },
        )
        assert asked.status_code == 200
        assert "Check your email" in asked.text
        link = await stack.emailed_link("maria@example.com")
        signed = await sign_in(stack, maria, link)
        assert (signed.status_code, signed.headers["location"]) == (303, "/accounts/acme")
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        # the link worked once
        again = await maria.post(link, data={"csrf": "x"})
        assert again.status_code == 403  # no form cookie any more: CSRF first
        replay = await httpx.AsyncClient(base_url=stack.url).get(link)
        page = await maria.get(link)
        token = csrf_of(page.text)
        used = await maria.post(link, data={"csrf": token})
        assert (used.status_code, used.headers["x-error-code"]) == (410, "link_used")
        assert replay.status_code == 200  # GET never uses a link up

        # Maria sees her accounts (acme, initech), not James's globex: 404 like an unknown one
        portfolio = await maria.get("/")
        assert portfolio.status_code == 200
        rows = set(re.findall(r'data-account-id="([^"]+)"', portfolio.text))
        assert rows == {"acme", "initech"}
        for hidden in ("globex", "no-such-account"):
            refused = await maria.get(f"/accounts/{hidden}")
            assert (refused.status_code, refused.headers["x-error-code"]) == (404, "not_found")
        assert (await maria.get("/team")).status_code == 404  # not a manager

        # the account page shows the alert; acknowledging needs the CSRF token
        account = await maria.get("/accounts/acme")
        assert account.status_code == 200
        [alert] = await stack.alerts_of("acme")
        assert f'data-alert-id="{alert["id"]}"' in account.text
        forged = await maria.post(f"/alerts/{alert['id']}/ack", data={"csrf": "forged"})
        assert (forged.status_code, forged.headers["x-error-code"]) == (403, "csrf_failed")
        assert (await stack.alerts_of("acme"))[0]["state"] == "firing"
        acked = await maria.post(
            f"/alerts/{alert['id']}/ack",
            data={"csrf": csrf_of(account.text), "next": "/accounts/acme"},
        )
        assert (acked.status_code, acked.headers["location"]) == (303, "/accounts/acme")
        [after] = await stack.alerts_of("acme")
        assert (after["state"], after["acknowledged_by"]) == ("acknowledged", "p_maria")
        fed = await maria.post(
            f"/alerts/{alert['id']}/feedback",
            data={"csrf": csrf_of(account.text), "verdict": "useful"},
        )
        assert fed.status_code == 303

        out = await maria.post("/sign-out", data={"csrf": csrf_of(account.text)})
        assert out.status_code == 303
        assert (await maria.get("/")).status_code == 303

    async with httpx.AsyncClient(base_url=stack.url) as james:
        # James may not act on Maria's alert either: 404, and nothing changes
        await sign_in(stack, james, link_url(stack.url, minted("james@example.com")))
        home = await james.get("/")
        assert set(re.findall(r'data-account-id="([^"]+)"', home.text)) == {"globex", "initech"}
        refused = await james.post(
            f"/alerts/{alert['id']}/snooze", data={"csrf": csrf_of(home.text), "days": "1"}
        )
        assert refused.status_code == 404
        assert (await stack.alerts_of("acme"))[0]["state"] == "acknowledged"


async def test_managers_and_admins_see_more_and_bad_links_are_refused(
    behind_proxy: Stack,
) -> None:
    stack = behind_proxy
    async with httpx.AsyncClient(base_url=stack.url) as proxied:
        as_james = await proxied.get("/", headers={"X-Forwarded-Email": "james@example.com"})
        assert as_james.status_code == 200
        assert set(re.findall(r'data-account-id="([^"]+)"', as_james.text)) == {
            "globex",
            "initech",
        }
        stranger = await proxied.get("/", headers={"X-Forwarded-Email": "eve@example.com"})
        assert stranger.status_code == 303  # not in the directory: the sign-in page
        assert "set-cookie" not in as_james.headers  # the proxy is the session

    async with httpx.AsyncClient(base_url=stack.url) as lena:
        await sign_in(stack, lena, link_url(stack.url, minted("lena@example.com")))
        home = await lena.get("/")
        assert set(re.findall(r'data-account-id="([^"]+)"', home.text)) == {"acme", "initech"}
        team = await lena.get("/team")
        assert team.status_code == 200
        assert 'data-person-id="p_maria"' in team.text
        assert (await lena.get("/accounts/globex")).status_code == 404
        assert (await lena.get("/accounts/acme/brief")).status_code == 200

    async with httpx.AsyncClient(base_url=stack.url) as boss:
        await sign_in(stack, boss, link_url(stack.url, minted(ADMIN_EMAIL)))
        home = await boss.get("/")
        assert set(re.findall(r'data-account-id="([^"]+)"', home.text)) == {
            "acme",
            "globex",
            "initech",
        }
        assert (await boss.get("/accounts/globex")).status_code == 200
        assert (await boss.get("/team")).status_code == 200

    async with httpx.AsyncClient(base_url=stack.url) as anyone:
        expired = link_url(stack.url, minted("maria@example.com", issued_s_ago=901))
        answer = await anyone.get(expired)
        assert (answer.status_code, answer.headers["x-error-code"]) == (410, "link_expired")
        assert "Ask for a new sign-in link" in answer.text
        forged = await anyone.get("/sign-in/not-a-token")
        assert (forged.status_code, forged.headers["x-error-code"]) == (400, "link_invalid")
        other_key = Tokens("another-secret", sign_in_ttl=900, session_ttl=60).sign_in(ADMIN_EMAIL)
        assert (await anyone.get(f"/sign-in/{other_key}")).status_code == 400
        # an unknown address gets the same answer as a known one, and no mail
        form = await anyone.get("/sign-in")
        before = len(stack.smtp.accepted())
        asked = await anyone.post(
            "/sign-in", data={"email": "nobody@example.com", "csrf": csrf_of(form.text)}
        )
        assert asked.status_code == 200
        assert "Check your email" in asked.text
        # at most 3 links per address per 15 minutes (CONSOLE_SIGN_IN_PER_EMAIL), known or not
        token = csrf_of(form.text)
        more = [
            await anyone.post("/sign-in", data={"email": "nobody@example.com", "csrf": token})
            for _ in range(3)
        ]
        assert [answer.status_code for answer in more] == [200, 200, 429]
        assert more[-1].headers["x-error-code"] == "too_many_sign_in_requests"
        assert 240 <= int(more[-1].headers["retry-after"]) <= 300  # one link back per 300 s
        no_form_token = await anyone.post("/sign-in", data={"email": "maria@example.com"})
        assert no_form_token.status_code == 403
        assert len(stack.smtp.accepted()) == before

    async def counted() -> bool:
        async with httpx.AsyncClient() as http:
            body = (await http.get(f"{stack.url}/metrics")).text
        return (
            'churnwatch_console_sign_ins_total{outcome="expired"} 1.0' in body
            and 'churnwatch_console_sign_in_limited_total{scope="email"} 1.0' in body
        )

    await eventually(counted, what="the expired link and the refused request counted")
