"""What a person gets: alerts and a digest delivered through the Slack-compatible sink and a
real SMTP server carry the decision (rule names in words, ARR, tier, renewal and days left,
what moved the score with its evidence, severity in the subject), and every link in them opens
in a browser — a plain GET with ``Accept: text/html`` and no API key answers 200."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.sinks import SlackSink, SmtpSink
from services.alerts.delivery import DeliveryWorker
from shared.auth import ApiKeys
from shared.clock import FixedClock
from shared.events import AccountRecord, AccountTeam, ComponentMove, HealthChange
from tests.integration.alerts.support import (
    T0,
    Harness,
    change,
    delivery_config,
    make_config,
    notifiers,
    person,
)
from tests.integration.alerts.test_delivery import drain

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
URL = re.compile(r"https?://[^\s\"'<>|)]+")


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


@pytest.fixture
async def served(
    engine: AsyncEngine, listening: socket.socket
) -> AsyncIterator[tuple[Harness, str]]:
    """The alerts API on a real port, its links pointing at it; no API key works on it."""
    base = f"http://127.0.0.1:{listening.getsockname()[1]}"
    config = make_config()
    config = replace(config, content=replace(config.content, public_url=base))
    harness = Harness(engine, config, FixedClock(T0))
    app = harness.api_app(ApiKeys.from_json("[]"))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        yield harness, base
    finally:
        server.should_exit = True
        await task


def acme() -> AccountRecord:
    return AccountRecord(
        account_id="acme",
        name="Acme Corp",
        tier="enterprise",
        arr=120_000,
        seats=250,
        renewal_date=date(2027, 1, 15),
        team=AccountTeam(csm="p_maria", renewal_owner="p_aisha"),
        updated_at=T0 - timedelta(days=10),
        source="test",
    )


def red_change() -> HealthChange:
    health = change("acme", T0, (72, "green"), (31, "red"), days_since_activity=6)
    health.moved_by = [
        ComponentMove(
            name="activity",
            delta_points=-27.0,
            evidence=["weekly active users 12 → 4", "active days per week 5 → 2"],
        ),
        ComponentMove(
            name="support",
            delta_points=-14.0,
            evidence=["3 high/urgent tickets open: #4512, #4519, #4533"],
        ),
    ]
    return health


def urls_in(value: Any) -> list[str]:
    """Every http(s) URL in a JSON value (Block Kit ``url`` fields and mrkdwn ``<url|text>``)."""
    return URL.findall(json.dumps(value, ensure_ascii=False))


def mail_parts(smtp: SmtpSink) -> list[tuple[str, str, str]]:
    """(subject, text, html) of each accepted mail."""
    found = []
    for mail in smtp.accepted():
        message = mail.message
        text, html = message.get_body(("plain",)), message.get_body(("html",))
        assert text is not None
        assert html is not None
        found.append((str(message["Subject"]), text.get_content(), html.get_content()))
    return found


async def deliver(
    harness: Harness, http: httpx.AsyncClient, slack: SlackSink, smtp: SmtpSink
) -> None:
    worker = DeliveryWorker(
        harness.engine, notifiers(http, slack, smtp), delivery_config(), name="w1"
    )
    await drain(harness.engine, [worker])


def counted(outcome: str) -> float:
    value = REGISTRY.get_sample_value("churnwatch_alerts_brief_pages_total", {"outcome": outcome})
    return value or 0.0


async def test_every_link_in_delivered_alerts_and_digests_opens_in_a_browser(
    served: tuple[Harness, str], slack: SlackSink, smtp: SmtpSink, http: httpx.AsyncClient
) -> None:
    harness, base = served
    await harness.feed(
        person("p_maria", slack="U_MARIA"),  # Slack
        person("p_aisha", email="aisha@example.com"),  # email
        acme(),
        red_change(),
    )
    await deliver(harness, http, slack, smtp)
    # the next morning's digests (09:00 UTC), to both
    await harness.scheduler().send_digests(T0 + timedelta(hours=23))
    await deliver(harness, http, slack, smtp)

    posted = [r.body for r in slack.delivered()]
    mails = mail_parts(smtp)
    assert len(posted) == 2  # Maria: the alert, then her digest
    assert len(mails) == 2  # Aisha: the same
    shown = {k: posted[0][k] for k in ("text", "blocks")}  # what a person sees
    alert_slack, alert_mail = json.dumps(shown, ensure_ascii=False), mails[0]

    # the decision is in the messages, in words (Maria, the CSM, also gets the band alert)
    assert "Health fell into a worse band" in alert_slack
    for body in (alert_slack, alert_mail[1], alert_mail[2]):
        for fact in (
            "Renewal at risk",
            "$120k",
            "enterprise",
            "2027-01-15 (in 53 days)",
            "72 (green) → 31 (red)",
            "Activity −27.0 points: weekly active users 12 → 4; active days per week 5 → 2",
            "Support tickets −14.0 points: 3 high/urgent tickets open: #4512, #4519, #4533",
        ):
            assert fact in body, fact
        assert "band_worsened" not in body
        assert "renewal_at_risk" not in body
    assert alert_mail[0].startswith("[churnwatch] Critical: Acme Corp — ")
    digest_mail = mails[1][1]
    assert "ARR $120k, enterprise, renews 2027-01-15 (in 52 days)" in digest_mail
    assert "Activity −27.0 points: weekly active users 12 → 4" in digest_mail

    # every link, from every message, opens for a person in a browser
    links = sorted(
        {u for body in posted for u in urls_in(body)}
        | {u for _, text, html in mails for u in URL.findall(text) + URL.findall(html)}
    )
    assert all(u.startswith(base) for u in links), links
    kinds = {re.sub(r"/[^/]+$", "", u.removeprefix(base)) for u in links}
    assert kinds == {"/brief", "/links"}
    assert len([u for u in links if "/brief/" in u]) >= 4  # alert + digest, Slack + email
    served_before = counted("served")
    async with httpx.AsyncClient(timeout=5) as browser:
        for url in links:
            page = await browser.get(url, headers=BROWSER)
            assert page.status_code == 200, (url, page.status_code, page.text[:300])
            assert page.headers["content-type"].startswith("text/html")
        brief = await browser.get(next(u for u in links if "/brief/" in u), headers=BROWSER)
    assert counted("served") - served_before >= 5
    for fact in (
        "Acme Corp",
        "$120k",
        "enterprise",
        "2027-01-15 (in 53 days)",
        "Maria",
        "Aisha",
        "weekly active users 12 → 4",
        "Renewal at risk",
        "critical",
    ):
        assert fact in brief.text, fact


async def test_a_forged_or_expired_brief_link_gets_a_clear_page_and_is_counted(
    served: tuple[Harness, str], slack: SlackSink, smtp: SmtpSink, http: httpx.AsyncClient
) -> None:
    harness, base = served
    url = harness.config.content.brief_url("acme", "p_maria", T0)
    token = url.rsplit("/", 1)[1]
    forged = f"{base}/brief/{token[:-2]}{'AA' if not token.endswith('AA') else 'BB'}"
    before = {o: counted(o) for o in ("link_invalid", "link_expired", "unknown_account")}
    async with httpx.AsyncClient(timeout=5) as browser:
        unknown = await browser.get(url, headers=BROWSER)  # signed, but no such account yet
        bad = await browser.get(forged, headers=BROWSER)
        harness.clock.advance(timedelta(days=7))
        expired = await browser.get(url, headers=BROWSER)
        harness.clock.advance(-timedelta(days=7))
        action = await browser.post(url)  # the brief never acts
    assert (unknown.status_code, unknown.headers["x-error-code"]) == (404, "unknown_account")
    assert (bad.status_code, bad.headers["x-error-code"]) == (403, "link_invalid")
    assert (expired.status_code, expired.headers["x-error-code"]) == (410, "link_expired")
    assert "This link cannot be used" in bad.text
    assert "expired" in expired.text
    assert action.status_code == 405
    assert {o: counted(o) - n for o, n in before.items()} == {
        "link_invalid": 1,
        "link_expired": 1,
        "unknown_account": 1,
    }
