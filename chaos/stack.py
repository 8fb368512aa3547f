"""What the harness runs and breaks: its own broker and PostgreSQL, the Slack and SMTP sinks,
and the three services as real processes — all on free loopback ports, in a directory of its
own, tied to the harness so nothing outlives it.

:class:`Infrastructure` is the broker and the database server (stopped and started again by
the faults); :class:`Deployment` is one churnwatch on them: a topic prefix, a database, the
sinks, the service processes and the secrets they were given (known, so the logs can be
searched for them afterwards).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from devstack import process
from devstack.kafka import KafkaBroker
from devstack.postgres import PostgresServer
from devstack.sinks import SlackSink, SmtpSink
from shared import migrations
from shared.auth import SCOPES, digest
from shared.events import Topics
from shared.kafka import ensure_topics
from shared.settings import KafkaSettings

ROOT = Path(__file__).resolve().parent.parent
SERVICE_NAMES = ("ingest", "scoring", "alerts")
TEAM_CHANNEL = "C_TEAM"  # alerts' last-resort destinations
TEAM_EMAIL = "team@chaos.invalid"


# ---------------------------------------------------------------------------------------------
# Broker and database server


@dataclass(frozen=True)
class Endpoints:
    """Where a deployment finds Kafka and the PostgreSQL server (its maintenance database)."""

    bootstrap_servers: str
    maintenance_url: str


class Infrastructure:
    """A Kafka broker and a PostgreSQL server of the harness's own, under ``home``."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.kafka = KafkaBroker(
            home / "kafka",
            port=process.free_port(),
            controller_port=process.free_port(),
            tied_to_parent=True,
        )
        self.postgres = PostgresServer(
            home / "postgres", port=process.free_port(), tied_to_parent=True
        )

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(self.kafka.bootstrap_servers, self.postgres.url)

    async def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o755)  # the postgres system user must reach its cluster directory
        self.kafka.start()
        self.postgres.start()
        await asyncio.to_thread(self.kafka.wait_ready)
        await asyncio.to_thread(self.postgres.wait_ready)

    async def stop(self) -> None:
        await asyncio.to_thread(self.kafka.stop)
        await asyncio.to_thread(self.postgres.stop)

    async def stop_kafka(self) -> None:
        """SIGTERM the broker and wait until its process is gone."""
        await asyncio.to_thread(self.kafka.stop)

    async def start_kafka(self) -> None:
        self.kafka.start()  # spawned from this (the main) thread: tied to the harness
        await asyncio.to_thread(self.kafka.wait_ready)

    async def stop_postgres(self) -> None:
        """PostgreSQL's fast shutdown: sessions are cut, then a checkpoint, then it exits."""
        await asyncio.to_thread(self.postgres.stop)

    async def start_postgres(self) -> None:
        self.postgres.start()
        await asyncio.to_thread(self.postgres.wait_ready)


# ---------------------------------------------------------------------------------------------
# Secrets


@dataclass(frozen=True)
class Secrets:
    """Every secret the services get, random per run; tests grep the logs for each."""

    keys: Mapping[str, str]  # scope (or "all", "none") → API key
    link_signing_secret: str
    zendesk_signing_secret: str
    slack_bot_token: str
    database_password: str
    console_secret_key: str

    @classmethod
    def generate(cls) -> Secrets:
        keys: dict[str, str] = {
            scope: f"cw_chaos_{scope}_{secrets.token_urlsafe(18)}" for scope in SCOPES
        }
        keys["all"] = f"cw_chaos_all_{secrets.token_urlsafe(18)}"
        keys["none"] = f"cw_chaos_none_{secrets.token_urlsafe(18)}"
        return cls(
            keys=keys,
            link_signing_secret="link-" + secrets.token_urlsafe(24),
            zendesk_signing_secret="zendesk-" + secrets.token_urlsafe(24),
            slack_bot_token="xoxb-chaos-" + secrets.token_hex(12),
            database_password="dbpw-" + secrets.token_urlsafe(18),
            console_secret_key="console-" + secrets.token_urlsafe(24),
        )

    def api_keys_json(self) -> str:
        entries: list[dict[str, Any]] = []
        for name, key in self.keys.items():
            scopes = list(SCOPES) if name == "all" else [] if name == "none" else [name]
            entries.append({"name": f"chaos-{name}", "sha256": digest(key), "scopes": scopes})
        return json.dumps(entries)

    def values(self) -> dict[str, str]:
        """Every secret by a name, for searching logs."""
        return {
            **{f"API key ({name})": key for name, key in self.keys.items()},
            "link signing secret": self.link_signing_secret,
            "Zendesk signing secret": self.zendesk_signing_secret,
            "Slack bot token": self.slack_bot_token,
            "database password": self.database_password,
            "console secret key": self.console_secret_key,
        }


# ---------------------------------------------------------------------------------------------
# A service process


Service = process.ServiceProcess  # the one launcher (devstack.process)


# ---------------------------------------------------------------------------------------------
# One churnwatch on the infrastructure


@dataclass(frozen=True)
class Tunings:
    """Service settings the harness changes from their defaults (faster retries and polls)."""

    scoring_batch_records: int = 500
    alerts_slack_timeout_seconds: float = 2.0
    alerts_smtp_timeout_seconds: float = 3.0
    alerts_lease_seconds: float = 8.0
    ingest_produce_timeout_seconds: float = 5.0
    log_level: str = "INFO"


@dataclass
class Deployment:
    infra: Endpoints
    home: Path
    tunings: Tunings = field(default_factory=Tunings)
    secrets: Secrets = field(default_factory=Secrets.generate)
    prefix: str = field(default_factory=lambda: f"chaos{uuid.uuid4().hex[:8]}.")
    database: str = field(default_factory=lambda: f"chaos_{uuid.uuid4().hex[:10]}")
    slack: SlackSink | None = None
    smtp: SmtpSink | None = None
    services: dict[str, list[Service]] = field(default_factory=dict)

    @property
    def topics(self) -> Topics:
        return Topics(self.prefix)

    @property
    def kafka_settings(self) -> KafkaSettings:
        return KafkaSettings(
            KAFKA_BOOTSTRAP_SERVERS=self.infra.bootstrap_servers, TOPIC_PREFIX=self.prefix
        )

    @property
    def database_url(self) -> str:
        """The services' URL: with a password (trust authentication ignores it; the logs must
        never show it)."""
        base = self.infra.maintenance_url.rpartition("/")[0]
        user_at = base.replace("://churnwatch@", f"://churnwatch:{self.secrets.database_password}@")
        return f"{user_at}/{self.database}"

    @property
    def dsn(self) -> str:
        return self.database_url.replace("postgresql+asyncpg://", "postgresql://")

    def service(self, name: str, instance: int = 1) -> Service:
        return self.services[name][instance - 1]

    @property
    def scoring_group(self) -> str:
        return f"{self.prefix}scoring"

    @property
    def alerts_group(self) -> str:
        return f"{self.prefix}alerts"

    async def prepare(self) -> None:
        """Topics, the database and its migrations, and the sinks."""
        self.home.mkdir(parents=True, exist_ok=True)
        await ensure_topics(self.kafka_settings, self.topics.all())
        conn = await asyncpg.connect(
            self.infra.maintenance_url.replace("postgresql+asyncpg://", "postgresql://")
        )
        try:
            await conn.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await conn.close()
        await asyncio.to_thread(migrations.upgrade_all, self.database_url)
        self.slack = await SlackSink(token=self.secrets.slack_bot_token).start()
        self.smtp = await SmtpSink().start()

    def env(self, name: str, port: int | None = None) -> dict[str, str]:
        """``name``'s variables; the console's need its ``port`` (its public URL) and the
        scoring and alerts services started first."""
        tunings = self.tunings
        common = {
            "KAFKA_BOOTSTRAP_SERVERS": self.infra.bootstrap_servers,
            "TOPIC_PREFIX": self.prefix,
            "API_KEYS": self.secrets.api_keys_json(),
            "LOG_LEVEL": tunings.log_level,
        }
        if name == "ingest":
            return common | {
                "INGEST_RATE_LIMIT_PER_SECOND": "0",
                "INGEST_RETRY_AFTER_SECONDS": "1",
                "INGEST_PRODUCE_TIMEOUT_SECONDS": str(tunings.ingest_produce_timeout_seconds),
                "INGEST_SHUTDOWN_DRAIN_SECONDS": "0",
                "INGEST_ZENDESK_SIGNING_SECRET": self.secrets.zendesk_signing_secret,
                "INGEST_ZENDESK_ORGANIZATIONS": json.dumps({"9001": "acct-000"}),
            }
        if name == "scoring":
            return common | {
                "DATABASE_URL": self.database_url,
                "SCORING_MAX_BATCH_RECORDS": str(tunings.scoring_batch_records),
                "SCORING_SWEEP_INTERVAL_SECONDS": "3600",
                "SCORING_RESCORE_POLL_SECONDS": "0.2",
                "SCORING_RELAY_POLL_SECONDS": "0.2",
                "SCORING_SHUTDOWN_DRAIN_SECONDS": "0",
                # the alert accounts are new: without history they would be warming up
                "SCORING_WARM_UP_DAYS": "0",
            }
        assert self.slack is not None
        assert self.smtp is not None
        if name == "console":
            return {
                "LOG_LEVEL": tunings.log_level,
                "CONSOLE_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "CONSOLE_LOCAL_DEV": "true",
                "CONSOLE_SCORING_URL": self.service("scoring").url,
                "CONSOLE_ALERTS_URL": self.service("alerts").url,
                "CONSOLE_API_KEY": self.secrets.keys["all"],
                "CONSOLE_SECRET_KEY": self.secrets.console_secret_key,
                "CONSOLE_SMTP_HOST": "127.0.0.1",
                "CONSOLE_SMTP_PORT": str(self.smtp.port),
                "CONSOLE_SMTP_SECURITY": "none",
                "CONSOLE_SHUTDOWN_DRAIN_SECONDS": "0",
                # the browser tests sign the same person in once per test, more than the 3 a
                # person may ask for in 15 minutes (the limit's own test has a stack of its own)
                "CONSOLE_SIGN_IN_PER_EMAIL": "100",
            }
        return common | {
            "DATABASE_URL": self.database_url,
            "ALERTS_GROUP_WAIT_SECONDS": "0",
            "ALERTS_SLACK_BOT_TOKEN": self.secrets.slack_bot_token,
            "ALERTS_SLACK_API_URL": self.slack.api_url,
            "ALERTS_SLACK_CHANNEL_INTERVAL_SECONDS": "0",
            "ALERTS_SLACK_TIMEOUT_SECONDS": str(tunings.alerts_slack_timeout_seconds),
            "ALERTS_SMTP_HOST": "127.0.0.1",
            "ALERTS_SMTP_PORT": str(self.smtp.port),
            "ALERTS_SMTP_SECURITY": "none",
            "ALERTS_SMTP_TIMEOUT_SECONDS": str(tunings.alerts_smtp_timeout_seconds),
            "ALERTS_DELIVERY_LEASE_SECONDS": str(tunings.alerts_lease_seconds),
            "ALERTS_DELIVERY_BACKOFF_INITIAL_SECONDS": "0.2",
            "ALERTS_DELIVERY_BACKOFF_MAX_SECONDS": "1",
            "ALERTS_DELIVERY_POLL_SECONDS": "0.5",
            "ALERTS_LINK_SIGNING_SECRET": self.secrets.link_signing_secret,
            "ALERTS_TEAM_SLACK_CHANNEL": TEAM_CHANNEL,
            "ALERTS_TEAM_EMAIL": TEAM_EMAIL,
            "ALERTS_SHUTDOWN_DRAIN_SECONDS": "0",
            # The daily digest's slot is hours away (and too long ago to be caught up).
            "ALERTS_DIGEST_HOUR": str((datetime.now(UTC).hour + 6) % 24),
        }

    def add(self, name: str) -> Service:
        instances = self.services.setdefault(name, [])
        port = process.free_port()
        service = Service(
            name, self.env(name, port), self.home, instance=len(instances) + 1, port=port
        )
        instances.append(service)
        return service

    async def start(self, names: tuple[str, ...] = SERVICE_NAMES) -> None:
        await asyncio.gather(*(self.add(name).start() for name in names))

    async def stop(self) -> None:
        """SIGTERM every service still running (SIGKILL if it lingers), then the sinks."""
        running = [s for group in self.services.values() for s in group if s.running]
        await asyncio.gather(*(s.terminate(timeout_s=30) for s in running))
        if self.slack is not None:
            await self.slack.stop()
        if self.smtp is not None:
            await self.smtp.stop()

    def all_services(self) -> list[Service]:
        return [s for group in self.services.values() for s in group]
