"""Builders shared by the alerts integration tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.sinks import SlackSink, SmtpSink
from services.alerts import api, delivery, links, rules
from services.alerts.decide import Config
from services.alerts.handler import BatchHandler, Message
from services.alerts.lifecycle import Timing
from services.alerts.messages import Content
from services.alerts.notifiers import Notifier
from services.alerts.notifiers.email import EmailNotifier
from services.alerts.notifiers.slack import SlackNotifier
from services.alerts.routing import Channels, TeamChannel
from services.alerts.scheduler import Scheduler
from services.alerts.settings import DEFAULT_RULES_FILE
from shared.auth import ApiKeys
from shared.clock import FixedClock
from shared.events import (
    AccountRecord,
    AccountTeam,
    Band,
    ComponentScore,
    HealthChange,
    HealthSnapshot,
    PersonRecord,
    Signals,
    Topics,
)
from shared.kafka import Record
from shared.mail import SmtpServer

SECRET = "test-signing-secret-0123456789"
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
BOT_TOKEN = "xoxb-test-token"


def person(
    person_id: str,
    *,
    slack: str | None = None,
    email: str | None = None,
    manager: str | None = None,
    tz: str = "UTC",
    active: bool = True,
) -> PersonRecord:
    return PersonRecord(
        person_id=person_id,
        name=person_id.removeprefix("p_").title(),
        email=email,
        slack_user_id=slack,
        manager_id=manager,
        time_zone=tz,
        active=active,
        updated_at=T0 - timedelta(days=30),
        source="test",
    )


def account(
    account_id: str,
    *,
    csm: str | None = "p_maria",
    ae: str | None = None,
    renewal_owner: str | None = None,
    renewal: date | None = None,
) -> AccountRecord:
    return AccountRecord(
        account_id=account_id,
        name=f"{account_id.title()} Inc",
        seats=100,
        renewal_date=renewal,
        team=AccountTeam(csm=csm, account_executive=ae, renewal_owner=renewal_owner),
        updated_at=T0 - timedelta(days=10),
        source="test",
    )


def snapshot(score: float, band: Band, **signals: Any) -> HealthSnapshot:
    return HealthSnapshot(
        score=score,
        band=band,
        components=[
            ComponentScore(name="activity", raw=1.0, points=score, weight=100, contribution=score)
        ],
        reasons=["weekly active users down 62% vs the 4-week baseline"],
        signals=Signals(**signals),
    )


def change(
    account_id: str,
    as_of: datetime,
    before: tuple[float, Band] | None,
    after: tuple[float, Band],
    **signals: Any,
) -> HealthChange:
    return HealthChange(
        change_id=f"{account_id}:{as_of.isoformat()}",
        account_id=account_id,
        as_of=as_of,
        model_version="test",
        before=snapshot(*before) if before else None,
        after=snapshot(*after, **signals),
        triggers=["band_changed"],
        reasons=["weekly active users down 62% vs the 4-week baseline", "3 urgent tickets"],
    )


def addressed(topics: Topics, message: Any) -> tuple[str, bytes]:
    """The topic and key a person, an account or a health change is published with."""
    if isinstance(message, PersonRecord):
        return topics.people, message.person_id.encode()
    if isinstance(message, AccountRecord):
        return topics.accounts, message.account_id.encode()
    assert isinstance(message, HealthChange), f"not published by the tests: {message!r}"
    return topics.health, message.account_id.encode()


def records(messages: Sequence[Message]) -> list[Record[Message]]:
    out = []
    for offset, value in enumerate(messages):
        key = (
            value.account_id
            if isinstance(value, (HealthChange, AccountRecord))
            else value.person_id
            if isinstance(value, PersonRecord)
            else None
        )
        out.append(Record("test", 0, offset, key.encode() if key else None, value, b"", 0))
    return out


BAND_ONLY = """
version = 1
[[rule]]
name = "band_worsened"
kind = "band_worsened"
motion = "adoption"
severity = "warning"
severity_when_red = "critical"

[[rule]]
name = "no_activity"
kind = "no_activity"
motion = "adoption"
severity = "warning"
days = 14

[[rule]]
name = "expansion"
kind = "expansion"
motion = "expansion"
severity = "info"
utilisation = 0.9
delivery = "digest"
"""


def make_config(
    *,
    group_wait: float = 0.0,
    rules_text: str | None = None,
    team: TeamChannel | None = None,
    email: bool = True,
    slack_api: bool = True,
) -> Config:
    ruleset = rules.parse(rules_text) if rules_text else rules.load(DEFAULT_RULES_FILE)
    return Config(
        ruleset=ruleset,
        timing=Timing(
            group_wait=timedelta(seconds=group_wait),
            repeat_interval=timedelta(days=1),
            escalate_after=timedelta(hours=4),
        ),
        team_channel=team or TeamChannel("C_TEAM", "team@example.com"),
        channels=Channels(slack_api=slack_api, email=email),
        content=Content(
            signer=links.LinkSigner(SECRET),
            public_url="http://alerts.invalid",
            brief_url_template="",  # the signed brief page of this service
            link_ttl=timedelta(days=7),
            message_id_domain="test.invalid",
        ),
    )


@dataclass
class Harness:
    """The service's parts in-process, on a fixed clock, against the real database."""

    engine: AsyncEngine
    config: Config
    clock: FixedClock

    def handler(self) -> BatchHandler:
        return BatchHandler(self.engine, self.config, self.clock)

    def scheduler(self) -> Scheduler:
        return Scheduler(self.engine, self.config, self.clock)

    async def feed(self, *messages: Message) -> None:
        await self.handler()(records(messages))

    def band_only(self, **overrides: Any) -> None:
        """Judge with the band rule alone (``BAND_ONLY``) from now on."""
        self.config = make_config(rules_text=BAND_ONLY, **overrides)

    def api_app(self, keys: ApiKeys) -> FastAPI:
        """Alerts' API routes in-process on this harness (links valid 30 days)."""
        app = FastAPI()
        api.install_error_handlers(app)
        api.install(
            app,
            self.engine,
            self.config,
            self.clock,
            keys,
            self.config.content.signer,
            timedelta(days=30),
        )
        return app

    def worker(
        self,
        http: httpx.AsyncClient,
        slack: SlackSink | None,
        smtp: SmtpSink | None,
        *,
        interactive: bool = False,
        service_clock: bool = False,
    ) -> delivery.DeliveryWorker:
        """A delivery worker "w" on this database sending to the sinks given (None: that
        channel is off); ``service_clock``: it reads people's hours on the harness's clock."""
        return delivery.DeliveryWorker(
            self.engine,
            notifiers(http, slack, smtp, interactive=interactive),
            delivery_config(),
            name="w",
            service_clock=self.clock if service_clock else None,
        )


def delivery_config(**overrides: Any) -> delivery.DeliveryConfig:
    values: dict[str, Any] = {
        "batch_size": 20,
        "poll_seconds": 0.2,
        "lease": timedelta(seconds=5),
        "backoff_initial_seconds": 0.05,
        "backoff_max_seconds": 0.2,
        "give_up": timedelta(minutes=5),
        "slack_channel_interval": timedelta(0),
        "message_id_domain": "test.invalid",
    }
    return delivery.DeliveryConfig(**(values | overrides))


def notifiers(
    http: httpx.AsyncClient,
    slack: SlackSink | None,
    smtp: SmtpSink | None,
    *,
    interactive: bool = False,
) -> dict[str, Notifier]:
    """The notifiers against the sinks (Slack through slack_sdk, a session per request: ``http``
    is not used by it)."""
    found: dict[str, Notifier] = {}
    if slack is not None:
        found["slack"] = SlackNotifier(
            None,
            api_url=slack.api_url,
            bot_token=_secret(BOT_TOKEN),
            webhook_url=_secret(slack.webhook_url),
            interactive=interactive,
            timeout_seconds=2,
        )
    if smtp is not None:
        found["email"] = EmailNotifier(
            SmtpServer(host=smtp.host, port=smtp.port, security="none", timeout_seconds=3),
            sender="churnwatch <alerts@test.invalid>",
        )
    return found


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)
