"""The bounded subset of `make chaos` (issue 9) that runs in `make test`.

One churnwatch under steady load through ingest, on a Kafka broker and a PostgreSQL server of
this module's own (so they can be stopped and restarted without touching the session's), with
real Slack and SMTP sinks. Each test injects one fault into the real processes, then lets
everything settle and holds the whole pipeline against the ledger of acknowledged events:
every acknowledged event counted exactly once, nothing refused counted, every health change
relayed and processed once, every notification delivered once or fallen back. The faults and
the checks are `chaos.faults`'s — the same code `make chaos` runs, with shorter outages.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from chaos.faults import (
    FaultConfig,
    FaultResult,
    Run,
    broker_outage,
    poison,
    postgres_restart,
    scoring_sigkills,
    sink_faults,
)
from chaos.harness import ChaosConfig, begin, end, finish
from chaos.load import LoadConfig
from chaos.stack import Infrastructure

BOUNDED = ChaosConfig(
    accounts=60,
    surge_accounts=200,
    load=LoadConfig(events_per_second=300.0, clients=3, batch_size=30),
    fault=FaultConfig(
        warm_seconds=2.0,
        # Longer than the producers' request timeout (15 s): batches given up while the broker
        # was away broke ingest's idempotent producer until it was replaced.
        broker_outage_seconds=20.0,
        probe_accounts=2,
        sigkills=2,
        stall_seconds=2.0,
        postgres_outage_seconds=5.0,
        alert_accounts=6,
        settle_timeout_seconds=150.0,
    ),
)


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="churnwatch-chaos-test-"))
    path.chmod(0o755)  # the postgres system user must reach its cluster directory
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
async def chaos(home: Path) -> AsyncIterator[Run]:
    infra = Infrastructure(home / "infra")
    try:
        await infra.start()
        state = await begin(BOUNDED, infra, home / "services")
        try:
            yield state
        finally:
            await end(state)
    finally:
        await infra.stop()


def held(result: FaultResult) -> str:
    """Every check's outcome, one per line (the assertion message)."""
    return "\n".join(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in result.checks)


async def test_a_stopped_broker_gets_503s_and_every_acknowledged_event_is_counted_once(
    chaos: Run,
) -> None:
    result = await broker_outage(chaos)
    assert result.ok, held(result)
    assert chaos.ledger.refused, "probes were refused while the broker was down"


async def test_scoring_killed_twice_mid_batch_loses_nothing_and_counts_nothing_twice(
    chaos: Run,
) -> None:
    result = await scoring_sigkills(chaos)
    assert result.ok, held(result)
    assert chaos.deployment.service("scoring").starts == 3


async def test_a_postgres_restart_pauses_the_consumers_and_readiness_goes_false_and_back(
    chaos: Run,
) -> None:
    result = await postgres_restart(chaos)
    assert result.ok, held(result)


async def test_slack_and_smtp_failures_deliver_each_notification_once_or_fall_back(
    chaos: Run,
) -> None:
    result = await sink_faults(chaos)
    assert result.ok, held(result)


async def test_poison_on_every_consumed_topic_is_dead_lettered_and_consumers_keep_going(
    chaos: Run,
) -> None:
    result = await poison(chaos)
    assert result.ok, held(result)
    assert len(chaos.poison) > 50


async def test_after_every_fault_nothing_is_lost_doubled_or_leaked(chaos: Run) -> None:
    result = FaultResult("final", "after every fault")
    await finish(chaos, result)
    assert result.ok, held(result)
    assert len(chaos.ledger.acknowledged) > 5000
