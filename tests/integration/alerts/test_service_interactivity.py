"""Slack interactivity with the alerts service run for real (``python -m services.alerts``)
against the real Kafka and PostgreSQL, the Slack-compatible sink and the SMTP sink: a health
change posts a message with real buttons; a forged and a stale click are refused; a signed
click acknowledges the alert and the message is rewritten in place (``chat.update``)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import httpx
import msgspec

from devstack.sinks import SlackRequest, SlackSink, block_actions, signed_interaction
from tests.integration.alerts.support import account, change, person
from tests.integration.alerts.test_service import (
    ADMIN_KEY,
    Stack,
    metric,
    producer,
    stack,
)
from tests.support import eventually

__all__ = ["producer", "stack"]  # the fixtures, shared with test_service

SIGNING_SECRET = "e2e-slack-signing-secret-0123456789"


def action(posted: SlackRequest, action_id: str) -> dict[str, str]:
    for block in posted.body["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return dict(element)
    raise AssertionError(f"no {action_id!r} button in {posted.body['blocks']}")


async def test_a_signed_click_on_the_real_service_acknowledges_and_rewrites_the_message(
    stack: Stack, slack: SlackSink
) -> None:
    maria = msgspec.structs.replace(
        person("p_maria", slack="U_MARIA", tz="Europe/Madrid"), name="Maria Lopez"
    )
    red = change("acme", datetime.now(UTC), (80, "green"), (30, "red"))
    secret = {"ALERTS_SLACK_SIGNING_SECRET": SIGNING_SECRET}
    async with stack.service(**secret) as alerts:
        await stack.publish([maria, account("acme"), red])

        async def posted() -> list[SlackRequest]:
            return slack.delivered()

        [message] = await eventually(posted, what="the alert posted to Slack")
        ack = action(message, "ack")
        assert "url" not in ack  # a real button, handled by the interactivity endpoint
        assert message.ts is not None
        click = block_actions("D_MARIA", message.ts, "ack", ack["value"], user_id="U_MARIA")

        async with httpx.AsyncClient(base_url=alerts.url, timeout=10) as http:
            now = int(time.time())
            for secret_used, stamp, code in (
                ("forged-secret-0123456789", now, "slack_signature_invalid"),
                (SIGNING_SECRET, now - 301, "slack_request_stale"),
            ):
                body, headers = signed_interaction(secret_used, click, timestamp=stamp)
                refused = await http.post("/v1/slack/interactions", content=body, headers=headers)
                assert (refused.status_code, refused.json()["code"]) == (401, code)
            listed = await http.get("/v1/alerts", headers={"X-API-Key": ADMIN_KEY})
            assert {a["state"] for a in listed.json()["alerts"]} == {"firing"}

            # the sink clicks as Slack would (what `POST /_sink/click` does for a person)
            status, answer = await slack.click(
                message.ts,
                "ack",
                user_id="U_MARIA",
                url=f"{alerts.url}/v1/slack/interactions",
                signing_secret=SIGNING_SECRET,
            )
            assert status == 200, answer

            async def rewritten() -> list[SlackRequest]:
                return slack.updates()

            [update] = await eventually(rewritten, what="the message updated in place")
            assert (update.channel, update.body["ts"]) == ("D_MARIA", message.ts)
            assert re.search(r"✅ Acknowledged by Maria Lopez, \d\d:\d\d", update.text)
            assert "ack" not in [
                e.get("action_id") for b in update.body["blocks"] for e in b.get("elements", [])
            ]
            assert len(slack.delivered()) == 1  # nothing new was posted
            listed = await http.get("/v1/alerts", headers={"X-API-Key": ADMIN_KEY})
            acked = {(a["state"], a["acknowledged_by"]) for a in listed.json()["alerts"]}
            assert acked == {("acknowledged", "slack:p_maria")}  # every alert of the message

        interactions = "churnwatch_alerts_slack_interactions_total"
        for labels in (
            'action="ack",outcome="done"',
            'action="none",outcome="refused_forged"',
            'action="none",outcome="refused_stale"',
        ):
            assert await metric(alerts.url, f"{interactions}{{{labels}}}") == 1.0
