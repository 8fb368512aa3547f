"""The alerts service run for real (``python -m services.alerts``) against the real Kafka and
PostgreSQL, a Slack-compatible server and an SMTP server: a health change reaches its owner
once, the one-click links work from a plain HTTP client, and a worker killed mid-send is
handled as documented."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text

from devstack.sinks import Reply, SlackRequest, SlackSink, SmtpSink
from services.alerts.links import Link, LinkSigner
from shared import db
from shared.auth import digest, new_key
from shared.events import Topics, encode
from shared.kafka import make_producer
from shared.settings import KafkaSettings
from tests.integration.alerts.support import BOT_TOKEN, SECRET, account, addressed, change, person
from tests.support import ServiceProcess, eventually

ADMIN_KEY = new_key()


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    producer = make_producer(kafka_settings)
    await producer.start()
    yield producer
    await producer.stop()


async def publish(
    producer: AIOKafkaProducer, topics: Topics, messages: Sequence[msgspec.Struct]
) -> None:
    futures = []
    for message in messages:
        topic, key = addressed(topics, message)
        futures.append(await producer.send(topic, encode(message), key=key))
    for future in futures:
        await future


def service(
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    database_url: str,
    slack: SlackSink,
    smtp: SmtpSink,
    **extra: str,
) -> ServiceProcess:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.kafka_bootstrap_servers,
        "TOPIC_PREFIX": kafka_settings.topic_prefix,
        "DATABASE_URL": database_url,
        "API_KEYS": json.dumps(
            [{"name": "ops", "sha256": digest(ADMIN_KEY), "scopes": ["read", "admin"]}]
        ),
        "ALERTS_GROUP_WAIT_SECONDS": "0",
        "ALERTS_SLACK_BOT_TOKEN": BOT_TOKEN,
        "ALERTS_SLACK_API_URL": slack.api_url,
        "ALERTS_SMTP_HOST": smtp.host,
        "ALERTS_SMTP_PORT": str(smtp.port),
        "ALERTS_SMTP_SECURITY": "none",
        "ALERTS_LINK_SIGNING_SECRET": SECRET,
        "ALERTS_TEAM_SLACK_CHANNEL": "C_TEAM",
        "ALERTS_SLACK_TIMEOUT_SECONDS": "3",
        "ALERTS_SMTP_TIMEOUT_SECONDS": "3",
        "ALERTS_DELIVERY_LEASE_SECONDS": "5",
        "ALERTS_SHUTDOWN_DRAIN_SECONDS": "0.2",
        "ALERTS_METRICS_REFRESH_SECONDS": "0.5",
        "LOG_LEVEL": "INFO",
        **extra,
    }
    proc = ServiceProcess("alerts", env, tmp_path)
    proc.env["ALERTS_PUBLIC_URL"] = proc.url
    return proc


@dataclass
class Stack:
    """What a test of the real service needs: Kafka, the migrated database and the sinks."""

    tmp_path: Path
    kafka: KafkaSettings
    topics: Topics
    database_url: str
    producer: AIOKafkaProducer
    slack: SlackSink
    smtp: SmtpSink

    def service(self, **extra: str) -> ServiceProcess:
        """The alerts service on this stack (``extra``: more environment)."""
        return service(self.tmp_path, self.kafka, self.database_url, self.slack, self.smtp, **extra)

    async def publish(self, messages: Sequence[msgspec.Struct]) -> None:
        await publish(self.producer, self.topics, messages)


@pytest.fixture
def stack(
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    topics: Topics,
    migrated: str,
    producer: AIOKafkaProducer,
    slack: SlackSink,
    smtp: SmtpSink,
) -> Stack:
    return Stack(tmp_path, kafka_settings, topics, migrated, producer, slack, smtp)


def button(request: SlackRequest, label: str) -> str:
    for block in request.body["blocks"]:
        for element in block.get("elements", []):
            if element.get("type") == "button" and element["text"]["text"] == label:
                return str(element["url"])
    raise AssertionError(f"no {label!r} button in {request.body['blocks']}")


async def metric(url: str, line_start: str) -> float | None:
    async with httpx.AsyncClient() as client:
        body = (await client.get(f"{url}/metrics")).text
    for line in body.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_a_health_change_reaches_its_owner_once_and_the_ack_link_works(
    stack: Stack, slack: SlackSink
) -> None:
    now = datetime.now(UTC)
    red = change("acme", now, (80, "green"), (30, "red"))
    async with stack.service() as alerts:
        await stack.publish(
            [
                person("p_maria", slack="U_MARIA", email="maria@example.com", manager="p_grace"),
                account("acme"),
                red,
                red,  # redelivered: the same change_id
            ],
        )
        [posted] = await eventually(lambda: _delivered(slack), what="a Slack message")
        duplicates = 'churnwatch_alerts_health_changes_total{outcome="duplicate"}'
        await eventually(
            lambda: metric(alerts.url, duplicates), what="the duplicate change consumed"
        )
        assert len(slack.requests) == 1
        assert posted.channel == "U_MARIA"
        assert "Acme Inc" in posted.text
        assert "80 (green) → 30 (red)" in posted.text
        blocks = json.dumps(posted.body["blocks"], ensure_ascii=False)
        assert "Maria" in blocks
        assert "weekly active users down 62%" in blocks

        ack = button(posted, "Acknowledge")
        assert ack.startswith(f"{alerts.url}/links/")
        async with httpx.AsyncClient() as plain:
            page = await plain.get(ack)
            assert page.status_code == 200
            assert '<form method="post">' in page.text
            assert await _states(alerts.url) == {"firing"}  # GET never acts
            brief = button(posted, "Open brief")  # the served app: a page, no API key
            assert brief.startswith(f"{alerts.url}/brief/")
            opened = await plain.get(brief, headers={"Accept": "text/html"})
            assert opened.status_code == 200
            assert "Acme Inc" in opened.text

            token = ack.rsplit("/", 1)[1]
            forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
            assert (await plain.get(f"{alerts.url}/links/{forged}")).status_code == 403
            assert (await plain.post(f"{alerts.url}/links/{forged}")).status_code == 403
            alert_id = (await _alerts(alerts.url))[0]["id"]
            expired = LinkSigner(SECRET).sign(
                Link("ack", "acme", (alert_id,), "p_maria", now - timedelta(seconds=1))
            )
            refused = await plain.post(f"{alerts.url}/links/{expired}")
            assert refused.status_code == 410
            assert refused.headers["x-error-code"] == "link_expired"
            assert await _states(alerts.url) == {"firing"}

            done = await plain.post(ack)
            assert done.status_code == 200
            assert "Acknowledged" in done.text
        acked = await _alerts(alerts.url)
        assert {a["rule"] for a in acked} == {"band_worsened", "score_dropped"}
        assert {(a["state"], a["acknowledged_by"]) for a in acked} == {
            ("acknowledged", "link:p_maria")
        }
        # the acknowledgement rewrites the delivered message in place (chat.update)
        [update] = await eventually(_updates(slack), what="the Slack message updated")
        assert update.body["ts"] == posted.ts
        assert len(slack.delivered()) == 1  # nothing new was posted
        sent = 'churnwatch_alerts_deliveries_total{channel="slack",outcome="sent"}'
        assert await metric(alerts.url, sent) == 2.0  # the post and its update
        assert await metric(alerts.url, "churnwatch_alerts_outbox_oldest_age_seconds") == 0.0
    assert alerts.proc is not None
    assert alerts.proc.returncode == 0  # a clean shutdown exits 0
    assert "alerts service stopped: consumer committed, workers finished" in alerts.logs()


async def test_a_worker_killed_between_sending_and_recording_sends_again_after_its_lease(
    stack: Stack, slack: SlackSink, migrated: str
) -> None:
    slack.program(Reply.slow(30))  # Slack has the message; its answer never reaches the worker
    first = await stack.service().start()
    try:
        await stack.publish(
            [
                person("p_maria", slack="U_MARIA"),
                account("acme"),
                change("acme", datetime.now(UTC), (80, "green"), (30, "red")),
            ],
        )
        await eventually(lambda: _requests(slack), what="the request in flight")
        first.kill()  # SIGKILL between sending and recording
    finally:
        first.kill()
    engine = db.create_engine_for_url(migrated)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT state, attempts FROM alerts.outbox"))).one()
        assert tuple(row) == ("sending", 1)  # the outcome is unknown to the database

        async with stack.service() as second:
            requests = await eventually(
                lambda: _delivered(slack), timeout_s=30, what="the message sent again"
            )
            expired = await metric(
                second.url, 'churnwatch_alerts_delivery_leases_expired_total{channel="slack"}'
            )
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT state, attempts FROM alerts.outbox"))).one()
    finally:
        await engine.dispose()
    assert tuple(row) == ("sent", 2)
    assert expired == 1.0
    keys = [r.key for r in slack.requests]
    assert len(keys) == 2  # the documented at-least-once window: once in flight, once again
    assert len(set(keys)) == 1
    assert len(requests) == 1


async def _requests(slack: SlackSink) -> list[SlackRequest]:
    return list(slack.requests)


async def _delivered(slack: SlackSink) -> list[SlackRequest]:
    return slack.delivered()


def _updates(slack: SlackSink) -> Callable[[], Awaitable[list[SlackRequest]]]:
    async def probe() -> list[SlackRequest]:
        return slack.updates()

    return probe


async def _alerts(url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        answer = await client.get(
            f"{url}/v1/alerts", params={"account_id": "acme"}, headers={"X-API-Key": ADMIN_KEY}
        )
    answer.raise_for_status()
    found: list[dict[str, Any]] = answer.json()["alerts"]
    return found


async def _states(url: str) -> set[str]:
    return {a["state"] for a in await _alerts(url)}
