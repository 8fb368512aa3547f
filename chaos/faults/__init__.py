"""The faults, one module each, and the verification every fault ends with.

A fault runs under the steady load, breaks one thing for real (a process stopped, killed,
restarted; a sink told to misbehave; poison put on the topics), watches what the services
answer meanwhile, then lets everything settle and checks the whole pipeline against the
ledger (:func:`verify`). Each returns a :class:`FaultResult`: its figures and its checks.
"""

from __future__ import annotations

from chaos.faults.broker import (
    broker_outage,
)
from chaos.faults.common import (
    ALERTS_TOPICS,
    SCORING_TOPICS,
    Fault,
    FaultConfig,
    FaultResult,
    Run,
)
from chaos.faults.poison import (
    OVERFLOW_ACCOUNT,
    OVERFLOW_POISON,
    OVERFLOW_QUANTITY,
    poison,
    poison_catalogue,
)
from chaos.faults.postgres import (
    postgres_restart,
)
from chaos.faults.scoring import (
    scoring_rebalance,
    scoring_sigkills,
)
from chaos.faults.sinks import (
    SLACK_FAULTS,
    SMTP_FAULTS,
    sink_faults,
)
from chaos.faults.verify import (
    readiness_summary,
    settle,
    sink_attempts,
    unrecorded_keys,
    verify,
    verify_deliveries,
    verify_health_chain,
)

FAULTS: dict[str, Fault] = {
    "broker": broker_outage,
    "sigkill": scoring_sigkills,
    "postgres": postgres_restart,
    "rebalance": scoring_rebalance,
    "sinks": sink_faults,
    "poison": poison,
}

__all__ = [
    "ALERTS_TOPICS",
    "FAULTS",
    "OVERFLOW_ACCOUNT",
    "OVERFLOW_POISON",
    "OVERFLOW_QUANTITY",
    "SCORING_TOPICS",
    "SLACK_FAULTS",
    "SMTP_FAULTS",
    "Fault",
    "FaultConfig",
    "FaultResult",
    "Run",
    "broker_outage",
    "poison",
    "poison_catalogue",
    "postgres_restart",
    "readiness_summary",
    "scoring_rebalance",
    "scoring_sigkills",
    "settle",
    "sink_attempts",
    "sink_faults",
    "unrecorded_keys",
    "verify",
    "verify_deliveries",
    "verify_health_chain",
]
