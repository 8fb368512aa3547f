"""`make up` / `make down` / `make status`: the local stack under ``.local/``.

Kafka on 127.0.0.1:9092 and PostgreSQL on 127.0.0.1:15432 unless ``KAFKA_BOOTSTRAP_SERVERS`` or
``DATABASE_URL`` point at existing infrastructure (then that part is not started); then the
topics, the migrations, the Slack and SMTP sinks (``devstack.sinks``: 127.0.0.1:8003 and
127.0.0.1:2525, ``LOCAL_SLACK_PORT`` / ``LOCAL_SMTP_PORT`` override; they record what they
receive under ``.local/sinks/``), and every service that exists in ``services/`` on its port
(ingest 8000, scoring 8001, alerts 8002, console 8004; ``INGEST_PORT``… override).
When the console exists, alerts' account links open its account page
(``ALERTS_BRIEF_URL_TEMPLATE``) and it signs people in through the SMTP sink.

The services are configured to use what runs here: alerts delivers to the sinks, with a link
signing secret kept in ``.local/link-signing-secret``; ingest verifies Zendesk webhooks with the
secret in ``.local/zendesk-signing-secret`` and maps Zendesk organizations with
``.local/zendesk-organizations.json`` (``make demo`` writes it). Every variable can still be
overridden from the environment.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from devstack import process
from devstack.kafka import KafkaBroker
from devstack.postgres import PostgresServer

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Service:
    name: str
    default_port: int

    @property
    def port(self) -> int:
        return int(os.environ.get(f"{self.name.upper()}_PORT", self.default_port))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def exists(self) -> bool:
        return (ROOT / "services" / self.name / "__main__.py").exists()


SERVICES = (
    Service("ingest", 8000),
    Service("scoring", 8001),
    Service("alerts", 8002),
    Service("console", 8004),  # 8003 is the Slack sink
)
CONSOLE = SERVICES[-1]


def local_dir() -> Path:
    return Path(os.environ.get("CHURNWATCH_LOCAL_DIR") or ROOT / ".local").resolve()


class Stack:
    """The local stack. ``overrides`` are service variables that win over everything else (the
    demo's clock, topic prefix and tunings); ``database_name`` gives the services a database of
    their own on the local server (created when missing; dropped and created again first with
    ``fresh_database``)."""

    def __init__(
        self,
        home: Path | None = None,
        *,
        overrides: Mapping[str, str] | None = None,
        database_name: str | None = None,
        fresh_database: bool = False,
    ) -> None:
        self.home = home or local_dir()
        self.overrides = dict(overrides or {})
        self.database_name = database_name
        self.fresh_database = fresh_database
        self.external_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        self.external_db = os.environ.get("DATABASE_URL")
        self.slack_port = int(os.environ.get("LOCAL_SLACK_PORT", 8003))
        self.smtp_port = int(os.environ.get("LOCAL_SMTP_PORT", 2525))
        self.kafka = KafkaBroker(
            self.home / "kafka",
            port=int(os.environ.get("LOCAL_KAFKA_PORT", 9092)),
            controller_port=int(os.environ.get("LOCAL_KAFKA_CONTROLLER_PORT", 9093)),
        )
        self.postgres = PostgresServer(
            self.home / "postgres", port=int(os.environ.get("LOCAL_POSTGRES_PORT", 15432))
        )

    @property
    def bootstrap_servers(self) -> str:
        return self.external_kafka or self.kafka.bootstrap_servers

    @property
    def database_url(self) -> str:
        if self.external_db:
            return self.external_db
        if self.database_name:
            return self.postgres.url.rpartition("/")[0] + "/" + self.database_name
        return self.postgres.url

    @property
    def topic_prefix(self) -> str:
        return self.overrides.get("TOPIC_PREFIX") or os.environ.get("TOPIC_PREFIX") or "churnwatch."

    @property
    def sinks_dir(self) -> Path:
        return self.home / "sinks"

    @property
    def slack_sink_url(self) -> str:
        return f"http://127.0.0.1:{self.slack_port}"

    def dev_api_key(self) -> str:
        """A key with every scope for local use, made on the first `make up` and kept."""
        from shared.auth import new_key

        return self._kept("dev-api-key", new_key)

    def link_signing_secret(self) -> str:
        """The alerts service's link signing key, kept so links stay valid across restarts."""
        return self._kept("link-signing-secret", lambda: secrets.token_urlsafe(32))

    def console_secret_key(self) -> str:
        """The console's session and sign-in link signing key, kept so sessions survive restarts."""
        return self._kept("console-secret-key", lambda: secrets.token_urlsafe(32))

    def zendesk_signing_secret(self) -> str:
        """The secret a (simulated) Zendesk signs its webhooks with."""
        return self._kept("zendesk-signing-secret", lambda: secrets.token_urlsafe(32))

    def slack_bot_token(self) -> str:
        """The bot token alerts presents to the Slack sink (which refuses any other)."""
        return self._kept("slack-bot-token", lambda: "xoxb-local-" + secrets.token_hex(12))

    def zendesk_organizations(self) -> str:
        """``.local/zendesk-organizations.json`` (organization id → account id), else ``{}``."""
        path = self.home / "zendesk-organizations.json"
        return path.read_text().strip() if path.exists() else "{}"

    def _kept(self, name: str, make: Callable[[], str]) -> str:
        path = self.home / name
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            path.write_text(make() + "\n")
            path.chmod(0o600)
        return path.read_text().strip()

    def service_env(self) -> dict[str, str]:
        """The services' environment: local defaults < the caller's environment < overrides."""
        from shared.auth import SCOPES, digest

        keys = [{"name": "local-dev", "sha256": digest(self.dev_api_key()), "scopes": SCOPES}]
        defaults = {
            "ALERTS_SLACK_API_URL": f"{self.slack_sink_url}/api",
            "ALERTS_SLACK_BOT_TOKEN": self.slack_bot_token(),
            "ALERTS_SMTP_HOST": "127.0.0.1",
            "ALERTS_SMTP_PORT": str(self.smtp_port),
            "ALERTS_SMTP_SECURITY": "none",
            "ALERTS_PUBLIC_URL": service_url("alerts"),
            "ALERTS_LINK_SIGNING_SECRET": self.link_signing_secret(),
            "INGEST_ZENDESK_SIGNING_SECRET": self.zendesk_signing_secret(),
            "INGEST_ZENDESK_ORGANIZATIONS": self.zendesk_organizations(),
            **(self.console_env() if CONSOLE.exists() else {}),
        }
        return {
            **defaults,
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "DATABASE_URL": self.database_url,
            "API_KEYS": os.environ.get("API_KEYS") or json.dumps(keys),
            "PYTHONUNBUFFERED": "1",
            **self.overrides,
        }

    def console_env(self) -> dict[str, str]:
        """The console reads scoring and alerts with the dev key, signs in by email through the
        SMTP sink, and alerts' account links open its account page."""
        return {
            "CONSOLE_PUBLIC_URL": CONSOLE.url,
            "CONSOLE_SCORING_URL": service_url("scoring"),
            "CONSOLE_ALERTS_URL": service_url("alerts"),
            "CONSOLE_API_KEY": self.dev_api_key(),
            "CONSOLE_SECRET_KEY": self.console_secret_key(),
            "CONSOLE_LOCAL_DEV": "true",
            "CONSOLE_SMTP_HOST": "127.0.0.1",
            "CONSOLE_SMTP_PORT": str(self.smtp_port),
            "CONSOLE_SMTP_SECURITY": "none",
            "ALERTS_BRIEF_URL_TEMPLATE": CONSOLE.url + "/accounts/{account_id}",
        }

    # -- commands ---------------------------------------------------------------------------

    def up(self) -> None:
        started = time.monotonic()
        self.start_infrastructure()
        self.start_sinks()
        self.start_services()
        print(f"devstack: up in {time.monotonic() - started:.1f}s")
        self.status()

    def start_infrastructure(self) -> None:
        """Kafka and PostgreSQL (unless external), ready; the topics; the migrations."""
        if not self.external_kafka:
            self.kafka.start()
        if not self.external_db:
            self.postgres.start()
        if not self.external_kafka:
            self.kafka.wait_ready()
        if not self.external_db:
            self.postgres.wait_ready()
        self._prepare()

    def start_sinks(self) -> None:
        """The Slack and SMTP sinks, recording into ``.local/sinks/``; waits for both ports."""
        pid_file = self.sinks_dir / "sinks.pid"
        if process.read_pid(pid_file) is not None:
            return
        for port in (self.slack_port, self.smtp_port):
            if process.port_in_use(port):
                raise RuntimeError(f"port {port} is taken: cannot start the sinks on it")
        process.spawn(
            [
                sys.executable,
                "-m",
                "devstack.sinks",
                "--dir",
                str(self.sinks_dir),
                "--slack-port",
                str(self.slack_port),
                "--smtp-port",
                str(self.smtp_port),
                "--slack-token",
                self.slack_bot_token(),
            ],
            log_file=self.sinks_dir / "sinks.log",
            pid_file=pid_file,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            cwd=ROOT,
        )

        def listening() -> bool:
            if process.read_pid(pid_file) is None:
                raise RuntimeError(
                    f"the sinks exited:\n{process.tail(self.sinks_dir / 'sinks.log')}"
                )
            return process.port_in_use(self.slack_port) and process.port_in_use(self.smtp_port)

        if not process.wait_until(listening, timeout_s=30, interval_s=0.1):
            raise RuntimeError("the sinks are not listening after 30s")

    def start_services(self) -> None:
        """Every service that exists, ready; then ``.local/env``."""
        launched = [self._launch(service) for service in SERVICES if service.exists()]
        for service in launched:
            process.run_async(service.wait_ready(60))
        self._write_env_file()

    def stop_services(self) -> None:
        """SIGTERM every service (all at once) and wait for them to finish."""
        running = [s for s in map(self._process, SERVICES) if s.running]
        for service in running:
            service.signal(signal.SIGTERM)
        for service in running:
            service.shut_down(30)
            print(f"devstack: stopped {service.name}")

    def down(self) -> None:
        self.stop_services()
        if process.stop(self.sinks_dir / "sinks.pid", timeout_s=10):
            print("devstack: stopped the sinks")
        if self.postgres.stop():
            print("devstack: stopped PostgreSQL")
        if self.kafka.stop():
            print("devstack: stopped Kafka")
        print("devstack: nothing of the project runs any more")

    def status(self) -> int:
        """Print what runs; returns 0 when everything expected runs."""
        rows: list[tuple[str, str, str]] = []
        ok = True

        def row(name: str, pid: int | None, endpoint: str, external: bool = False) -> None:
            nonlocal ok
            if external:
                rows.append((name, "external", endpoint))
                return
            ok = ok and pid is not None
            rows.append((name, f"running (pid {pid})" if pid else "stopped", endpoint))

        row("kafka", self.kafka.running_pid(), self.bootstrap_servers, bool(self.external_kafka))
        row(
            "postgres",
            self.postgres.running_pid(),
            _redact(self.database_url),
            bool(self.external_db),
        )
        for service in SERVICES:
            if service.exists():
                row(service.name, self._process(service).pid, service.url)
        row(
            "sinks",
            process.read_pid(self.sinks_dir / "sinks.pid"),
            f"slack {self.slack_sink_url}/api · smtp 127.0.0.1:{self.smtp_port} · "
            f"recordings {self.sinks_dir}",
        )
        width = max(len(name) for name, _, _ in rows)
        for name, state, endpoint in rows:
            print(f"  {name:<{width}}  {state:<22}  {endpoint}")
        print(
            f"  logs: {self.home}/*/*.log   env: {self.home}/env   dev API key: "
            f"{self.home}/dev-api-key"
        )
        return 0 if ok else 1

    # -- parts ------------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Create the topics and migrate the database: what the services expect to exist."""
        from shared.events import Topics
        from shared.kafka import ensure_topics
        from shared.migrations import upgrade_all
        from shared.settings import KafkaSettings

        settings = KafkaSettings(
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap_servers, TOPIC_PREFIX=self.topic_prefix
        )
        created = process.run_async(ensure_topics(settings, Topics(settings.topic_prefix).all()))
        if created:
            print(f"devstack: created {len(created)} topics under {settings.topic_prefix!r}")
        if self.database_name and not self.external_db:
            process.run_async(
                _ensure_database(self.postgres.url, self.database_name, fresh=self.fresh_database)
            )
        upgrade_all(self.database_url)

    def _process(
        self, service: Service, env: Mapping[str, str] | None = None
    ) -> process.ServiceProcess:
        """The service's process (its pid file under ``.local/services/``), started or not."""
        return process.ServiceProcess(
            service.name,
            env or {},
            self.home / "services",
            log_name=service.name,
            port=service.port,
            tied_to_parent=False,  # the services outlive `make up`; `make down` stops them
        )

    def _launch(self, service: Service) -> process.ServiceProcess:
        """Start it unless it runs already (then wait for the one that runs)."""
        started = self._process(service, self.service_env())
        if started.running:
            return started
        if process.port_in_use(service.port):
            raise RuntimeError(f"port {service.port} is taken: cannot start {service.name}")
        return started.launch()

    def _write_env_file(self) -> None:
        lines = [
            f"export KAFKA_BOOTSTRAP_SERVERS={self.bootstrap_servers}",
            f"export DATABASE_URL='{self.database_url}'",
            f"export TOPIC_PREFIX={self.topic_prefix}",
            f"export CHURNWATCH_API_KEY={self.dev_api_key()}",
        ]
        lines += [f"export {s.name.upper()}_URL={s.url}" for s in SERVICES if s.exists()]
        lines += [
            f"export SLACK_SINK_URL={self.slack_sink_url}",
            f"export SINKS_DIR={self.sinks_dir}",
        ]
        (self.home / "env").write_text("\n".join(lines) + "\n")


def service_url(name: str) -> str:
    """Where the local stack serves ``name`` (``<NAME>_PORT`` overrides the default port)."""
    return next(s.url for s in SERVICES if s.name == name)


async def _ensure_database(maintenance_url: str, name: str, *, fresh: bool = False) -> None:
    """Create database ``name`` on the server of ``maintenance_url`` when it does not exist
    (after dropping it, with ``fresh``)."""
    import asyncpg

    conn = await asyncpg.connect(maintenance_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        if fresh:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _redact(url: str) -> str:
    """A database URL without its password, for printing."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"
