"""`make up` / `make down` / `make status`: the local stack under ``.local/``.

Kafka on 127.0.0.1:9092 and PostgreSQL on 127.0.0.1:15432 unless ``KAFKA_BOOTSTRAP_SERVERS`` or
``DATABASE_URL`` point at existing infrastructure (then that part is not started); then the
topics, the migrations, and every service that exists in ``services/`` on its port
(ingest 8000, scoring 8001, alerts 8002; ``INGEST_PORT``… override).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

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


SERVICES = (Service("ingest", 8000), Service("scoring", 8001), Service("alerts", 8002))


def local_dir() -> Path:
    return Path(os.environ.get("CHURNWATCH_LOCAL_DIR") or ROOT / ".local").resolve()


class Stack:
    def __init__(self, home: Path | None = None) -> None:
        self.home = home or local_dir()
        self.external_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        self.external_db = os.environ.get("DATABASE_URL")
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
        return self.external_db or self.postgres.url

    def dev_api_key(self) -> str:
        """A key with every scope for local use, made on the first `make up` and kept."""
        from shared.auth import new_key

        path = self.home / "dev-api-key"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            path.write_text(new_key() + "\n")
            path.chmod(0o600)
        return path.read_text().strip()

    def service_env(self) -> dict[str, str]:
        from shared.auth import SCOPES, digest

        keys = [{"name": "local-dev", "sha256": digest(self.dev_api_key()), "scopes": SCOPES}]
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "DATABASE_URL": self.database_url,
            "API_KEYS": os.environ.get("API_KEYS") or json.dumps(keys),
            "PYTHONUNBUFFERED": "1",
        }

    # -- commands ---------------------------------------------------------------------------

    def up(self) -> None:
        started = time.monotonic()
        if not self.external_kafka:
            self.kafka.start()
        if not self.external_db:
            self.postgres.start()
        if not self.external_kafka:
            self.kafka.wait_ready()
        if not self.external_db:
            self.postgres.wait_ready()
        self._prepare()
        for service in SERVICES:
            if service.exists():
                self._start_service(service)
        for service in SERVICES:
            if service.exists():
                self._wait_service(service)
        self._write_env_file()
        print(f"devstack: up in {time.monotonic() - started:.1f}s")
        self.status()

    def down(self) -> None:
        for service in reversed(SERVICES):
            if process.stop(self._pid_file(service), timeout_s=30):
                print(f"devstack: stopped {service.name}")
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
                row(service.name, process.read_pid(self._pid_file(service)), service.url)
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

        settings = KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=self.bootstrap_servers)
        created = process.run_async(ensure_topics(settings, Topics(settings.topic_prefix).all()))
        if created:
            print(f"devstack: created topics {', '.join(sorted(created))}")
        upgrade_all(self.database_url)

    def _pid_file(self, service: Service) -> Path:
        return self.home / "services" / f"{service.name}.pid"

    def _start_service(self, service: Service) -> None:
        if process.read_pid(self._pid_file(service)) is not None:
            return
        if process.port_in_use(service.port):
            raise RuntimeError(f"port {service.port} is taken: cannot start {service.name}")
        process.spawn(
            [sys.executable, "-m", f"services.{service.name}"],
            log_file=self.home / "services" / f"{service.name}.log",
            pid_file=self._pid_file(service),
            env=self.service_env(),
            cwd=ROOT,
        )

    def _wait_service(self, service: Service, timeout_s: float = 60) -> None:
        def ready() -> bool:
            if process.read_pid(self._pid_file(service)) is None:
                log = self.home / "services" / f"{service.name}.log"
                raise RuntimeError(f"{service.name} exited:\n{process.tail(log)}")
            try:
                return httpx.get(f"{service.url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        if not process.wait_until(ready, timeout_s=timeout_s, interval_s=0.3):
            raise RuntimeError(f"{service.name} not ready on {service.url} after {timeout_s}s")

    def _write_env_file(self) -> None:
        lines = [
            f"export KAFKA_BOOTSTRAP_SERVERS={self.bootstrap_servers}",
            f"export DATABASE_URL='{self.database_url}'",
            f"export CHURNWATCH_API_KEY={self.dev_api_key()}",
        ]
        lines += [f"export {s.name.upper()}_URL={s.url}" for s in SERVICES if s.exists()]
        (self.home / "env").write_text("\n".join(lines) + "\n")


def _redact(url: str) -> str:
    """A database URL without its password, for printing."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"
