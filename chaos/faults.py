"""The faults, one function each, and the verification every fault ends with.

A fault runs under the steady load, breaks one thing for real (a process stopped, killed,
restarted; a sink told to misbehave; poison put on the topics), watches what the services
answer meanwhile, then lets everything settle and checks the whole pipeline against the
ledger (:func:`verify`). Each returns a :class:`FaultResult`: its figures and its checks.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
from aiokafka import AIOKafkaProducer

from chaos.checks import (
    Attempt,
    Check,
    DeadLetter,
    Poison,
    PoisonOutcome,
    Row,
    audit_deliveries,
    audit_poison,
)
from chaos.ledger import Ledger, compare, counts_of
from chaos.load import LoadGenerator
from chaos.observe import (
    GroupOffsets,
    ReadinessSampler,
    alerts_outbox,
    fetch,
    group_members,
    lag,
    read_topic,
    scalar,
    scoring_counts,
)
from chaos.stack import TEAM_EMAIL, Deployment, Infrastructure, Service
from shared import events
from shared.kafka import client_options

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


# ---------------------------------------------------------------------------------------------
# 6. Poison on every consumed topic


def poison_catalogue(now: datetime) -> dict[str, list[tuple[str, bytes | None]]]:
    """Poison per kind of topic: (name, value)."""

    def usage(**overrides: Any) -> bytes:
        event = {
            "event_type": "usage",
            "event_id": f"poison-{len(overrides)}-{sorted(overrides)}",
            "account_id": "poison-acct",
            "occurred_at": now.isoformat(),
            "received_at": now.isoformat(),
            "source": "chaos",
            "user_id": "u1",
            "type": "login",
        }
        return json.dumps(event | overrides).encode()

    junk: list[tuple[str, bytes | None]] = [
        ("not JSON", b"{not json"),
        ("binary, not UTF-8", b"\xff\xfe\x00\x81garbage\xc3\x28"),
        ("empty value", b""),
        ("JSON of the wrong shape", b"[1, 2, 3]"),
        ("nested 10,000 deep", b"[" * 10_000 + b"]" * 10_000),
        ("300 KB string", json.dumps({"event_type": "usage", "junk": "x" * 300_000}).encode()),
    ]
    event_poison: list[tuple[str, bytes | None]] = [
        ("null value", None),
        ("missing fields", b'{"event_type": "usage"}'),
        ("unknown event type", usage(event_type="pageview")),
        ("wrong type", usage(quantity="lots")),
        ("account id of 300 characters", usage(account_id="a" * 300)),
        ("NUL in the account id", usage(account_id="poison\u0000acct")),
        ("NUL in the user id", usage(user_id="u\u0000")),
        ("30 days old", usage(occurred_at=(now - timedelta(days=30)).isoformat())),
        ("3 days ahead", usage(occurred_at=(now + timedelta(days=3)).isoformat())),
    ]
    survey = {
        "event_type": "survey",
        "event_id": "poison-csat",
        "account_id": "poison-acct",
        "occurred_at": now.isoformat(),
        "received_at": now.isoformat(),
        "source": "chaos",
        "user_id": "u1",
        "kind": "csat",
        "score": 9,
    }
    person = {
        "person_id": "p_poison",
        "name": "Poison",
        "time_zone": "Mars/Olympus_Mons",
        "updated_at": now.isoformat(),
        "source": "chaos",
    }
    account = {"account_id": "poison-acct", "name": 7, "updated_at": "yesterday", "source": "x"}
    nul_account = {
        "account_id": "poison-acct",
        "name": "Poison\u0000 Inc",
        "updated_at": now.isoformat(),
        "source": "chaos",
    }
    change = {"event_type": "health_change", "change_id": "poison", "account_id": "poison-acct"}
    return {
        "events": junk + event_poison,
        "surveys": [("CSAT answer of 9", json.dumps(survey).encode())],
        "accounts": [
            *junk,
            ("account of the wrong types", json.dumps(account).encode()),
            ("NUL in the account name", json.dumps(nul_account).encode()),
        ],
        "people": [*junk, ("unknown time zone", json.dumps(person).encode())],
        "health": [
            *junk,
            ("tombstone", None),
            ("health change without its snapshots", json.dumps(change).encode()),
        ],
        "memberships": [*junk, ("membership without user", b'{"account_id": "x"}')],
    }


async def poison(run: Run) -> FaultResult:
    result = FaultResult("poison", "poison messages on every consumed topic")
    started = time.monotonic()
    deployment = run.deployment
    topics = deployment.topics
    scoring_dlq, alerts_dlq = topics.scoring_dlq, topics.alerts_dlq
    targets: dict[str, tuple[list[str], tuple[str, ...]]] = {
        "events": ([topics.usage, topics.tickets], (scoring_dlq,)),
        "surveys": ([topics.surveys], (scoring_dlq,)),
        "accounts": ([topics.accounts], (scoring_dlq, alerts_dlq)),
        "people": ([topics.people], (scoring_dlq, alerts_dlq)),
        "health": ([topics.health], (alerts_dlq,)),
        "memberships": ([topics.memberships], ()),
    }
    catalogue = poison_catalogue(datetime.now(UTC))
    primed = await _prime_overflow(run)
    producer = AIOKafkaProducer(
        **client_options(deployment.kafka_settings), max_request_size=2 * 1024 * 1024
    )
    await producer.start()
    sent: list[Poison] = []
    try:
        for kind, (names, dlqs) in targets.items():
            for topic in names:
                for name, value in catalogue[kind]:
                    meta = await producer.send_and_wait(topic, value, key=b"poison-acct")
                    sent.append(Poison(name, topic, meta.partition, meta.offset, value, dlqs))
        if primed is not None:
            value = _overflowing(primed)
            meta = await producer.send_and_wait(topics.usage, value, key=OVERFLOW_ACCOUNT.encode())
            sent.append(
                Poison(
                    OVERFLOW_POISON,
                    topics.usage,
                    meta.partition,
                    meta.offset,
                    value,
                    (scoring_dlq,),
                    expected_code="unprocessable",
                )
            )
    finally:
        await producer.stop()
    await asyncio.sleep(run.config.warm_seconds)
    ingest_dead = await _ingest_poison(run)
    await verify(run, result)
    outcomes = await _poison_outcomes(run, sent)
    failed = [o for o in outcomes if not o.ok]
    result.check(
        "every poison message is in its dead-letter topic once, with a code, a reason and "
        "its bytes",
        not failed,
        f"{len(outcomes) - len(failed)} of {len(outcomes)} dead letters as expected"
        + (
            "; wrong: "
            + "; ".join(
                f"{o.poison.name} on {o.poison.topic} → {o.dlq_topic}: {o.copies} copies"
                for o in failed[:5]
            )
            if failed
            else ""
        ),
    )
    codes = Counter(f"{o.dlq_topic.rsplit('.', 3)[-3]}: {o.code}" for o in outcomes)
    result.figures["dead letters by consumer and code"] = ", ".join(
        f"{k} ×{v}" for k, v in sorted(codes.items())
    )
    result.figures["poison sent"] = f"{len(sent)} messages on {len({p.topic for p in sent})} topics"
    overflow = [o for o in outcomes if o.poison.name == OVERFLOW_POISON]
    result.check(
        "a record that decodes but the database cannot hold (its day's sum overflows a double) "
        "is dead-lettered by scoring as unprocessable; the partition goes on",
        primed is not None and len(overflow) == 1 and overflow[0].ok,
        (
            "the first event (quantity 1.7e308) was acknowledged by ingest and counted; "
            + (
                f"the second: {overflow[0].copies} dead letter, code {overflow[0].code}, "
                f"reason {(overflow[0].reason or '')[:120]!r}"
                if overflow
                else "the second was not sent"
            )
        )
        if primed is not None
        else "the first event was not counted in time",
    )
    result.checks.append(ingest_dead)
    ingest = deployment.service("ingest")
    skipped = ingest.logs().count("skipping an undecodable membership")
    restarted_ready = True
    try:
        await ingest.terminate()
        await ingest.start(ready_timeout_s=60)
    except RuntimeError:
        restarted_ready = False
    expected_skips = len(catalogue["memberships"])
    result.check(
        "ingest skips poison on the memberships topic it follows (no dead-letter topic: "
        "it reads the table, it is not a group consumer) and a restart still gets ready",
        skipped >= expected_skips and restarted_ready,
        f"{skipped} undecodable memberships skipped and logged; restarted and ready: "
        f"{restarted_ready}",
    )
    result.seconds = time.monotonic() - started
    run.poison = outcomes
    return result


OVERFLOW_ACCOUNT = "poison-overflow"
OVERFLOW_QUANTITY = 1.7e308  # near the largest double: two on one day overflow the day's sum
OVERFLOW_POISON = "a usage quantity the day's sum cannot hold (decodes; PostgreSQL refuses it)"


async def _prime_overflow(run: Run) -> dict[str, Any] | None:
    """One event of quantity 1.7e308 through ingest, acknowledged and counted like any other;
    returns it once scoring holds it (None if it did not within the bound). A second such
    event on the same account and day decodes, but adding it overflows the day's
    ``double precision`` sum: PostgreSQL refuses it (SQLSTATE 22003) on every retry."""
    deployment = run.deployment
    item: dict[str, Any] = {
        "event_type": "usage",
        "event_id": "overflow-first",
        "account_id": OVERFLOW_ACCOUNT,
        "occurred_at": datetime.now(UTC).isoformat(),
        "user_id": "u1",
        "type": "api_call",
        "quantity": OVERFLOW_QUANTITY,
    }
    key = deployment.secrets.keys["events"]
    async with httpx.AsyncClient(base_url=deployment.service("ingest").url, timeout=30) as http:
        for _ in range(30):
            answer = await http.post(
                "/v1/events", json=[item], headers={"Authorization": f"Bearer {key}"}
            )
            if answer.status_code == 202 and answer.json().get("accepted") == 1:
                run.ledger.acknowledge([item])
                break
            if answer.status_code != 503:
                return None
            await asyncio.sleep(1)
        else:
            return None

    async def counted() -> bool:
        return bool(
            await scalar(
                deployment.dsn,
                "SELECT count(*) FROM scoring.account_days WHERE account_id = $1",
                OVERFLOW_ACCOUNT,
            )
        )

    return item if await _until(counted, timeout_s=90) else None


def _overflowing(first: dict[str, Any]) -> bytes:
    """The second event: the first's account and moment (so its day), its own id."""
    return json.dumps(
        first
        | {
            "event_id": "overflow-second",
            "received_at": datetime.now(UTC).isoformat(),
            "source": "chaos",
        }
    ).encode()


async def _poison_outcomes(run: Run, sent: Sequence[Poison]) -> list[PoisonOutcome]:
    deployment = run.deployment
    dead: list[DeadLetter] = []
    for topic in (deployment.topics.scoring_dlq, deployment.topics.alerts_dlq):
        dead += [
            DeadLetter(topic, r.value, r.headers)
            for r in await read_topic(deployment.kafka_settings, topic)
        ]
    return audit_poison(sent, dead)


async def _ingest_poison(run: Run) -> Check:
    """Refused items of an HTTP batch are dead-lettered by ingest, each with its reason."""
    deployment = run.deployment
    now = datetime.now(UTC).isoformat()
    good = {
        "event_type": "usage",
        "event_id": "http-good",
        "account_id": "acct-000",
        "occurred_at": now,
        "user_id": "u1",
        "type": "login",
    }
    bad: list[Any] = [
        {"event_type": "usage"},
        {**good, "event_id": "http-colour", "colour": "blue"},
        {**good, "event_id": "http-future", "occurred_at": "2999-01-01T00:00:00Z"},
        {**good, "event_id": "http-received", "received_at": now},
        [1, 2],
        {**good, "event_id": "http-big", "feature": "f" * 40_000},
    ]
    key = deployment.secrets.keys["events"]
    async with httpx.AsyncClient(base_url=deployment.service("ingest").url, timeout=30) as http:
        answer = await http.post(
            "/v1/events", json=[good, *bad], headers={"Authorization": f"Bearer {key}"}
        )
    body = answer.json()
    if answer.status_code == 202:
        run.ledger.acknowledge([good])
    letters = await read_topic(deployment.kafka_settings, deployment.topics.ingest_dlq)
    ours = [r for r in letters if r.headers.get("dlq.caller") == "chaos-events"]
    codes = Counter(r.headers.get("dlq.code") for r in ours)
    ok = (
        answer.status_code == 202
        and body.get("accepted") == 1
        and len(body.get("rejected", [])) == len(bad)
        and len(ours) == len(bad)
        and all(r.headers.get("dlq.reason") for r in ours)
    )
    return Check(
        "ingest answers a batch with bad items 202, names each refused item, dead-letters it",
        ok,
        f"answer {answer.status_code}: accepted {body.get('accepted')}, refused "
        f"{len(body.get('rejected', []))}; ingest dead letters: "
        + ", ".join(f"{k} ×{v}" for k, v in sorted(codes.items(), key=str)),
    )


FAULTS: dict[str, Fault] = {
    "broker": broker_outage,
    "sigkill": scoring_sigkills,
    "postgres": postgres_restart,
    "rebalance": scoring_rebalance,
    "sinks": sink_faults,
    "poison": poison,
}
