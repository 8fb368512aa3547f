"""Delivery through the outbox against the real database, a Slack-compatible server and a real
SMTP server: exactly once, retries, pacing, fallback, and competing workers."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.sinks import Reply, SlackSink, SmtpSink
from services.alerts.delivery import DeliveryWorker, OutboxListener
from shared import db
from tests.integration.alerts.support import (
    T0,
    Harness,
    account,
    change,
    delivery_config,
    notifiers,
    person,
)
from tests.support import eventually


async def alerts_for(harness: Harness, count: int, **person_fields: Any) -> None:
    """``count`` accounts whose health turns red: one notification each, to their CSM."""
    people = [
        person(
            f"p_csm{i}", **({"slack": f"U{i:04d}", "email": f"csm{i}@example.com"} | person_fields)
        )
        for i in range(count)
    ]
    accounts = [account(f"acct{i}", csm=f"p_csm{i}") for i in range(count)]
    changes = [change(f"acct{i}", T0, (80, "green"), (30, "red")) for i in range(count)]
    await harness.feed(*people, *accounts, *changes)


async def outbox(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT * FROM alerts.outbox ORDER BY id"))
        return [dict(r) for r in rows.mappings()]


async def drain(
    engine: AsyncEngine, workers: Sequence[DeliveryWorker], timeout_s: float = 30
) -> None:
    """Run the workers until no outbox row is pending or sending."""
    tasks = [asyncio.create_task(w.run()) for w in workers]

    async def settled() -> bool:
        rows = await outbox(engine)
        return bool(rows) and all(r["state"] not in ("pending", "sending") for r in rows)

    try:
        await eventually(settled, timeout_s=timeout_s, what="every outbox row delivered")
    finally:
        for w in workers:
            w.stop()
        await asyncio.gather(*tasks)


def worker(
    harness: Harness,
    http: httpx.AsyncClient,
    slack: SlackSink | None,
    smtp: SmtpSink | None,
    name: str = "w1",
    **config: Any,
) -> DeliveryWorker:
    return DeliveryWorker(
        harness.engine, notifiers(http, slack, smtp), delivery_config(**config), name=name
    )


async def test_each_notification_is_delivered_exactly_once_through_429_500_and_slow_answers(
    harness: Harness, slack: SlackSink, smtp: SmtpSink, http: httpx.AsyncClient
) -> None:
    await alerts_for(harness, 20)
    slack.program(
        Reply.rate_limited(0.2),
        Reply.server_error(500),
        Reply.slow(0.3),
        Reply.server_error(503),
        Reply.slack_error("internal_error"),
        Reply.rate_limited(0.1),
    )
    await drain(harness.engine, [worker(harness, http, slack, smtp)])

    delivered = Counter(r.key for r in slack.delivered())
    rows = await outbox(harness.engine)
    assert len(rows) == 20
    assert delivered == Counter({r["key"]: 1 for r in rows})
    assert all(r["state"] == "sent" for r in rows)
    assert sum(r["attempts"] for r in rows) == 20 + 5  # every refusal was retried, once
    assert smtp.received == []


async def test_two_workers_never_send_the_same_notification(
    harness: Harness, slack: SlackSink, http: httpx.AsyncClient, migrated: str
) -> None:
    await alerts_for(harness, 60)
    other_engine = db.create_engine_for_url(migrated, application_name="second-process")
    try:
        first = worker(harness, http, slack, None, name="process-a", batch_size=5)
        second = DeliveryWorker(
            other_engine,
            notifiers(http, slack, None),
            delivery_config(batch_size=5),
            name="process-b",
        )
        await drain(harness.engine, [first, second])
    finally:
        await other_engine.dispose()

    requests = Counter(r.key for r in slack.requests)
    rows = await outbox(harness.engine)
    assert len(requests) == 60
    assert set(requests.values()) == {1}  # not one notification was even attempted twice
    assert {r["claimed_by"] for r in rows} == {"process-a", "process-b"}


async def test_a_slack_permanent_failure_arrives_by_email(
    harness: Harness, slack: SlackSink, smtp: SmtpSink, http: httpx.AsyncClient
) -> None:
    await alerts_for(harness, 1)
    slack.program(Reply.slack_error("channel_not_found"))
    await drain(harness.engine, [worker(harness, http, slack, smtp)])

    [attempt] = slack.requests
    [mail] = smtp.accepted()
    assert attempt.channel == "U0000"
    assert mail.rcpt_to == ["csm0@example.com"]
    assert mail.message["Subject"].startswith("[churnwatch] Critical: Acct0 Inc — ")
    assert "Acct0 Inc" in mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    states = [(r["channel"], r["state"]) for r in await outbox(harness.engine)]
    assert states == [("slack", "fallen_back"), ("email", "sent")]


async def test_email_retries_4xx_and_keeps_one_message_id_across_attempts(
    harness: Harness, smtp: SmtpSink, http: httpx.AsyncClient
) -> None:
    await alerts_for(harness, 1, slack=None)
    smtp.program("451", "drop", "451")
    await drain(harness.engine, [worker(harness, http, None, smtp)])

    assert [m.reply for m in smtp.received] == ["451", "drop", "451", "250"]
    assert len({m.message_id for m in smtp.received}) == 1
    [row] = await outbox(harness.engine)
    assert (row["state"], row["attempts"]) == ("sent", 4)
    assert smtp.accepted()[0].message_id == row["message_id"]
    html = smtp.accepted()[0].message.get_body(("html",))
    assert html is not None
    assert "Acknowledge" in html.get_content()


async def test_an_email_5xx_is_not_retried_and_falls_back_to_the_team_channel(
    harness: Harness, slack: SlackSink, smtp: SmtpSink, http: httpx.AsyncClient
) -> None:
    await alerts_for(harness, 1, slack=None)
    smtp.program("550")
    await drain(harness.engine, [worker(harness, http, slack, smtp)])

    assert [m.reply for m in smtp.received] == ["550"]
    [posted] = slack.delivered()
    assert posted.channel == "C_TEAM"
    states = [(r["channel"], r["address"], r["state"]) for r in await outbox(harness.engine)]
    assert states == [("email", "csm0@example.com", "fallen_back"), ("slack", "C_TEAM", "sent")]


async def test_a_429_holds_the_channel_for_its_retry_after(
    harness: Harness, slack: SlackSink, http: httpx.AsyncClient
) -> None:
    await alerts_for(harness, 1)
    slack.program(Reply.rate_limited(1.0))
    await drain(harness.engine, [worker(harness, http, slack, None)])

    first, second = slack.requests
    assert second.received_at - first.received_at >= 1.0
    assert second.delivered


async def test_messages_to_one_slack_channel_are_paced(
    harness: Harness, slack: SlackSink, http: httpx.AsyncClient
) -> None:
    await harness.feed(
        person("p_maria", slack="U_MARIA"),
        *(account(f"acct{i}") for i in range(3)),
        *(change(f"acct{i}", T0, (80, "green"), (30, "red")) for i in range(3)),
    )
    interval = timedelta(seconds=0.4)
    await drain(
        harness.engine,
        [worker(harness, http, slack, None, slack_channel_interval=interval, batch_size=10)],
    )

    times = sorted(r.received_at for r in slack.requests)
    assert len(times) == 3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= interval.total_seconds() - 0.01


async def test_an_idle_worker_is_woken_by_the_outbox_notify_not_its_poll(
    harness: Harness, slack: SlackSink, http: httpx.AsyncClient, migrated: str
) -> None:
    idle = worker(harness, http, slack, None, poll_seconds=600)
    listener = OutboxListener(migrated.replace("postgresql+asyncpg://", "postgresql://"), [idle])
    await listener.start()
    task = asyncio.create_task(idle.run())
    try:
        await eventually(lambda: _idle(idle), what="the worker asleep for its long poll")
        await alerts_for(harness, 1)
        await eventually(lambda: _delivered(slack), timeout_s=5, what="a prompt delivery")
    finally:
        idle.stop()
        await task
        await listener.stop()


async def _delivered(slack: SlackSink) -> bool:
    return bool(slack.delivered())


async def _idle(worker: DeliveryWorker) -> bool:
    return worker.idle
