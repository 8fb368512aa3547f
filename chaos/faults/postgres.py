"""PostgreSQL restarted under load."""

from __future__ import annotations

import asyncio
import time

from chaos.faults.common import (
    FaultResult,
    Run,
)
from chaos.faults.verify import (
    readiness_summary,
    verify,
)

# ---------------------------------------------------------------------------------------------
# 3. PostgreSQL restarts


async def postgres_restart(run: Run) -> FaultResult:
    hold = run.config.postgres_outage_seconds
    result = FaultResult("postgres", f"PostgreSQL stopped {hold:g} s and restarted")
    started = time.monotonic()
    deployment = run.deployment
    consumers = [s for s in deployment.all_services() if s.name in ("scoring", "alerts")]
    starts = {s.label: s.starts for s in consumers}
    await asyncio.sleep(run.config.warm_seconds)
    await run.infra.stop_postgres()
    down = time.monotonic()
    await asyncio.sleep(hold)
    await run.infra.start_postgres()
    up = time.monotonic()
    ready_again: dict[str, float] = {}
    for service in consumers:
        await service.wait_ready(timeout_s=120)
        ready_again[service.label] = time.monotonic() - up
        await run.sampler.wait_for(service.label, 200, up, timeout_s=10)
    result.seconds = time.monotonic() - started
    result.figures["database down"] = f"t={run.at(down)} s to t={run.at(up)} s"
    for service in consumers:
        ok, text = readiness_summary(run.sampler, service.label, down, time.monotonic(), run)
        result.figures[f"{service.label} /readyz"] = text
        result.check(f"{service.label} readiness went false and came back", ok, text)
        result.check(
            f"{service.label} kept running (paused, not crashed)",
            service.running and service.starts == starts[service.label],
            f"ready {ready_again[service.label]:.1f} s after the database was back",
        )
    await verify(run, result)
    return result
