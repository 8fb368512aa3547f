"""Settling and verifying: what every fault ends with."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import msgspec

from chaos.checks import (
    Attempt,
    Check,
    Row,
    audit_deliveries,
)
from chaos.faults.common import (
    ALERTS_TOPICS,
    SCORING_TOPICS,
    FaultResult,
    Run,
)
from chaos.ledger import compare, counts_of
from chaos.observe import (
    ReadinessSampler,
    alerts_outbox,
    fetch,
    lag,
    read_topic,
    scalar,
    scoring_counts,
)
from chaos.stack import TEAM_EMAIL, Deployment
from shared import events

# ---------------------------------------------------------------------------------------------
# Settling and verifying


async def settle(run: Run) -> float:
    """Pause the load and wait until every consumer caught up and every queue is empty;
    returns the seconds it took. Raises ``TimeoutError`` past the configured bound."""
    started = time.monotonic()
    await run.load.pause()
    deployment = run.deployment
    settings = deployment.kafka_settings
    topics = deployment.topics
    quiet_rounds = 0
    async with asyncio.timeout(run.config.settle_timeout_seconds):
        while quiet_rounds < 2:
            await asyncio.sleep(0.5)
            behind = await lag(
                settings, deployment.scoring_group, [topics.name(t) for t in SCORING_TOPICS]
            )
            behind += await lag(
                settings, deployment.alerts_group, [topics.name(t) for t in ALERTS_TOPICS]
            )
            queued = await scalar(
                deployment.dsn,
                "SELECT (SELECT count(*) FROM scoring.outbox)"
                " + (SELECT count(*) FROM scoring.dirty_accounts)"
                " + (SELECT count(*) FROM alerts.outbox WHERE state IN ('pending', 'sending'))",
            )
            quiet_rounds = quiet_rounds + 1 if behind == 0 and queued == 0 else 0
    return time.monotonic() - started


async def verify(run: Run, result: FaultResult) -> None:
    """Settle, then hold the whole pipeline against the ledger; resumes the load after."""
    try:
        seconds = await settle(run)
    except TimeoutError:
        result.check("everything settles", False, "consumers or queues still busy at the bound")
        run.load.resume()
        return
    result.figures["settled in"] = f"{seconds:.1f} s"
    ledger = run.ledger
    deployment = run.deployment
    actual = await scoring_counts(deployment.dsn)
    comparison = compare(ledger.expected(), actual, uncertain=counts_of(ledger.in_doubt.values()))
    acknowledged = len(ledger.acknowledged)
    result.check(
        "every acknowledged event counted exactly once",
        comparison.ok,
        f"{acknowledged} events acknowledged over {comparison.accounts} accounts; "
        + comparison.describe(),
    )
    leaked = sorted(a for a in ledger.refused_only_accounts() if a in actual)
    result.check(
        "nothing refused is counted",
        not leaked,
        f"{len(ledger.refused)} refused events; counted: {leaked[:5] or 'none'}",
    )
    processed = await scalar(deployment.dsn, "SELECT count(*) FROM scoring.processed_events")
    bounds = (acknowledged, acknowledged + len(ledger.in_doubt))
    result.check(
        "one dedup entry per counted event",
        bounds[0] <= processed <= bounds[1],
        f"{processed} event ids claimed; acknowledged {bounds[0]}, in doubt {len(ledger.in_doubt)}",
    )
    result.checks += await verify_health_chain(run)
    result.checks.append(await verify_deliveries(run))
    run.load.resume()


async def verify_health_chain(run: Run) -> list[Check]:
    """Scoring's published changes = the topic's = what alerts processed, once each."""
    deployment = run.deployment
    history = {
        r["change_id"]
        for r in await fetch(
            deployment.dsn,
            "SELECT change_id FROM scoring.health_history WHERE change_id IS NOT NULL",
        )
    }
    on_topic: Counter[str] = Counter()
    for record in await read_topic(deployment.kafka_settings, deployment.topics.health):
        try:
            on_topic[events.decode_health_change(record.value or b"").change_id] += 1
        except msgspec.DecodeError:
            continue  # poison the harness put there (checked by the poison fault)
    processed = {
        r["change_id"]
        for r in await fetch(deployment.dsn, "SELECT change_id FROM alerts.processed_changes")
    }
    resent = sum(n - 1 for n in on_topic.values())
    return [
        Check(
            "every health change scoring committed is on the topic",
            history <= set(on_topic),
            f"{len(history)} changes committed, {len(on_topic)} distinct on the topic "
            f"({resent} sent again by the relay after a crash); missing: "
            f"{len(history - set(on_topic))}",
        ),
        Check(
            "alerts processed every health change once",
            processed == set(on_topic),
            f"{len(processed)} processed; not processed: {len(set(on_topic) - processed)}; "
            f"unknown: {len(processed - set(on_topic))}",
        ),
    ]


async def verify_deliveries(run: Run) -> Check:
    deployment = run.deployment
    rows = [
        Row(r.key, r.channel, r.state, r.message_id, r.address)
        for r in await alerts_outbox(deployment.dsn)
    ]
    audit = audit_deliveries(
        rows,
        sink_attempts(run),
        unrecorded=unrecorded_keys(deployment),
        last_resort={TEAM_EMAIL},
    )
    return Check("every notification delivered once or fallen back", audit.ok, audit.describe())


def sink_attempts(run: Run, slack_from: int = 0, smtp_from: int = 0) -> list[Attempt]:
    """What the sinks saw, from the ``slack_from``-th request and ``smtp_from``-th message."""
    deployment = run.deployment
    assert deployment.slack is not None
    assert deployment.smtp is not None
    timeout = deployment.tunings.alerts_slack_timeout_seconds
    attempts = [
        Attempt(
            key=request.key,
            channel="slack",
            delivered=request.delivered,
            reply=_slack_reply(
                request.reply.status,
                request.reply.error,
                request.reply.drop,
                request.reply.delay_seconds,
                timeout,
            ),
            timed_out=request.reply.delay_seconds >= timeout,
        )
        for request in deployment.slack.requests[slack_from:]
        if request.kind == "api"
    ]
    for mail in deployment.smtp.received[smtp_from:]:
        key = mail.message["X-Churnwatch-Key"]
        attempts.append(
            Attempt(
                key=str(key).strip() if key is not None else None,
                channel="email",
                delivered=mail.accepted,
                reply=mail.reply,
                message_id=mail.message_id,
            )
        )
    return attempts


def _slack_reply(status: int, error: str | None, drop: bool, delay: float, timeout: float) -> str:
    if drop:
        return "drop"
    if delay >= timeout:
        return "timeout"
    if delay:
        return "slow"
    if error:
        return error
    return "ok" if status == 200 else str(status)


def unrecorded_keys(deployment: Deployment) -> set[str]:
    """Keys whose delivery outcome an alerts process could not record (its database was gone
    after the provider accepted): the documented at-least-once window."""
    found: set[str] = set()
    for service in deployment.services.get("alerts", []):
        for line in service.logs().splitlines():
            if "could not record a delivery outcome" in line and line.startswith("{"):
                key = json.loads(line).get("key")
                if key:
                    found.add(str(key))
    return found


def readiness_summary(
    sampler: ReadinessSampler, service: str, since: float, until: float, run: Run
) -> tuple[bool, str]:
    """Whether ``service`` went unready in the window and was ready again at its end."""
    samples = sampler.window(service, since, until)
    unready = [s for s in samples if s.status != 200]
    if not samples:
        return False, "no samples"
    first_bad = unready[0] if unready else None
    back = next((s for s in samples if first_bad and s.at > first_bad.at and s.status == 200), None)
    failing = sorted({name for s in unready for name in s.failing})
    text = (
        f"unready from t={run.at(first_bad.at)} s"
        + (f" ({', '.join(failing)} failing)" if failing else "")
        + (f", ready again at t={run.at(back.at)} s" if back else ", not ready again")
        if first_bad
        else "stayed ready"
    )
    return bool(first_bad and back), text
