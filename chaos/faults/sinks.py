"""Slack and SMTP answering errors, rate limits, slowness and nothing."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from chaos.checks import (
    Check,
)
from chaos.faults.common import (
    FaultResult,
    Run,
)
from chaos.faults.scoring import (
    _until,
)
from chaos.faults.verify import (
    sink_attempts,
    verify,
)

# ---------------------------------------------------------------------------------------------
# 5. Slack and SMTP misbehave


SLACK_FAULTS = ("429:1", "500", "slow:1", "slow:4", "503", "channel_not_found", "drop", "429:2")
SMTP_FAULTS = ("451", "550", "drop", "451", "250", "550")


async def sink_faults(run: Run) -> FaultResult:
    result = FaultResult(
        "sinks", "Slack: 429, 5xx, slow, timeouts, permanent errors; SMTP: 451, 550, drops"
    )
    started = time.monotonic()
    deployment = run.deployment
    slack, smtp = deployment.slack, deployment.smtp
    assert slack is not None
    assert smtp is not None
    slack_before, smtp_before = len(slack.requests), len(smtp.received)
    slack.program(*SLACK_FAULTS)
    smtp.program(*SMTP_FAULTS)
    # Accounts that have had no events: three urgent tickets each → a ticket-surge alert to
    # their CSM, during the programmed failures.
    await _send_surges(run)

    async def drained() -> bool:  # each request takes the next programmed answer
        return len(slack.requests) - slack_before >= len(SLACK_FAULTS) and len(
            smtp.received
        ) - smtp_before >= len(SMTP_FAULTS)

    exercised = await _until(drained, timeout_s=120)

    async def answered() -> bool:  # a held (slow) request counts once the sink answered it
        return all(r.answered or r.reply.drop for r in slack.requests[slack_before:])

    await _until(answered, timeout_s=60)
    result.check(
        "every programmed failure was answered to a delivery attempt",
        exercised,
        f"Slack: {', '.join(SLACK_FAULTS)}; SMTP: {', '.join(SMTP_FAULTS)}; attempts since: "
        f"Slack {len(slack.requests) - slack_before}, SMTP {len(smtp.received) - smtp_before}",
    )
    await verify(run, result)
    attempts = sink_attempts(run, slack_before, smtp_before)
    replies = Counter(f"{a.channel} {a.reply}" for a in attempts)
    result.figures["attempts the sinks saw during the fault"] = ", ".join(
        f"{k} ×{v}" for k, v in sorted(replies.items())
    )
    result.checks.append(_retry_after_honoured(run))
    result.seconds = time.monotonic() - started
    return result


async def _send_surges(run: Run) -> None:
    deployment = run.deployment
    now = datetime.now(UTC)
    items = [
        {
            "event_type": "ticket",
            "event_id": f"surge-{account}-{i}",
            "account_id": account,
            "occurred_at": (now - timedelta(minutes=5 + i)).isoformat(),
            "ticket_id": f"surge-{i}",
            "action": "opened",
            "priority": "urgent",
            "status": "open",
        }
        for account in run.alert_accounts
        for i in range(3)
    ]
    key = deployment.secrets.keys["events"]
    async with httpx.AsyncClient(base_url=deployment.service("ingest").url, timeout=30) as http:
        for _ in range(60):
            answer = await http.post(
                "/v1/events", json=items, headers={"Authorization": f"Bearer {key}"}
            )
            if answer.status_code == 202:
                run.ledger.acknowledge(items)
                return
            await asyncio.sleep(1)
    raise RuntimeError("ingest did not take the ticket surges")


def _retry_after_honoured(run: Run) -> Check:
    """After a 429 with Retry-After, the same message was not tried again sooner."""
    slack = run.deployment.slack
    assert slack is not None
    by_key: dict[str, list[Any]] = {}
    for request in slack.requests:
        if request.key:
            by_key.setdefault(request.key, []).append(request)
    gaps: list[float] = []
    early: list[str] = []
    for key, requests in by_key.items():
        for first, then in itertools.pairwise(requests):
            if first.reply.status == 429 and first.reply.retry_after:
                gap = then.received_at - first.received_at
                gaps.append(gap)
                if gap < first.reply.retry_after - 0.05:
                    early.append(f"{key} after {gap:.2f} s")
    return Check(
        "a 429 is honoured: no retry before Retry-After",
        not early,
        f"{len(gaps)} retries after a 429, shortest gap {min(gaps):.2f} s"
        if gaps
        else "no 429 was followed by a retry of the same message",
    )
