"""Scoring replicas killed (SIGKILL) and a consumer-group rebalance."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable

from chaos.faults.common import (
    SCORING_TOPICS,
    FaultResult,
    Run,
)
from chaos.faults.verify import (
    verify,
)
from chaos.observe import (
    GroupOffsets,
    group_members,
    scalar,
)
from chaos.stack import Deployment, Service

# ---------------------------------------------------------------------------------------------
# 2. Scoring SIGKILLed mid-batch, again and again


async def scoring_sigkills(run: Run) -> FaultResult:
    kills = run.config.sigkills
    result = FaultResult("sigkill", f"scoring SIGKILLed mid-batch ×{kills} and restarted")
    started = time.monotonic()
    deployment = run.deployment
    settings = deployment.kafka_settings
    consumed = [deployment.topics.name(t) for t in SCORING_TOPICS]
    batch = deployment.tunings.scoring_batch_records
    # Long enough a stall for a backlog of several batches (shorter than the session timeout).
    stall = min(6.0, max(run.config.stall_seconds, 4 * batch / run.load.events_per_second))
    rows: list[str] = []
    duplicates_skipped = 0.0
    landed_mid_batch = 0
    async with GroupOffsets(settings, deployment.scoring_group, consumed) as offsets:
        for number in range(1, kills + 1):
            scoring = deployment.service("scoring")
            # A backlog first, so the consumer is busy with batch after batch when the kill
            # lands: the kill follows the first batch counted after the process resumes.
            assert scoring.proc is not None
            os.kill(scoring.proc.pid, signal.SIGSTOP)
            await asyncio.sleep(stall)
            duplicates_skipped += await _metric_after_continue(scoring)
            before = await _claimed(deployment)

            async def consuming(before: int = before) -> bool:
                return await _claimed(deployment) > before

            if not await _until(consuming, timeout_s=60, interval_s=0.02):
                result.check(f"scoring consumes before kill {number}", False, "it did not")
                break
            ends = await offsets.ends()
            scoring.kill()
            # Produced before the kill, not committed by it (its offsets are frozen now).
            behind = await offsets.uncommitted(ends)
            at_kill = await _claimed(deployment)
            landed_mid_batch += behind > 0
            rows.append(
                f"kill {number} at t={run.at(time.monotonic())} s: {behind} records not yet "
                f"committed, {at_kill - before} events counted since consumption resumed"
            )
            await scoring.start()
    await asyncio.sleep(run.config.warm_seconds)
    duplicates_skipped += await deployment.service("scoring").metric(
        "churnwatch_scoring_events_duplicate_total"
    )
    result.seconds = time.monotonic() - started
    result.figures["kills"] = "; ".join(rows)
    result.figures["redelivered events skipped as duplicates after restarts"] = (
        f"{duplicates_skipped:g}"
    )
    result.check(
        "every kill landed while records were uncommitted",
        landed_mid_batch == kills,
        f"{landed_mid_batch} of {kills}",
    )
    await verify(run, result)
    return result


async def _metric_after_continue(scoring: Service) -> float:
    """SIGCONT the stalled process, then read its count of duplicates skipped so far."""
    assert scoring.proc is not None
    os.kill(scoring.proc.pid, signal.SIGCONT)
    return await scoring.metric("churnwatch_scoring_events_duplicate_total")


async def _claimed(deployment: Deployment) -> int:
    return await scalar(deployment.dsn, "SELECT count(*) FROM scoring.processed_events")


async def _until(
    probe: Callable[[], Awaitable[bool]], *, timeout_s: float, interval_s: float = 0.1
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await probe():
            return True
        await asyncio.sleep(interval_s)
    return False


# ---------------------------------------------------------------------------------------------
# 4. Two scoring instances; one leaves and rejoins


async def scoring_rebalance(run: Run) -> FaultResult:
    result = FaultResult("rebalance", "two scoring instances; one leaves and rejoins")
    started = time.monotonic()
    deployment = run.deployment
    settings = deployment.kafka_settings
    hold = run.config.rebalance_hold_seconds
    second = deployment.add("scoring")
    await second.start()
    steps: list[str] = []

    async def members(expected: int) -> bool:
        return await group_members(settings, deployment.scoring_group) == expected

    joined = await _until(lambda: members(2), timeout_s=60)
    steps.append(f"second instance joined ({'2 members' if joined else 'not seen'})")
    await asyncio.sleep(hold)
    consumed_by_second = await second.metric("churnwatch_scoring_events_consumed_total")
    exit_code = await second.terminate()
    left = await _until(lambda: members(1), timeout_s=60)
    steps.append(f"it left with SIGTERM (exit {exit_code}; {'1 member' if left else 'not seen'})")
    await asyncio.sleep(hold)
    await second.start()
    rejoined = await _until(lambda: members(2), timeout_s=60)
    steps.append(f"it rejoined ({'2 members' if rejoined else 'not seen'})")
    await asyncio.sleep(hold)
    crashed = True
    if run.config.crash_leave:
        second.kill()
        steps.append("it was SIGKILLed (its partitions move after the session timeout)")
        crashed = await _until(lambda: members(1), timeout_s=60)
        await asyncio.sleep(hold)
        await second.start()
        crashed = crashed and await _until(lambda: members(2), timeout_s=60)
        steps.append(f"it rejoined ({'2 members' if crashed else 'not seen'})")
        await asyncio.sleep(hold)
    result.check(
        "the group went 1 → 2 → 1 → 2 members",
        joined and left and rejoined and crashed,
        "; ".join(steps),
    )
    result.check(
        "both instances consumed",
        consumed_by_second > 0,
        f"the second instance counted {consumed_by_second:g} events before leaving",
    )
    result.check("a graceful leave exits 0", exit_code == 0, f"exit status {exit_code}")
    result.figures["steps"] = "; ".join(steps)
    await verify(run, result)
    await second.terminate()
    deployment.services["scoring"].remove(second)
    result.seconds = time.monotonic() - started
    return result
