"""The HTTP client's retries (through ``httpx.MockTransport``, no network) and the driver's
pacing: nothing is sent before the clock reaches its time, and everything is sent."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from churnwatch.client import (
    Client,
    Endpoints,
    RetryPolicy,
    ServiceRefused,
    ServiceUnreachable,
    retry_delay,
)
from churnwatch.driver import Credentials, Driver
from churnwatch.simulator import simulate
from shared.clock import ScaledClock

ENDPOINTS = Endpoints(
    api_key="k", urls={"ingest": "http://ingest", "scoring": "http://s", "alerts": "http://a"}
)


def client_for(
    handler: Callable[[httpx.Request], httpx.Response], sleeps: list[float]
) -> tuple[Client, httpx.AsyncClient]:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return Client(http, ENDPOINTS, sleep=sleep), http


async def test_429_and_503_are_retried_honouring_retry_after() -> None:
    answers = [
        httpx.Response(429, headers={"Retry-After": "3"}, json={"code": "rate_limited"}),
        httpx.Response(503, headers={"Retry-After": "1"}, json={"code": "kafka_unavailable"}),
        httpx.Response(202, json={"accepted": 1, "rejected": []}),
    ]
    sleeps: list[float] = []
    client, http = client_for(lambda request: answers.pop(0), sleeps)
    async with http:
        response = await client.request("ingest", "POST", "/v1/events", content=b"[]")
    assert response.status_code == 202
    assert sleeps == [3.0, 1.0]
    assert client.retries == 2


async def test_other_errors_are_not_retried_and_carry_their_code() -> None:
    sleeps: list[float] = []
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(404, json={"code": "unknown_account", "message": "no"})

    client, http = client_for(handler, sleeps)
    async with http:
        with pytest.raises(ServiceRefused) as refused:
            await client.get_json("scoring", "/v1/accounts/x/health")
    assert (refused.value.status, refused.value.code) == (404, "unknown_account")
    assert len(calls) == 1
    assert calls[0].headers["authorization"] == "Bearer k"
    assert sleeps == []


async def test_no_answer_is_retried_a_few_times_then_reported_unreachable() -> None:
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client, http = client_for(handler, sleeps)
    async with http:
        with pytest.raises(ServiceUnreachable) as unreachable:
            await client.request("alerts", "GET", "/v1/alerts")
    assert "cannot reach alerts at http://a" in str(unreachable.value)
    assert len(sleeps) == RetryPolicy().unanswered_attempts - 1


def test_backoff_without_retry_after_grows_and_is_jittered() -> None:
    policy = RetryPolicy(initial_seconds=1, max_seconds=8)
    assert retry_delay(None, 1, policy, rng=lambda: 0.0) == 0.5
    assert retry_delay(None, 3, policy, rng=lambda: 1.0) == 4.0
    assert retry_delay(None, 10, policy, rng=lambda: 1.0) == 8.0


async def test_the_driver_sends_each_event_once_and_never_before_its_time() -> None:
    """A 30-day run at a clock fast enough to play it in well under a second: every request
    that reaches 'ingest' carries only events whose time the clock had reached."""
    simulation = simulate(3, accounts=12, days=30, start=date(2026, 7, 1), intensity=0.3)
    expected = sum(len(day.events) for day in simulation)
    records = sum(len(day.accounts) for day in simulation)  # day 0: all; later: changes
    speed = 30 * 86_400 / 0.6
    clock = ScaledClock(datetime(2026, 7, 1, tzinfo=UTC) - timedelta(hours=1), time.time(), speed)
    too_early: list[str] = []
    sent: list[str] = []

    def ingest(request: httpx.Request) -> httpx.Response:
        now = clock.now()
        body = json.loads(request.content)
        if request.url.path == "/v1/events":
            times = [(i["event_id"], i["occurred_at"]) for i in body]
        elif request.url.path == "/v1/batch":
            times = [(i["messageId"], i["timestamp"]) for i in body["batch"]]
        elif request.url.path == "/v1/webhooks/zendesk":
            times = [(body["id"], body["time"])]
        else:
            return httpx.Response(202, json={"accepted": len(body), "rejected": []})
        for event_id, at in times:
            sent.append(event_id)
            if datetime.fromisoformat(at) > now:
                too_early.append(event_id)
        return httpx.Response(202, json={"accepted": len(times), "rejected": []})

    async with httpx.AsyncClient(transport=httpx.MockTransport(ingest)) as http:
        driver = Driver(
            simulation,
            Client(http, ENDPOINTS),
            clock,
            Credentials("k", "secret"),
            tick_seconds=0.01,
        )
        counts = await driver.run()

    assert too_early == []
    assert len(sent) == len(set(sent)) == expected
    assert counts.total_accepted == expected
    assert counts.accepted["accounts"] == records > len(simulation.accounts)
