"""The run, the configuration of a fault and what a fault returns."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from chaos.checks import (
    Check,
    PoisonOutcome,
)
from chaos.ledger import Ledger
from chaos.load import LoadGenerator
from chaos.observe import (
    ReadinessSampler,
)
from chaos.stack import Deployment, Infrastructure

SCORING_TOPICS = ("usage", "tickets", "surveys", "accounts", "people")
ALERTS_TOPICS = ("health", "accounts", "people")


@dataclass(frozen=True)
class FaultConfig:
    """How hard each fault hits; ``quick()`` is the bounded subset ``make test`` runs."""

    warm_seconds: float = 5.0
    broker_outage_seconds: float = 20.0
    probe_accounts: int = 5
    sigkills: int = 5
    stall_seconds: float = 2.5
    postgres_outage_seconds: float = 10.0
    rebalance_hold_seconds: float = 6.0
    crash_leave: bool = True
    alert_accounts: int = 12
    settle_timeout_seconds: float = 240.0


@dataclass
class Run:
    """Everything a fault needs: the system, the load, the ledger, the readiness samples."""

    infra: Infrastructure
    deployment: Deployment
    load: LoadGenerator
    ledger: Ledger
    sampler: ReadinessSampler
    config: FaultConfig
    t0: float = field(default_factory=time.monotonic)
    alert_accounts: list[str] = field(default_factory=list)
    poison: list[PoisonOutcome] = field(default_factory=list)

    def at(self, moment: float) -> float:
        """Seconds since the run started."""
        return round(moment - self.t0, 1)


@dataclass
class FaultResult:
    name: str
    title: str
    seconds: float = 0.0
    figures: dict[str, str] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))


Fault = Callable[[Run], Awaitable[FaultResult]]
