"""What a demo run produced, gathered from the services and the sinks into one document.

Every figure of the report comes from here: the scores and their history from scoring's read
API, the alerts from the alerts API, the Slack messages and emails from the sinks'
recordings. The simulation contributes only what it legitimately may: the portfolio as it was
sent (names, teams) and the ground truth the pipeline never saw, to judge the alerts against.

``RunData`` is saved as ``reports/demo-run.json`` so the report can be re-rendered
(``python -m churnwatch.report reports/demo-run.json``) without running the demo again.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from churnwatch.client import Client, ServiceRefused
from churnwatch.simulator import GroundTruth, Simulation
from shared.events import AccountRecord


class Person(msgspec.Struct, frozen=True):
    person_id: str
    name: str
    role: str
    time_zone: str
    email: str | None = None


class Account(msgspec.Struct, frozen=True):
    account_id: str
    name: str
    tier: str | None
    seats: int | None
    arr: float | None
    renewal_date: date | None
    csm: str | None
    account_executive: str | None
    renewal_owner: str | None


class Truth(msgspec.Struct, frozen=True):
    account_id: str
    story: str
    churned: bool
    churn_date: date | None
    opportunity_date: date | None

    def ground_truth(self) -> GroundTruth:
        return GroundTruth(
            self.account_id, self.story, self.churned, self.churn_date, self.opportunity_date
        )


class Point(msgspec.Struct, frozen=True, array_like=True):
    as_of: datetime
    score: float
    band: str


class Health(msgspec.Struct, frozen=True):
    as_of: datetime
    score: float
    band: str
    reasons: list[str]


class AlertRow(msgspec.Struct, frozen=True):
    id: int
    account_id: str
    rule: str
    motion: str
    severity: str
    state: str
    summary: str
    started_at: datetime
    notified_at: datetime | None
    resolved_at: datetime | None
    escalated_at: datetime | None
    recipients: list[str]  # person ids (or "team channel")
    path: list[str]


class Mail(msgspec.Struct, frozen=True):
    file: str
    subject: str
    to: list[str]
    raw: str


class RunData(msgspec.Struct, kw_only=True):
    seed: int
    days: int
    start: date
    speed: float
    intensity: float
    collected_at: datetime | None = None  # the clock's time when collected
    people: list[Person]
    accounts: list[Account]
    truth: list[Truth]
    rules: list[tuple[str, str]]  # (rule, motion) in the order of the rules file
    bands: list[tuple[str, float, float]]  # (band, from, to) of the model's default profile
    onboarding_days: int = 0  # alerts silenced (and not counted) while baselines are built
    health: dict[str, Health] = msgspec.field(default_factory=dict)
    history: dict[str, list[Point]] = msgspec.field(default_factory=dict)
    alerts: list[AlertRow] = msgspec.field(default_factory=list)
    slack: list[dict[str, Any]] = msgspec.field(default_factory=list)
    mail: list[Mail] = msgspec.field(default_factory=list)
    ingest: dict[str, Any] = msgspec.field(default_factory=dict)
    timings: dict[str, float] = msgspec.field(default_factory=dict)

    @property
    def end(self) -> date:
        """The first day after the run."""
        return self.start + timedelta(days=self.days)

    def ground_truth(self) -> list[GroundTruth]:
        return [t.ground_truth() for t in self.truth]


def save(run: RunData, path: Path) -> None:
    path.write_bytes(msgspec.json.encode(run))


def load(path: Path) -> RunData:
    return msgspec.json.decode(path.read_bytes(), type=RunData)


def from_simulation(
    simulation: Simulation,
    rules: Sequence[tuple[str, str]],
    *,
    speed: float,
    onboarding_days: int = 0,
    bands: Sequence[tuple[str, float, float]] = (),
    latest_accounts: Sequence[AccountRecord] = (),
) -> RunData:
    """What the run sent and what really happened: the people, the accounts (their latest
    records sent, when given — owners change during a run), and the ground truth."""
    accounts = latest_accounts or simulation.accounts
    return RunData(
        seed=simulation.seed,
        days=simulation.days,
        start=simulation.start,
        speed=speed,
        intensity=simulation.intensity,
        people=[
            Person(p.person_id, p.name, simulation.roles.get(p.person_id, ""), p.time_zone, p.email)
            for p in simulation.people
        ],
        accounts=[
            Account(
                a.account_id,
                a.name,
                a.tier,
                a.seats,
                a.arr,
                a.renewal_date,
                a.team.csm,
                a.team.account_executive,
                a.team.renewal_owner,
            )
            for a in accounts
        ],
        truth=[
            Truth(t.account_id, t.story, t.churned, t.churn_date, t.opportunity_date)
            for t in simulation.truth
        ],
        rules=list(rules),
        bands=list(bands),
        onboarding_days=onboarding_days,
    )


async def gather(run: RunData, client: Client, sinks_dir: Path, *, concurrency: int = 8) -> None:
    """Fill ``run`` with what the services hold now and what the sinks recorded."""
    slots = asyncio.Semaphore(concurrency)
    start = f"{run.start.isoformat()}T00:00:00Z"

    async def one(account_id: str) -> None:
        async with slots:
            path = f"/v1/accounts/{account_id}"
            try:
                current = await client.get_json("scoring", f"{path}/health")
            except ServiceRefused as exc:
                if exc.status == 404:  # never scored (no event arrived): no health, no history
                    return
                raise
            run.health[account_id] = Health(
                as_of=_time(current["as_of"]),
                score=float(current["score"]),
                band=str(current["band"]),
                reasons=list(current.get("reasons", [])),
            )
            history = await client.get_json(
                "scoring", f"{path}/health/history", {"from": start, "to": current["as_of"]}
            )
            run.history[account_id] = [
                Point(_time(p["as_of"]), float(p["score"]), str(p["band"]))
                for p in history["points"]
            ]

    await asyncio.gather(*(one(a.account_id) for a in run.accounts))
    run.alerts = await all_alerts(client)
    if run.health:
        run.collected_at = max(h.as_of for h in run.health.values())
    run.slack = read_slack(sinks_dir)
    run.mail = read_mail(sinks_dir)


async def all_alerts(client: Client) -> list[AlertRow]:
    """Every alert, oldest first (the API pages newest first with ``before_id``)."""
    rows: list[AlertRow] = []
    before: int | None = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if before is not None:
            params["before_id"] = before
        page = await client.get_json("alerts", "/v1/alerts", params)
        for alert in page["alerts"]:
            rows.append(
                AlertRow(
                    id=int(alert["id"]),
                    account_id=alert["account_id"],
                    rule=alert["rule"],
                    motion=alert["motion"],
                    severity=alert["severity"],
                    state=alert["state"],
                    summary=alert.get("summary") or "",
                    started_at=_time(alert["started_at"]),
                    notified_at=_optional_time(alert.get("notified_at")),
                    resolved_at=_optional_time(alert.get("resolved_at")),
                    escalated_at=_optional_time(alert.get("escalated_at")),
                    recipients=[
                        r.get("person_id") or r.get("name", "?")
                        for r in alert.get("route", {}).get("recipients", [])
                    ],
                    path=list(alert.get("route", {}).get("path", [])),
                )
            )
        before = page.get("next_before_id")
        if before is None:
            return sorted(rows, key=lambda r: r.id)


def read_slack(sinks_dir: Path) -> list[dict[str, Any]]:
    """The Slack requests the sink recorded (``slack.jsonl``), in the order received."""
    path = sinks_dir / "slack.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_mail(sinks_dir: Path) -> list[Mail]:
    """The emails the SMTP sink accepted (``mail/*.eml``), in the order received."""
    folder = sinks_dir / "mail"
    found: list[Mail] = []
    for file in sorted(folder.glob("*.eml")) if folder.exists() else []:
        raw = file.read_bytes()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        found.append(
            Mail(
                file=str(file),
                subject=str(message["Subject"] or ""),
                to=[str(a) for a in message.get_all("To", [])],
                raw=raw.decode("utf-8", errors="replace"),
            )
        )
    return found


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _optional_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
