"""How often sign-in links may be asked for: per email address, per client address, at the
edges, with a fixed clock; the same answer for a known and an unknown address."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from starlette.requests import Request

from services.console.app import build_app
from services.console.limits import SignInLimits, client_address, email_tag
from services.console.settings import ConsoleSettings
from shared.clock import FixedClock
from shared.ops import Draining
from tests.unit.console.test_pages import Fake

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_the_third_link_is_allowed_the_fourth_refused_and_after_the_window_again() -> None:
    limits = SignInLimits(per_email=3, per_client=20, window_seconds=900)
    assert [limits.email("maria@example.com", 0.0) for _ in range(3)] == [None] * 3
    refused = limits.email("maria@example.com", 0.0)
    assert refused is not None
    assert (refused.scope, refused.retry_after) == ("email", 300)  # one link per 900 / 3 s
    assert limits.email("james@example.com", 0.0) is None  # each address its own budget
    assert limits.email("maria@example.com", 299.0) is not None
    assert limits.email("maria@example.com", 300.0) is None  # one back after window / 3
    later = 300.0 + 900  # a whole window idle: the full budget again, and no more
    assert [limits.email("maria@example.com", later) is None for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]


def test_a_client_may_ask_for_20_links_per_window() -> None:
    limits = SignInLimits(per_email=3, per_client=20, window_seconds=900)
    assert all(limits.client("10.1.2.3", 0.0) is None for _ in range(20))
    refused = limits.client("10.1.2.3", 0.0)
    assert refused is not None
    assert (refused.scope, refused.retry_after) == ("client", 45)
    assert limits.client("10.9.9.9", 0.0) is None


@pytest.mark.parametrize(
    "bad",
    [{"sign_in_per_email": 0}, {"sign_in_per_client": 0}, {"sign_in_window_seconds": 59}],
)
def test_settings_refuse_limits_out_of_range(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="sign_in_"):
        ConsoleSettings(local_dev=True, **bad)


def test_the_log_tag_of_an_address_is_not_the_address() -> None:
    tag = email_tag("maria@example.com")
    assert len(tag) == 12
    assert "maria" not in tag
    assert tag == email_tag("maria@example.com")


def test_the_client_is_the_proxys_last_forwarded_address_only_from_a_trusted_proxy() -> None:
    def request(peer: str, forwarded: str) -> Request:
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        return Request({"type": "http", "client": (peer, 1), "headers": headers})

    proxies = (ipaddress.ip_network("10.0.0.0/8"),)
    assert client_address(request("10.0.0.5", "1.1.1.1, 2.2.2.2"), proxies) == "2.2.2.2"
    assert client_address(request("8.8.8.8", "2.2.2.2"), proxies) == "8.8.8.8"
    assert client_address(request("10.0.0.5", ""), proxies) == "10.0.0.5"
    assert client_address(request("10.0.0.5", "2.2.2.2"), ()) == "10.0.0.5"


@pytest.fixture
async def console() -> AsyncIterator[tuple[httpx.AsyncClient, FixedClock]]:
    config = ConsoleSettings(
        local_dev=True, public_url="http://console", secret_key="k" * 32, sign_in_per_client=8
    )
    app: FastAPI = build_app(config, Draining(), transport=httpx.MockTransport(Fake()))
    clock = FixedClock(START)
    app.state.console = dataclasses.replace(app.state.console, clock=clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("10.1.2.3", 5555)),
        base_url="http://console",
    ) as client:
        yield client, clock


async def ask(client: httpx.AsyncClient, email: str) -> httpx.Response:
    form = await client.get("/sign-in")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    return await client.post("/sign-in", data={"email": email, "csrf": token.group(1)})


def limited(scope: str) -> float:
    value: Any = REGISTRY.get_sample_value(
        "churnwatch_console_sign_in_limited_total", {"scope": scope}
    )
    return float(value or 0.0)


async def test_past_the_limit_429_with_retry_after_for_known_and_unknown_alike(
    console: tuple[httpx.AsyncClient, FixedClock], caplog: pytest.LogCaptureFixture
) -> None:
    client, clock = console
    before = limited("email")
    for email in ("maria@example.com", "nobody@example.com"):
        answers = [await ask(client, email) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert all("Check your email" in a.text for a in answers)
        refused = await ask(client, email)
        assert refused.status_code == 429
        assert refused.headers["x-error-code"] == "too_many_sign_in_requests"
        assert refused.headers["retry-after"] == "300"
        assert "try again in about 5 minutes" in refused.text
    assert limited("email") == before + 2
    logged = [r for r in caplog.records if r.getMessage() == "sign-in requests limited"]
    assert [r.__dict__["email_sha256"] for r in logged] == [
        email_tag("maria@example.com"),
        email_tag("nobody@example.com"),
    ]
    assert all("maria@" not in str(r.__dict__) for r in logged)
    clock.advance(timedelta(seconds=900))
    assert (await ask(client, "maria@example.com")).status_code == 200


async def test_one_client_asking_for_many_addresses_is_refused_past_its_limit(
    console: tuple[httpx.AsyncClient, FixedClock],
) -> None:
    client, _ = console
    before = limited("client")
    answers = [await ask(client, f"p{i}@example.com") for i in range(9)]
    assert [a.status_code for a in answers] == [200] * 8 + [429]
    assert answers[-1].headers["retry-after"] == "113"  # 900 / 8 = 112.5 s, rounded up
    assert limited("client") == before + 1
