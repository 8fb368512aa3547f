"""One chaos run: start everything, seed ownership, drive the load, inject each fault in turn,
verify after each, search the logs for secrets, stop everything — also on failure."""

from __future__ import annotations

import contextlib
import platform
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from chaos.checks import Check
from chaos.faults import FAULTS, FaultConfig, FaultResult, Run, verify
from chaos.inputs import hostile_inputs
from chaos.ledger import Ledger
from chaos.load import LoadConfig, LoadGenerator, Workload
from chaos.observe import ReadinessSampler
from chaos.stack import Deployment, Infrastructure, Service, Tunings


@dataclass(frozen=True)
class ChaosConfig:
    accounts: int = 300
    surge_accounts: int = 800  # accounts that get one alert each, a trickle through the run
    surge_every_batches: int = 8
    faults: tuple[str, ...] = tuple(FAULTS)
    inputs: bool = True  # hostile inputs after the faults (chaos.inputs)
    load: LoadConfig = field(default_factory=LoadConfig)
    fault: FaultConfig = field(default_factory=FaultConfig)
    tunings: Tunings = field(default_factory=Tunings)

    @classmethod
    def quick(cls) -> ChaosConfig:
        """A shorter run: the same faults, shorter outages, two kills, fewer accounts."""
        return cls(
            accounts=120,
            surge_accounts=300,
            load=LoadConfig(events_per_second=400.0, clients=3),
            fault=FaultConfig(
                warm_seconds=3.0,
                broker_outage_seconds=10.0,
                probe_accounts=3,
                sigkills=2,
                postgres_outage_seconds=6.0,
                rebalance_hold_seconds=4.0,
                crash_leave=False,
                alert_accounts=6,
            ),
        )


@dataclass
class RunResult:
    config: ChaosConfig
    started_at: datetime
    seconds: float = 0.0
    faults: list[FaultResult] = field(default_factory=list)
    final: FaultResult = field(default_factory=lambda: FaultResult("final", "after every fault"))
    events_acknowledged: int = 0
    events_refused: int = 0
    events_in_doubt: int = 0
    load_seconds: float = 0.0
    requests: int = 0
    retries: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    machine: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(f.ok for f in [*self.faults, self.final])


def people() -> list[dict[str, object]]:
    csms: list[dict[str, object]] = [
        {
            "person_id": f"p_csm_{i}",
            "name": f"CSM {i}",
            "email": f"csm{i}@chaos.invalid",
            "slack_user_id": f"U_CSM{i}",
            "manager_id": "p_lead",
        }
        for i in range(4)
    ]
    return [
        *csms,
        {"person_id": "p_lead", "name": "Team Lead", "email": "lead@chaos.invalid"},
        {
            "person_id": "p_alerts",
            "name": "Alert CSM",
            "email": "alerts-csm@chaos.invalid",
            "slack_user_id": "U_ALERTS",
            "manager_id": "p_lead",
        },
        {
            "person_id": "p_mail",
            "name": "Mail-only CSM",
            "email": "mail-csm@chaos.invalid",
            "manager_id": "p_lead",
        },
    ]


def accounts(load_accounts: list[str], alert_accounts: list[str]) -> list[dict[str, object]]:
    """Load accounts (nine in ten with a CSM), and the accounts that will get one alert each."""
    records: list[dict[str, object]] = []
    for n, account in enumerate(load_accounts):
        record: dict[str, object] = {"account_id": account, "name": account.upper(), "seats": 20}
        if n % 10:  # one in ten has no team: its alerts go to the team channel
            record["team"] = {"csm": f"p_csm_{n % 4}"}
        records.append(record)
    records += [  # alternately to a CSM on Slack (email as fallback) and one on email only
        {
            "account_id": a,
            "name": a.upper(),
            "seats": 20,
            "team": {"csm": "p_mail" if n % 2 else "p_alerts"},
        }
        for n, a in enumerate(alert_accounts)
    ]
    return records


async def seed(deployment: Deployment, load_accounts: list[str], alert_accounts: list[str]) -> None:
    """People and account records through ingest, before any event."""
    key = deployment.secrets.keys["accounts"]
    async with httpx.AsyncClient(
        base_url=deployment.service("ingest").url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ) as http:
        for path, body in (
            ("/v1/people", people()),
            ("/v1/accounts", accounts(load_accounts, alert_accounts)),
        ):
            answer = await http.post(path, json=body)
            if answer.status_code != 202 or answer.json().get("rejected"):
                raise RuntimeError(f"seeding {path} failed: {answer.status_code} {answer.text}")


def secrets_in_logs(deployment: Deployment) -> Check:
    """No secret the services were given appears in any line any of them logged."""
    found: list[str] = []
    lines = 0
    services: list[Service] = deployment.all_services()
    for service in services:
        text = service.logs()
        lines += text.count("\n")
        for name, value in deployment.secrets.values().items():
            if value in text:
                found.append(f"{name} in {service.label}'s log")
    return Check(
        "no secret or API key in any log line",
        not found,
        f"{lines} log lines of {len(services)} processes searched for "
        f"{len(deployment.secrets.values())} secrets; found: {', '.join(found) or 'none'}",
    )


async def begin(config: ChaosConfig, infra: Infrastructure, home: Path) -> Run:
    """A deployment on ``infra`` (started), ownership seeded, the load running."""
    deployment = Deployment(infra.endpoints, home, tunings=config.tunings)
    sampler = ReadinessSampler(deployment)
    await deployment.prepare()
    try:
        await deployment.start()
        sampler.start()
        load_accounts = [f"acct-{n:03d}" for n in range(config.accounts)]
        alert_accounts = [f"alert-{n:04d}" for n in range(config.surge_accounts)]
        await seed(deployment, load_accounts, alert_accounts)
    except BaseException:
        await sampler.stop()
        await deployment.stop()
        raise
    ledger = Ledger()
    load = LoadGenerator(
        deployment.service("ingest").url,
        deployment.secrets.keys["events"],
        ledger,
        Workload(
            tuple(load_accounts),
            surge_accounts=tuple(alert_accounts[config.fault.alert_accounts :]),
            surge_every_batches=config.surge_every_batches,
        ),
        config.load,
    )
    state = Run(infra, deployment, load, ledger, sampler, config.fault)
    state.alert_accounts = alert_accounts[: config.fault.alert_accounts]
    await load.start()
    return state


async def end(state: Run) -> None:
    """Stop the load, the sampler and every process of the deployment (not ``infra``)."""
    await state.sampler.stop()
    with contextlib.suppress(Exception):
        await state.load.stop()
    await state.deployment.stop()


async def finish(state: Run, result: FaultResult) -> None:
    """The checks after every fault: the ledger once more, secrets, processes, the load."""
    await verify(state, result)
    await state.load.pause()
    result.checks.append(secrets_in_logs(state.deployment))
    services = state.deployment.all_services()
    result.check(
        "every service process is still running",
        all(s.running for s in services),
        ", ".join(f"{s.label}: started {s.starts}×" for s in services),
    )
    result.check(
        "the load generator met no unexpected answer",
        not state.load.stats.unexpected,
        ", ".join(state.load.stats.unexpected[:5]) or "none",
    )


async def run(config: ChaosConfig, home: Path) -> RunResult:
    result = RunResult(config, datetime.now(UTC), machine=_machine())
    started = time.monotonic()
    infra = Infrastructure(home / "infra")
    state: Run | None = None
    try:
        await infra.start()
        state = await begin(config, infra, home / "services")
        for name in config.faults:
            print(f"chaos: t={state.at(time.monotonic())} s — {name}", flush=True)
            outcome = await FAULTS[name](state)
            result.faults.append(outcome)
            _print(outcome)
        if config.inputs:
            print(f"chaos: t={state.at(time.monotonic())} s — hostile inputs", flush=True)
            outcome = await hostile_inputs(state)
            result.faults.append(outcome)
            _print(outcome)
        await finish(state, result.final)
        _print(result.final)
        stats, ledger = state.load.stats, state.ledger
        result.events_acknowledged = len(ledger.acknowledged)
        result.events_refused = len(ledger.refused)
        result.events_in_doubt = len(ledger.in_doubt)
        result.load_seconds = stats.active_seconds
        result.requests = len([a for a in stats.answers if not a.probe])
        result.retries = stats.retries
        result.statuses = dict(stats.statuses())
    except Exception as exc:  # reported, with what ran until then
        traceback.print_exc()
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        result.seconds = time.monotonic() - started
        if state is not None:
            await end(state)
        await infra.stop()
    return result


def _print(outcome: FaultResult) -> None:
    for check in outcome.checks:
        mark = "ok  " if check.ok else "FAIL"
        print(f"  {mark} {check.name}: {check.detail}", flush=True)


def _machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import os

    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"
