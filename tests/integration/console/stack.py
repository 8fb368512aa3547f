"""The console's integration stack: the real scoring and alerts services on the real Kafka and
PostgreSQL, the console as a real process mailing through the SMTP sink, and a small directory
(people with a manager, accounts with their teams, one alert). Shared by the HTTP tests here
and the browser tests (tests/integration/console/browser/)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
from aiokafka import AIOKafkaProducer

from devstack.sinks import SmtpSink
from shared.auth import digest, new_key
from shared.events import Topics, encode
from shared.kafka import make_producer
from shared.migrations import config as alembic_config
from shared.settings import KafkaSettings
from tests.integration.alerts.support import account, addressed, change, person
from tests.support import ServiceProcess, eventually

SECRET = "console-test-secret-0123456789abcdef"
ADMIN_EMAIL = "boss@example.com"
LINK = re.compile(r"https?://\S+/sign-in/\S+")


@dataclass
class Stack:
    scoring: ServiceProcess
    alerts: ServiceProcess
    console: ServiceProcess
    smtp: SmtpSink
    key: str

    @property
    def url(self) -> str:
        return self.console.url

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def emailed_link(self, email: str, *, after: int = 0) -> str:
        """The sign-in link of the newest mail to ``email`` past the first ``after`` mails."""

        async def found() -> str:
            for mail in reversed(self.smtp.accepted()[after:]):
                if email in mail.rcpt_to:
                    match = LINK.search(mail.message.get_content())
                    if match:
                        return match.group(0)
            return ""

        return await eventually(found, timeout_s=15, what=f"a sign-in email to {email}")

    async def alerts_of(self, account_id: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient() as http:
            answer = await http.get(
                f"{self.alerts.url}/v1/alerts",
                params={"account_id": account_id},
                headers=self.auth(),
            )
        found: list[dict[str, Any]] = answer.json()["alerts"]
        return found


def directory() -> list[msgspec.Struct]:
    """Lena manages Maria; James is on another team; acme and initech are Maria's (James is
    initech's account executive), globex is James's alone."""
    return [
        person("p_lena", email="lena@example.com"),
        person("p_maria", email="maria@example.com", manager="p_lena"),
        person("p_james", email="james@example.com"),
        account("acme", csm="p_maria"),
        account("initech", csm="p_maria", ae="p_james"),
        account("globex", csm="p_james"),
    ]


async def publish(
    settings: KafkaSettings, topics: Topics, messages: Sequence[msgspec.Struct]
) -> None:
    producer: AIOKafkaProducer = make_producer(settings)
    await producer.start()
    try:
        for message in messages:
            topic, key = addressed(topics, message)
            await (await producer.send(topic, encode(message), key=key))
    finally:
        await producer.stop()


async def migrate(database_url: str) -> None:
    from alembic import command

    for service in ("scoring", "alerts"):
        config = alembic_config(service, database_url)
        await asyncio.to_thread(command.upgrade, config, "head")


def console_env(urls: dict[str, str], key: str, smtp: SmtpSink, **extra: str) -> dict[str, str]:
    return {
        "CONSOLE_SCORING_URL": urls["scoring"],
        "CONSOLE_ALERTS_URL": urls["alerts"],
        "CONSOLE_API_KEY": key,
        "CONSOLE_SECRET_KEY": SECRET,
        "CONSOLE_LOCAL_DEV": "true",
        "CONSOLE_ADMINS": ADMIN_EMAIL,
        "CONSOLE_SMTP_HOST": smtp.host,
        "CONSOLE_SMTP_PORT": str(smtp.port),
        "CONSOLE_SMTP_SECURITY": "none",
        "CONSOLE_SMTP_TIMEOUT_SECONDS": "3",
        "CONSOLE_SHUTDOWN_DRAIN_SECONDS": "0",
        "LOG_LEVEL": "INFO",
        **extra,
    }


async def running_stack(
    tmp_path: Path, kafka_settings: KafkaSettings, database_url: str, **console_extra: str
) -> AsyncIterator[Stack]:
    """Start everything, load the directory, wait until both services know it; stop all."""
    await migrate(database_url)
    key = new_key()
    common = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.kafka_bootstrap_servers,
        "TOPIC_PREFIX": kafka_settings.topic_prefix,
        "KAFKA_CREATE_TOPICS": "true",
        "DATABASE_URL": database_url,
        "API_KEYS": json.dumps(
            [{"name": "console", "sha256": digest(key), "scopes": ["read", "admin"]}]
        ),
        "LOG_LEVEL": "INFO",
    }
    scoring = ServiceProcess("scoring", {**common, "SCORING_SHUTDOWN_DRAIN_SECONDS": "0"}, tmp_path)
    async with SmtpSink() as smtp:
        alerts = ServiceProcess(
            "alerts",
            {
                **common,
                "ALERTS_GROUP_WAIT_SECONDS": "0",
                "ALERTS_SHUTDOWN_DRAIN_SECONDS": "0",
                "ALERTS_SMTP_HOST": smtp.host,
                "ALERTS_SMTP_PORT": str(smtp.port),
                "ALERTS_SMTP_SECURITY": "none",
                "ALERTS_SMTP_TIMEOUT_SECONDS": "3",
                "ALERTS_DELIVERY_LEASE_SECONDS": "15",
                "ALERTS_TEAM_EMAIL": "team@example.com",
                "ALERTS_ALERT_CHANNEL": "email",
            },
            tmp_path,
        )
        await asyncio.gather(scoring.start(), alerts.start())
        try:
            topics = Topics(kafka_settings.topic_prefix)
            await publish(kafka_settings, topics, directory())
            stack = Stack(scoring, alerts, scoring, smtp, key)  # console set below
            await _known(stack, topics, kafka_settings)
            urls = {"scoring": scoring.url, "alerts": alerts.url}
            console = ServiceProcess(
                "console", console_env(urls, key, smtp, **console_extra), tmp_path
            )
            console.env["CONSOLE_PUBLIC_URL"] = console.url
            await console.start()
            stack.console = console
            try:
                yield stack
            finally:
                await console.stop()
        finally:
            await asyncio.gather(scoring.stop(), alerts.stop())


async def _known(stack: Stack, topics: Topics, settings: KafkaSettings) -> None:
    async with httpx.AsyncClient() as http:

        async def scoring_knows() -> bool:
            answer = await http.get(f"{stack.scoring.url}/v1/accounts", headers=stack.auth())
            if answer.status_code != 200:
                return False
            found = answer.json()["accounts"]  # known and scored (its health change is out)
            return len(found) == 3 and all(a["band"] for a in found)

        async def alerts_know_people() -> bool:
            answer = await http.get(
                f"{stack.alerts.url}/v1/alerts", headers=stack.auth(), params={"limit": 1}
            )
            return answer.status_code == 200

        await eventually(scoring_knows, what="scoring has the three accounts")
        await eventually(alerts_know_people, what="alerts answers")
    # after scoring's own first change (same key, same partition: alerts reads it first), of
    # the same model (a change of model re-baselines, it does not alert)
    async with httpx.AsyncClient() as http:
        health = await http.get(
            f"{stack.scoring.url}/v1/accounts/acme/health", headers=stack.auth()
        )
    current = health.json()
    red = change("acme", datetime.now(UTC), (current["score"], current["band"]), (5, "red"))
    red = msgspec.structs.replace(red, model_version=current["model_version"])
    await publish(settings, topics, [red])

    async def alerted() -> bool:
        return bool(await stack.alerts_of("acme"))

    await eventually(alerted, what="an alert on acme")
