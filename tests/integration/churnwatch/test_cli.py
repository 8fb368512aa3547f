"""Every ``churnwatch`` command, run as the installed console script against the three
services running for real (``tests.support.ServiceProcess``) on the session's Kafka and
PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from devstack.ephemeral import Infra
from shared.auth import SCOPES, digest, new_key
from shared.events import Topics
from shared.kafka import ensure_topics
from shared.migrations import upgrade_all
from shared.settings import KafkaSettings
from tests.support import ServiceProcess, eventually

KEY = new_key()
REPLAY_KEY = new_key()  # its own rate-limit bucket, so the replay test meets 429s on its own
CHURNWATCH = str(Path(sys.executable).parent / "churnwatch")
ACCOUNT = "acme-corp"


@dataclass(frozen=True)
class Stack:
    ingest: ServiceProcess
    scoring: ServiceProcess
    alerts: ServiceProcess

    def env(self, key: str = KEY) -> dict[str, str]:
        return {
            "CHURNWATCH_API_KEY": key,
            "INGEST_URL": self.ingest.url,
            "SCORING_URL": self.scoring.url,
            "ALERTS_URL": self.alerts.url,
        }


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


async def churnwatch(env: Mapping[str, str], *args: str) -> Ran:
    proc = await asyncio.create_subprocess_exec(
        CHURNWATCH,
        *args,
        env={"PATH": "/usr/bin:/bin", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


@pytest.fixture(scope="module")
async def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """The three services on their own topics and database, for every test of the module."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    kafka = KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=infra.bootstrap_servers, TOPIC_PREFIX=prefix)
    await ensure_topics(kafka, Topics(prefix).all())
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = infra.database_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    database_url = f"{infra.database_url.rpartition('/')[0]}/{name}"
    await asyncio.to_thread(upgrade_all, database_url)
    keys = [
        {"name": "cli", "sha256": digest(KEY), "scopes": list(SCOPES)},
        {"name": "replayer", "sha256": digest(REPLAY_KEY), "scopes": ["events"]},
    ]
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
        "TOPIC_PREFIX": prefix,
        "DATABASE_URL": database_url,
        "API_KEYS": json.dumps(keys),
        "INGEST_RATE_LIMIT_PER_SECOND": "4",
        "INGEST_RATE_LIMIT_BURST": "4",
        "ALERTS_GROUP_WAIT_SECONDS": "0",
        "SCORING_RESCORE_INTERVAL_SECONDS": "0.2",
        "INGEST_SHUTDOWN_DRAIN_SECONDS": "0",
        "SCORING_SHUTDOWN_DRAIN_SECONDS": "0",
        "SCORING_WARM_UP_DAYS": "0",  # acme-corp is new: it must alert without history
        "ALERTS_SHUTDOWN_DRAIN_SECONDS": "0",
    }
    logs = tmp_path_factory.mktemp("cli-services")
    services = [ServiceProcess(name, env, logs) for name in ("ingest", "scoring", "alerts")]
    try:
        await asyncio.gather(*(s.start() for s in services))
        yield Stack(*services)
    finally:
        await asyncio.gather(*(s.stop() for s in services))
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Seeded:
    people: Ran
    accounts: Ran
    replay: Ran


@pytest.fixture(scope="module")
async def seeded(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """People and accounts imported, then events replayed — all through the CLI.

    The replay has 12 good events and 3 bad rows, two events per request, with a key allowed
    4 requests a second: ingest answers 429 with Retry-After, and the replay waits and repeats.
    """
    files = tmp_path_factory.mktemp("cli-files")
    people = files / "people.csv"
    people.write_text(
        "person_id,name,email,slack_user_id,manager_id,time_zone,active\n"
        "p_grace,Grace Okafor,grace@example.com,,,America/New_York,true\n"
        "p_maria,Maria Lopez,maria@example.com,U0MARIA,p_grace,Europe/Madrid,true\n"
    )
    renewal = (datetime.now(UTC) + timedelta(days=20)).date()
    accounts = files / "accounts.csv"
    accounts.write_text(
        "account_id,name,tier,seats,renewal_date,csm,renewal_owner\n"
        f"{ACCOUNT},Acme Corporation,growth,20,{renewal},p_maria,p_maria\n"
        "globex,Globex,starter,5,,p_maria,\n"
    )
    now = datetime.now(UTC)
    lines = []
    for n in range(12):
        at = now - timedelta(days=2, minutes=n)
        item = {
            "event_type": "usage",
            "event_id": f"replay-{n}",
            "account_id": ACCOUNT,
            "occurred_at": rfc3339(at),
            "received_at": rfc3339(at),  # as simulator files carry it: dropped
            "source": "native",
            "user_id": f"u{n % 3}",
            "type": "feature_used",
            "feature": "reports",
        }
        lines.append(json.dumps(item))
    no_user = {"event_type": "usage", "account_id": ACCOUNT, "type": "login"}
    bad_priority = {
        "event_type": "ticket",
        "account_id": ACCOUNT,
        "ticket_id": "1",
        "action": "opened",
        "priority": "sky-high",
        "status": "new",
    }
    lines.insert(3, "{not json")
    lines.insert(7, json.dumps(no_user | {"occurred_at": rfc3339(now)}))
    lines.insert(11, json.dumps(bad_priority | {"occurred_at": rfc3339(now)}))
    events = files / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    return Seeded(
        people=await churnwatch(stack.env(), "people", "import", str(people)),
        accounts=await churnwatch(stack.env(), "accounts", "import", str(accounts)),
        replay=await churnwatch(stack.env(REPLAY_KEY), "replay", str(events), "--batch", "2"),
    )


async def test_people_and_accounts_import_from_csv(seeded: Seeded) -> None:
    assert (seeded.people.code, seeded.people.out.strip()) == (0, "imported 2 people")
    assert (seeded.accounts.code, seeded.accounts.out.strip()) == (0, "imported 2 accounts")


async def test_an_import_with_a_bad_row_names_the_line_and_sends_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("account_id,name,seats\nok-co,Ok,3\nbroken,Broken,lots\n")
    ran = await churnwatch(stack.env(), "accounts", "import", str(bad))
    assert ran.code == 2
    assert f"{bad}:3:" in ran.err
    assert "lots" in ran.err
    async with httpx.AsyncClient() as client:
        answer = await client.get(
            f"{stack.scoring.url}/v1/accounts/ok-co/health",
            headers={"Authorization": f"Bearer {KEY}"},
        )
    assert answer.json()["code"] == "unknown_account"


async def test_replay_counts_accepted_rejected_with_reasons_and_retried(seeded: Seeded) -> None:
    ran = seeded.replay
    assert ran.code == 1, ran.err
    summary = ran.out.splitlines()[0]
    assert summary.startswith("accepted 12, rejected 3, retried ")
    assert int(summary.split("retried ")[1].split()[0]) > 0
    assert "line 4: not JSON" in ran.out
    assert "line 8: Object missing required field `user_id`" in ran.out
    assert "line 12: Invalid enum value 'sky-high' - at `$.priority`" in ran.out
    assert "replay [########################] 100% · 15 lines · " in ran.err


async def test_health_and_brief_of_a_scored_account_and_an_unknown_one(
    stack: Stack, seeded: Seeded
) -> None:
    async def scored() -> Ran | None:
        ran = await churnwatch(stack.env(), "health", ACCOUNT)
        return ran if ran.code == 0 else None

    ran = await eventually(scored, timeout_s=60, interval_s=1, what=f"{ACCOUNT} scored")
    assert ran is not None
    assert ran.out.startswith(f"{ACCOUNT} — Acme Corporation")
    assert "/100" in ran.out
    for component in ("activity", "recency", "breadth", "seat_utilisation", "support"):
        assert component in ran.out

    as_json = await churnwatch(stack.env(), "health", ACCOUNT, "--json")
    assert json.loads(as_json.out)["account_id"] == ACCOUNT

    brief = await churnwatch(stack.env(), "brief", ACCOUNT)
    assert brief.code == 0
    assert brief.out.startswith("Pre-call brief: Acme Corporation (acme-corp)")
    assert "CSM: Maria Lopez" in brief.out

    unknown = await churnwatch(stack.env(), "health", "no-such-account")
    assert unknown.code == 1
    assert "404 unknown_account" in unknown.err


async def test_alerts_list_shows_the_alerts_routed_to_an_owner(
    stack: Stack, seeded: Seeded
) -> None:
    """acme-corp renews in 20 days and is not green after a handful of events: the renewal
    owner (and CSM) p_maria gets renewal_at_risk."""

    async def listed() -> Ran | None:
        ran = await churnwatch(stack.env(), "alerts", "list", "--owner", "p_maria")
        return ran if "renewal_at_risk" in ran.out else None

    ran = await eventually(listed, timeout_s=60, interval_s=1, what="an alert for p_maria")
    assert ran is not None
    assert ran.code == 0
    header = ran.out.splitlines()[0].split()
    assert header == ["id", "started", "account", "rule", "severity", "state", "to", "summary"]
    assert ACCOUNT in ran.out
    nobody = await churnwatch(stack.env(), "alerts", "list", "--owner", "p_grace")
    assert nobody.out.strip() == "no alerts"
    as_json = await churnwatch(stack.env(), "alerts", "list", "--account", ACCOUNT, "--json")
    assert {a["account_id"] for a in json.loads(as_json.out)} == {ACCOUNT}


async def test_a_wrong_key_and_an_unreachable_service_exit_3_and_say_why(stack: Stack) -> None:
    wrong = await churnwatch({**stack.env(), "CHURNWATCH_API_KEY": "cw_wrong"}, "alerts", "list")
    assert wrong.code == 3
    assert "alerts answered 401 unauthenticated" in wrong.err

    gone = await churnwatch({**stack.env(), "SCORING_URL": "http://127.0.0.1:9"}, "health", "x")
    assert gone.code == 3
    assert "cannot reach scoring at http://127.0.0.1:9" in gone.err
