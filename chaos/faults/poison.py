"""Poison: what no consumer may choke on, on every topic, and through ingest."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from chaos.checks import (
    Check,
    DeadLetter,
    Poison,
    PoisonOutcome,
    audit_poison,
)
from chaos.faults.common import (
    FaultResult,
    Run,
)
from chaos.faults.scoring import (
    _until,
)
from chaos.faults.verify import (
    verify,
)
from chaos.observe import (
    read_topic,
    scalar,
)
from shared.kafka import client_options

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
