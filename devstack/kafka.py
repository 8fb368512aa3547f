"""A real single-node Apache Kafka broker (KRaft, combined mode) assembled from Maven Central jars.

The jars are resolved once by ``devstack/kafka/pom.xml`` into a cache outside the repository
(``$CHURNWATCH_CACHE`` or ``~/.cache/churnwatch``); the broker's data lives in the directory the
caller gives (``.local/kafka`` for `make up`, a temporary directory for a test run).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from devstack import process

POM = Path(__file__).parent / "kafka" / "pom.xml"
LOG4J_CONFIG = Path(__file__).parent / "kafka" / "log4j2.properties"


def kafka_version() -> str:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if match is None:
        raise RuntimeError(f"no <kafka.version> in {POM}")
    return match.group(1)


def cache_dir() -> Path:
    root = os.environ.get("CHURNWATCH_CACHE") or Path.home() / ".cache" / "churnwatch"
    return Path(root)


def ensure_jars() -> Path:
    """The directory of the broker's jars, resolving them with Maven the first time."""
    libs = cache_dir() / f"kafka-{kafka_version()}" / "libs"
    if (libs / ".complete").exists():
        return libs
    if shutil.which("mvn") is None:
        raise RuntimeError(
            "Maven (mvn) is needed once to fetch the Kafka jars: apt-get install maven"
        )
    libs.parent.mkdir(parents=True, exist_ok=True)
    if libs.exists():  # left over by an interrupted fetch: never marked complete
        shutil.rmtree(libs)
    # Resolve into a private directory, then move it into place, so that two runs fetching at
    # once never see a half-filled directory.
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
    print(f"devstack: fetching Kafka {kafka_version()} jars from Maven Central into {libs}")
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ],
        check=True,
    )
    (staging / ".complete").write_text(kafka_version() + "\n")
    try:
        staging.rename(libs)
    except OSError:  # another run won the race
        shutil.rmtree(staging, ignore_errors=True)
    if not (libs / ".complete").exists():
        raise RuntimeError(f"fetching the Kafka jars into {libs} did not complete")
    return libs


def new_cluster_id() -> str:
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass
class KafkaBroker:
    """One broker+controller process with its data, logs and pid file under ``home``."""

    home: Path
    port: int = 9092
    controller_port: int = 9093
    tied_to_parent: bool = False

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def _config(self) -> Path:
        return self.home / "server.properties"

    @property
    def _data(self) -> Path:
        return self.home / "data"

    def running_pid(self) -> int | None:
        return process.read_pid(self.pid_file)

    def start(self) -> None:
        """Spawn the broker (formatting its storage first time); returns without waiting."""
        if self.running_pid() is not None:
            return
        for port in (self.port, self.controller_port):
            if process.port_in_use(port):
                raise RuntimeError(f"port {port} is taken: cannot start Kafka on it")
        libs = ensure_jars()
        self.home.mkdir(parents=True, exist_ok=True)
        self._config.write_text(self._properties())
        classpath = f"{libs}/*"
        java = [
            "java",
            "-Xms256m",
            "-Xmx1g",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self.home}",
            "-cp",
            classpath,
        ]
        if not (self._data / "meta.properties").exists():
            subprocess.run(
                [
                    *java,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    new_cluster_id(),
                    "-c",
                    str(self._config),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        process.spawn(
            [*java, "kafka.Kafka", str(self._config)],
            log_file=self.log_file,
            pid_file=self.pid_file,
            tied_to_parent=self.tied_to_parent,
        )

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Block until a client round trip works: cluster metadata, then a produce (acks=all)."""
        try:
            process.run_async(asyncio.wait_for(_probe(self.bootstrap_servers), timeout_s))
        except Exception as exc:
            raise RuntimeError(
                f"Kafka on {self.bootstrap_servers} not ready after {timeout_s}s: {exc!r}\n"
                f"--- last lines of {self.log_file}:\n{process.tail(self.log_file)}"
            ) from exc

    def stop(self) -> bool:
        return process.stop(self.pid_file, timeout_s=30)

    def _properties(self) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self._data),
            # Topics are created explicitly with their specs (shared.events.TOPICS); a typo in a
            # topic name must fail, not create a topic.
            "auto.create.topics.enable": "false",
            "num.partitions": "2",
            # One broker: every internal topic has one replica, or groups never find a coordinator.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.hours": "168",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())


async def _probe(bootstrap_servers: str) -> None:
    import logging

    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError, TopicAlreadyExistsError

    probe_topic = "_devstack_probe"
    # "Unable to connect" while the broker boots is expected: keep it out of the output.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=5000,
        )
        try:
            await admin.start()
            await admin.describe_cluster()
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(probe_topic, 1, 1)])
            await producer.start()
            await producer.send_and_wait(probe_topic, b"ready")
            return
        except (KafkaError, OSError):
            await asyncio.sleep(0.5)
        finally:
            await producer.stop()
            await admin.close()
