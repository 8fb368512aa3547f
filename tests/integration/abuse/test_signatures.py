"""Forged, altered, expired and replayed signatures are refused — Zendesk webhook signatures
(ingest) and one-click links (alerts) — and what a replay is allowed to do, it does once."""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from chaos.observe import fetch, lag
from chaos.stack import Deployment
from services.alerts import links
from services.ingest import zendesk
from shared import events
from shared.kafka import make_producer
from tests.integration.abuse.conftest import code_of
from tests.integration.alerts.support import account, change, person
from tests.support import eventually

# -- Zendesk ---------------------------------------------------------------------------------


def delivery(event_id: str) -> bytes:
    """A ticket created in organization 9001 (the deployment maps it to acct-000)."""
    return json.dumps(
        {
            "type": "zen:event-type:ticket.created",
            "id": event_id,
            "time": datetime.now(UTC).isoformat(),
            "subject": "zen:ticket:77",
            "detail": {"id": "77", "organization_id": "9001", "priority": "HIGH", "status": "NEW"},
        }
    ).encode()


def headers(
    deployment: Deployment, body: bytes, *, at: datetime | None = None, secret: str | None = None
) -> dict[str, str]:
    timestamp = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    key = (secret or deployment.secrets.zendesk_signing_secret).encode()
    return {
        "Authorization": f"Bearer {deployment.secrets.keys['webhooks']}",
        "Content-Type": "application/json",
        zendesk.SIGNATURE_HEADER: zendesk.signature(key, timestamp, body),
        zendesk.TIMESTAMP_HEADER: timestamp,
    }


async def test_zendesk_deliveries_forged_altered_stale_or_unsigned_are_refused(
    deployment: Deployment, http: httpx.AsyncClient
) -> None:
    url = deployment.service("ingest").url + "/v1/webhooks/zendesk"
    body = delivery(str(uuid.uuid4()))
    now = datetime.now(UTC)
    cases = {
        "signed with another secret": (body, headers(deployment, body, secret="not-the-secret")),
        "altered after signing": (
            body.replace(b"HIGH", b"LOW"),
            headers(deployment, body),
        ),
        "replayed 10 minutes later": (
            body,
            headers(deployment, body, at=now - timedelta(minutes=10)),
        ),
        "dated 10 minutes ahead": (body, headers(deployment, body, at=now + timedelta(minutes=10))),
        "unsigned": (
            body,
            {k: v for k, v in headers(deployment, body).items() if not k.startswith("x-zendesk")},
        ),
    }
    expected = {
        "signed with another secret": "invalid_signature",
        "altered after signing": "invalid_signature",
        "replayed 10 minutes later": "stale_signature",
        "dated 10 minutes ahead": "stale_signature",
        "unsigned": "missing_signature",
    }
    for name, (content, sent) in cases.items():
        answer = await http.post(url, content=content, headers=sent)
        assert (answer.status_code, code_of(answer)) == (401, expected[name]), name


async def test_a_zendesk_delivery_replayed_in_its_window_is_counted_once(
    deployment: Deployment, http: httpx.AsyncClient
) -> None:
    """Inside the signature's window a replay is indistinguishable from Zendesk's own
    redelivery: it is accepted, and the event id (Zendesk's) makes scoring count it once."""
    url = deployment.service("ingest").url + "/v1/webhooks/zendesk"
    body = delivery(str(uuid.uuid4()))
    sent = headers(deployment, body)
    answers = [await http.post(url, content=body, headers=sent) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 202]

    async def consumed() -> bool:  # every copy on the topic has been through scoring
        topic = deployment.topics.tickets
        return await lag(deployment.kafka_settings, deployment.scoring_group, [topic]) == 0

    await eventually(consumed, timeout_s=60, what="scoring caught up on the tickets")
    [row] = await fetch(
        deployment.dsn,
        "SELECT sum(tickets_opened) AS n FROM scoring.account_days WHERE account_id = $1",
        "acct-000",
    )
    assert row["n"] == 1


# -- one-click links ---------------------------------------------------------------------------


def payload_of(token: str) -> dict[str, Any]:
    part = token.split(".", 1)[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


async def alert_links(deployment: Deployment, account_id: str) -> dict[str, str]:
    """Raise a critical alert for ``account_id`` (a health change on the topic) and return
    the one-click links of the Slack message it produced, by action."""
    producer = make_producer(deployment.kafka_settings)
    await producer.start()
    topics = deployment.topics
    try:
        owner = f"p_{account_id}"
        for topic, key, message in (
            (topics.people, owner, person(owner, slack=f"U_{account_id}")),
            (topics.accounts, account_id, account(account_id, csm=owner)),
            (
                topics.health,
                account_id,
                change(account_id, datetime.now(UTC), (80, "green"), (30, "red")),
            ),
        ):
            await producer.send_and_wait(topic, events.encode(message), key=key.encode())
    finally:
        await producer.stop()
    slack = deployment.slack
    assert slack is not None

    async def sent_links() -> dict[str, str]:
        for request in slack.requests:
            if request.channel == f"U_{account_id}":
                found = re.findall(
                    r"/links/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)", json.dumps(request.body)
                )
                return {payload_of(t)["a"]: t for t in found}
        return {}

    return await eventually(sent_links, timeout_s=60, what=f"the Slack message about {account_id}")


async def test_links_forged_altered_expired_or_replayed_act_on_nothing(
    deployment: Deployment, http: httpx.AsyncClient
) -> None:
    alerts = deployment.service("alerts").url
    read = {"Authorization": f"Bearer {deployment.secrets.keys['read']}"}
    mine = await alert_links(deployment, "links-a")
    theirs = await alert_links(deployment, "links-b")
    ack = mine["ack"]
    alert_id = payload_of(ack)["i"][0]  # the message's alerts (every rule the change fired)
    other_id = payload_of(theirs["ack"])["i"][0]

    async def state(number: int) -> dict[str, Any]:
        answer: dict[str, Any] = (
            await http.get(f"{alerts}/v1/alerts/{number}", headers=read)
        ).json()
        return answer

    payload, signature = ack.split(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    altered = (
        base64.urlsafe_b64encode(
            json.dumps(payload_of(ack) | {"i": [other_id]}, separators=(",", ":")).encode()
        )
        .rstrip(b"=")
        .decode()
    )
    secret = deployment.secrets.link_signing_secret
    now = datetime.now(UTC)
    expired = links.LinkSigner(secret).sign(
        links.Link("ack", "links-a", (alert_id,), "p_links-a", now - timedelta(minutes=1)),
    )
    foreign = links.LinkSigner("a-secret-we-never-configured").sign(
        links.Link("ack", "links-a", (alert_id,), "p_links-a", now + timedelta(days=1))
    )
    cross_account = links.LinkSigner(secret).sign(
        links.Link("ack", "links-a", (other_id,), "p_links-a", now + timedelta(days=1))
    )
    refused = {
        "a flipped signature": (f"{payload}.{flipped}", 403, "link_invalid"),
        "an altered payload": (f"{altered}.{signature}", 403, "link_invalid"),
        "another key": (foreign, 403, "link_invalid"),
        "garbage": ("not-a-token", 403, "link_invalid"),
        "expired": (expired, 410, "link_expired"),
    }
    for name, (token, status, code) in refused.items():
        for method in ("GET", "POST"):
            answer = await http.request(method, f"{alerts}/links/{token}")
            assert (answer.status_code, answer.headers.get("x-error-code")) == (status, code), name
    assert (await state(alert_id))["state"] == "firing"

    page = await http.get(f"{alerts}/links/{ack}")  # a preview or a mail scanner
    assert page.status_code == 200
    assert (await state(alert_id))["state"] == "firing"

    # Signed with the real key but naming another account's alert: that alert is left alone.
    await http.post(f"{alerts}/links/{cross_account}")
    assert (await state(other_id))["state"] == "firing"

    first = await http.post(f"{alerts}/links/{ack}", headers={"Accept": "application/json"})
    assert first.status_code == 200
    acknowledged = await state(alert_id)
    assert (acknowledged["state"], acknowledged["acknowledged_by"]) == (
        "acknowledged",
        "link:p_links-a",
    )
    again = await http.post(f"{alerts}/links/{ack}", headers={"Accept": "application/json"})
    assert (again.status_code, again.headers.get("x-error-code")) == (409, "link_used")
    # The same link spelled differently (a base64 last character's unused bits) is not a new
    # link: before issue 9 it acted a second time.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelled = ack[:-1] + alphabet[alphabet.index(ack[-1]) ^ 1]
    other = await http.post(f"{alerts}/links/{respelled}")
    assert (other.status_code, other.headers.get("x-error-code")) == (403, "link_invalid")
    assert (await state(alert_id))["acknowledged_at"] == acknowledged["acknowledged_at"]

    # The snooze link of the same message still acts — once; replayed, it cannot keep the
    # alert snoozed.
    snooze = await http.post(f"{alerts}/links/{mine['snooze_1d']}")
    assert snooze.status_code == 200
    snoozed_until = (await state(alert_id))["snoozed_until"]
    replayed = await http.post(f"{alerts}/links/{mine['snooze_1d']}")
    assert (replayed.status_code, replayed.headers.get("x-error-code")) == (409, "link_used")
    assert (await state(alert_id))["snoozed_until"] == snoozed_until
