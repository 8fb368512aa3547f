"""Slack interactivity and feedback, end to end against the real database, the Slack-compatible
sink (Web API: chat.postMessage, chat.update) and the real SMTP sink: a signed click on a
delivered message acts and the message is rewritten in place; forged and stale requests are
refused; feedback from Slack, an email link and the API is counted per rule."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from churnwatch import files
from churnwatch.cli import export_feedback
from churnwatch.client import Client, Endpoints
from devstack.sinks import ReceivedMail, SlackSink, SmtpSink, block_actions, signed_interaction
from services.alerts import interactions, links, store
from services.alerts.lifecycle import Alert
from shared.auth import ApiKeys, digest, new_key
from tests.integration.alerts.support import (
    SECRET,
    T0,
    Harness,
    account,
    change,
    person,
)

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
ADMIN = new_key()
KEYS = ApiKeys.from_json(
    json.dumps([{"name": "ops", "sha256": digest(ADMIN), "scopes": ["read", "admin"]}])
)
AT = T0 - timedelta(minutes=18)  # 09:42 UTC = 10:42 in Madrid


@pytest.fixture
async def client(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    harness.band_only()
    harness.clock.advance(AT - harness.clock.now())
    app = harness.api_app(KEYS)
    interactions.install(app, SIGNING_SECRET, harness.clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://alerts"
    ) as http:
        yield http


async def deliver(
    harness: Harness, http: httpx.AsyncClient, slack: SlackSink, smtp: SmtpSink | None = None
) -> None:
    """Send every due outbox row (updates wait for the ones before them)."""
    worker = harness.worker(http, slack, smtp, interactive=True)
    for _ in range(20):
        if not await worker.run_once():
            return
    raise AssertionError("the outbox did not settle")


async def fire(harness: Harness) -> None:
    maria = msgspec.structs.replace(
        person("p_maria", slack="U_MARIA", tz="Europe/Madrid"), name="Maria Lopez"
    )
    await harness.feed(
        maria,
        person("p_sam", email="sam@example.com"),
        account("acme"),
        account("beta"),
        account("gamma", csm="p_sam"),
        *(
            change(a, AT, (80, "green"), (30, "red"))  # band_worsened, critical
            for a in ("acme", "beta", "gamma")
        ),
    )


async def alert_of(engine: AsyncEngine, account_id: str) -> Alert:
    async with engine.connect() as conn:
        [found] = (await store.load_open_alerts(conn, [account_id]))[account_id]
    return found


async def click(
    http: httpx.AsyncClient,
    slack: SlackSink,
    alert: Alert,
    action: str,
    *,
    user: str = "U_MARIA",
    timestamp: int,
    secret: str = SIGNING_SECRET,
) -> httpx.Response:
    [post] = [r for r in slack.delivered() if r.key and f":{alert.account_id}:" in r.key]
    channel = "D" + (post.channel or "")[1:]
    assert post.ts is not None
    payload = block_actions(channel, post.ts, action, str(alert.id), user_id=user)
    body, headers = signed_interaction(secret, payload, timestamp=timestamp)
    return await http.post("/v1/slack/interactions", content=body, headers=headers)


def buttons(blocks: list[dict[str, Any]]) -> list[str]:
    return [
        e["action_id"]
        for b in blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if "url" not in e
    ]


async def test_a_signed_click_acknowledges_and_the_message_is_updated_in_place(
    harness: Harness, client: httpx.AsyncClient, slack: SlackSink, http: httpx.AsyncClient
) -> None:
    await fire(harness)
    await deliver(harness, http, slack)
    acme = await alert_of(harness.engine, "acme")
    [post] = [r for r in slack.delivered() if r.key and ":acme:" in r.key]
    assert post.channel == "U_MARIA"
    assert {"ack", "snooze_1d", "feedback_useful"} <= set(buttons(post.body["blocks"]))
    posts = len(slack.delivered())
    now = int(harness.clock.now().timestamp())

    answer = await click(client, slack, acme, "ack", timestamp=now)

    assert answer.status_code == 200, answer.text
    after = await alert_of(harness.engine, "acme")
    assert (after.state, after.acknowledged_by) == ("acknowledged", "slack:p_maria")
    assert slack.updates() == []  # the update is an outbox row, delivered by the workers
    await deliver(harness, http, slack)
    [update] = slack.updates()
    assert update.channel == "D_MARIA"  # the DM channel Slack answered, not the user id
    assert update.body["ts"] == post.ts
    assert "✅ Acknowledged by Maria Lopez, 10:42" in update.text
    current = slack.messages[("D_MARIA", str(post.ts))]
    assert current["blocks"][1]["type"] == "context"
    assert "ack" not in buttons(current["blocks"])
    assert "snooze_1d" in buttons(current["blocks"])
    assert len(slack.delivered()) == posts  # nothing new was posted: it changed in place


async def test_a_snooze_click_and_an_unknown_slack_user(
    harness: Harness, client: httpx.AsyncClient, slack: SlackSink, http: httpx.AsyncClient
) -> None:
    await fire(harness)
    await deliver(harness, http, slack)
    beta = await alert_of(harness.engine, "beta")
    now = int(harness.clock.now().timestamp())
    answer = await click(client, slack, beta, "snooze_1d", user="U_STRANGER", timestamp=now)
    assert answer.status_code == 200, answer.text
    after = await alert_of(harness.engine, "beta")
    assert (after.state, after.acknowledged_by) == ("snoozed", "slack:U_STRANGER")
    assert after.snoozed_until == AT + timedelta(days=1)
    await deliver(harness, http, slack)
    [update] = slack.updates()
    assert "💤 Snoozed by <@U_STRANGER> until" in update.text


async def test_forged_and_stale_requests_are_refused_and_change_nothing(
    harness: Harness, client: httpx.AsyncClient, slack: SlackSink, http: httpx.AsyncClient
) -> None:
    await fire(harness)
    await deliver(harness, http, slack)
    acme = await alert_of(harness.engine, "acme")
    now = int(harness.clock.now().timestamp())
    limit = interactions.MAX_REQUEST_AGE_SECONDS

    forged = await click(client, slack, acme, "ack", timestamp=now, secret="not-the-secret")
    stale = await click(client, slack, acme, "ack", timestamp=now - limit - 1)
    future = await click(client, slack, acme, "ack", timestamp=now + limit + 1)
    unsigned = await client.post("/v1/slack/interactions", content=b"payload=%7B%7D", headers={})

    assert (forged.status_code, forged.json()["code"]) == (401, "slack_signature_invalid")
    assert (stale.status_code, stale.json()["code"]) == (401, "slack_request_stale")
    assert (future.status_code, future.json()["code"]) == (401, "slack_request_stale")
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "slack_signature_invalid")
    assert (await alert_of(harness.engine, "acme")).state == "firing"
    # at the edge: exactly five minutes old is still accepted
    edge = await click(client, slack, acme, "ack", timestamp=now - limit)
    assert edge.status_code == 200, edge.text
    assert (await alert_of(harness.engine, "acme")).state == "acknowledged"


async def test_a_signed_but_malformed_request_is_a_422_naming_the_field(
    harness: Harness, client: httpx.AsyncClient
) -> None:
    now = int(harness.clock.now().timestamp())
    bad = block_actions("D_MARIA", "1.1", "ack", "twelve", user_id="U_MARIA")
    body, headers = signed_interaction(SIGNING_SECRET, bad, timestamp=now)
    answer = await client.post("/v1/slack/interactions", content=body, headers=headers)
    assert answer.status_code == 422, answer.text
    [item] = answer.json()["errors"]
    assert item["where"] == "body.payload.actions.0.value"
    # the body limit, at its edge (read before the signature is checked)
    limit = interactions.MAX_BODY_BYTES
    at_limit = await client.post("/v1/slack/interactions", content=b"x" * limit, headers=headers)
    assert (at_limit.status_code, at_limit.json()["code"]) == (401, "slack_signature_invalid")
    over = await client.post("/v1/slack/interactions", content=b"x" * (limit + 1), headers=headers)
    assert (over.status_code, over.json()["code"]) == (413, "body_too_large")
    # a URL button (Open brief) is not ours: accepted and ignored
    brief = block_actions("D_MARIA", "1.1", "open_brief", "", user_id="U_MARIA")
    body, headers = signed_interaction(SIGNING_SECRET, brief, timestamp=now)
    assert (await client.post("/v1/slack/interactions", content=body, headers=headers)).is_success


async def test_feedback_from_slack_email_and_the_api_is_counted_per_rule(
    harness: Harness,
    client: httpx.AsyncClient,
    slack: SlackSink,
    smtp: SmtpSink,
    http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    await fire(harness)
    await deliver(harness, http, slack, smtp)
    acme, beta, gamma = [await alert_of(harness.engine, a) for a in ("acme", "beta", "gamma")]
    before = {source: counted(verdict, source) for source, verdict in SOURCES}
    now = int(harness.clock.now().timestamp())

    # Slack: a button
    assert (await click(client, slack, acme, "feedback_useful", timestamp=now)).is_success
    # email: the signed one-click link in the message Sam received (GET shows, POST acts)
    [mail] = smtp.accepted()
    link = feedback_link(mail, "feedback_not_useful", harness)
    assert (await client.get(link)).status_code == 200
    assert (await client.post(link)).status_code == 200
    assert (await client.post(link)).status_code == 409  # a link acts once
    # the API, with a bad verdict first
    path = f"/v1/alerts/{beta.id}/feedback"
    admin = {"X-API-Key": ADMIN}
    bad = await client.post(path, json={"verdict": "great"}, headers=admin)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["where"] == "body.verdict"
    assert (await client.post(path, json={"verdict": "known"})).status_code == 401
    good = await client.post(path, json={"verdict": "known"}, headers=admin)
    assert good.status_code == 200, good.text
    assert [f["given_by"] for f in good.json()["feedback"]] == ["api:ops"]

    figures = await client.get("/v1/rules/feedback", headers=admin)
    [rule] = figures.json()["rules"]
    assert rule == {
        "rule": "band_worsened",
        "judged": 3,
        "useful": 1,
        "not_useful": 1,
        "known": 1,
        "precision": round(2 / 3, 4),
        "usefulness": round(1 / 3, 4),
    }
    given = (await client.get("/v1/feedback", headers=admin)).json()["feedback"]
    assert {(f["account_id"], f["source"], f["verdict"]) for f in given} == {
        ("acme", "slack", "useful"),
        ("gamma", "email", "not_useful"),
        ("beta", "api", "known"),
    }
    for source, verdict in SOURCES:
        assert counted(verdict, source) == before[source] + 1
    await harness.scheduler().refresh_metrics()  # the database-derived gauges
    precision = REGISTRY.get_sample_value(
        "churnwatch_alerts_rule_precision", {"rule": "band_worsened"}
    )
    assert precision == pytest.approx(2 / 3)
    missing = await client.post(
        "/v1/alerts/999999/feedback", json={"verdict": "known"}, headers=admin
    )
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    # the Slack messages show it: acme's (Slack) and beta's (API) were rewritten
    await deliver(harness, http, slack)
    texts = {u.body["ts"]: u.text for u in slack.updates()}
    assert any("👍 useful (Maria Lopez)" in t for t in texts.values())
    assert any("🤷 already known (ops)" in t for t in texts.values())
    # the CLI exports them as labels for backtest --feedback
    endpoints = Endpoints(api_key=ADMIN, urls={"alerts": "http://alerts"})
    out = tmp_path / "feedback.csv"
    assert await export_feedback(Client(client, endpoints), out, None) == 3
    exported = files.read_feedback(out)
    assert {(v.alert_id, v.verdict, v.source) for v in exported} == {
        (acme.id, "useful", "slack"),
        (gamma.id, "not_useful", "email"),
        (beta.id, "known", "api"),
    }


SOURCES = (("slack", "useful"), ("email", "not_useful"), ("api", "known"))


def counted(verdict: str, source: str) -> float:
    labels = {"rule": "band_worsened", "verdict": verdict, "source": source}
    value = REGISTRY.get_sample_value("churnwatch_alerts_feedback_total", labels)
    return value or 0.0


def feedback_link(mail: ReceivedMail, action: str, harness: Harness) -> str:
    """The link of ``action`` among the one-click links of an email (its text part)."""
    part = mail.message.get_body(("plain",))
    assert part is not None
    text = str(part.get_content())
    signer = links.LinkSigner(SECRET)
    for url in re.findall(r"http://alerts\.invalid/links/[\w\-]+\.[\w\-]+", text):
        token = str(url).rsplit("/", 1)[1]
        if signer.verify(token, harness.clock.now()).action == action:
            return f"/links/{token}"
    raise AssertionError(f"no {action} link in the email")
