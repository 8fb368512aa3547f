"""The Kafka broker stopped and started under load."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from chaos.faults.common import (
    FaultResult,
    Run,
)
from chaos.faults.verify import (
    readiness_summary,
    verify,
)
from chaos.load import LoadGenerator
from chaos.stack import Deployment

# ---------------------------------------------------------------------------------------------
# 1. The broker stops for a while


async def broker_outage(run: Run) -> FaultResult:
    result = FaultResult("broker", f"Kafka broker stopped {run.config.broker_outage_seconds:g} s")
    started = time.monotonic()
    replaced_before = _producers_replaced(run.deployment)
    await asyncio.sleep(run.config.warm_seconds)
    await run.infra.stop_kafka()
    down = time.monotonic()
    probes: Counter[str] = Counter()
    n = 0
    while time.monotonic() - down < run.config.broker_outage_seconds:
        n += 1
        accounts = [f"probe-broker-{n}-{i}" for i in range(run.config.probe_accounts)]
        probes += await run.load.probe(accounts, 4, f"probe{n}")
        await asyncio.sleep(1.0)
    outage_end = time.monotonic()
    await run.infra.start_kafka()
    up = time.monotonic()
    recovered = await _first_ack_after(run.load, up, timeout_s=120)
    result.seconds = time.monotonic() - started
    answers = [a for a in run.load.stats.answers if down + 1.0 <= a.at <= outage_end]
    acked = [a for a in answers if a.status is not None and a.status < 300]
    statuses = Counter(f"{a.status} {a.code or ''}".strip() for a in answers)
    without_retry_after = [a for a in answers if a.status == 503 and not a.retry_after]
    result.figures |= {
        "broker down": f"t={run.at(down)} s to t={run.at(up)} s (restarted and ready)",
        "ingest answers while down": ", ".join(f"{k} ×{v}" for k, v in statuses.most_common()),
        "probes (sent once, never retried)": ", ".join(f"{k} ×{v}" for k, v in probes.items()),
        "first acknowledgement after the restart": (
            f"{recovered - up:.1f} s after the broker was ready" if recovered else "none"
        ),
        "producers replaced (the broker refused their sequence numbers after the restart)": (
            ", ".join(
                f"{label} ×{n - replaced_before.get(label, 0)}"
                for label, n in _producers_replaced(run.deployment).items()
            )
        ),
    }
    result.check(
        "ingest acknowledges nothing while the broker is down",
        not acked and bool(answers),
        f"{len(answers)} requests answered during the outage, {len(acked)} with 2xx",
    )
    result.check(
        "every 503 carries Retry-After",
        not without_retry_after,
        f"{len(without_retry_after)} without",
    )
    result.check(
        "every probe was refused with 503",
        set(probes) == {"503 kafka_unavailable"},
        ", ".join(f"{k} ×{v}" for k, v in probes.items()),
    )
    await run.sampler.wait_for("ingest", 200, up, timeout_s=30)
    ok, text = readiness_summary(run.sampler, "ingest", down, time.monotonic(), run)
    result.check("ingest readiness went false and came back", ok, text)
    result.check(
        "ingest acknowledges again after the restart",
        recovered is not None,
        f"the first 202 came {recovered - up:.1f} s after the broker was ready"
        if recovered
        else "no 202 within 120 s of the restart",
    )
    await verify(run, result)
    return result


def _producers_replaced(deployment: Deployment) -> dict[str, int]:
    """Per service process, how often it logged replacing its Kafka producer."""
    return {s.label: s.logs().count("replacing the producer") for s in deployment.all_services()}


async def _first_ack_after(load: LoadGenerator, since: float, timeout_s: float) -> float | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for answer in reversed(load.stats.answers):
            if answer.at < since:
                break
            if answer.status == 202 and not answer.probe:
                first = min(
                    a.at
                    for a in load.stats.answers
                    if a.at >= since and a.status == 202 and not a.probe
                )
                return first
        await asyncio.sleep(0.2)
    return None
