"""The batch → delivery hop (issue 16, S3), against the real database and the Slack sink: a
consumed batch that queued a message wakes this process's delivery worker once it commits, so
the message leaves at once, not at the worker's next poll (no LISTEN connection here: the
in-process wake-up alone). Nothing sleeps: each wait is on a condition with a deadline."""

from __future__ import annotations

import asyncio

import httpx

from devstack.sinks import SlackSink, SmtpSink
from services.alerts.delivery import DeliveryWorker
from services.alerts.handler import BatchHandler
from tests.integration.alerts.support import (
    T0,
    Harness,
    account,
    change,
    delivery_config,
    notifiers,
    person,
    records,
)
from tests.support import eventually

POLL_SECONDS = 60.0


async def test_a_committed_batch_wakes_the_delivery_worker_without_waiting_for_its_poll(
    harness: Harness, slack: SlackSink, smtp: SmtpSink, http: httpx.AsyncClient
) -> None:
    harness.band_only()
    worker = DeliveryWorker(
        harness.engine,
        notifiers(http, slack, smtp),
        delivery_config(poll_seconds=POLL_SECONDS),
        name="w",
    )
    running = asyncio.create_task(worker.run())

    async def resting() -> bool:
        return worker.idle

    async def delivered() -> int:
        return len(slack.delivered())

    try:
        # its first pass found nothing: it rests for the poll interval now
        await eventually(resting, timeout_s=10, interval_s=0.01, what="the worker resting")
        handler = BatchHandler(
            harness.engine, harness.config, harness.clock, on_enqueued=worker.wake
        )
        await handler(
            records(
                [
                    person("p_maria", slack="U_MARIA", email="maria@example.com"),
                    account("acme"),
                    change("acme", T0, (80, "green"), (30, "red")),
                ]
            )
        )
        await eventually(
            delivered, timeout_s=POLL_SECONDS / 6, interval_s=0.01, what="the alert in Slack"
        )
        assert [r.key.split(":")[1] for r in slack.delivered() if r.key] == ["acme"]
    finally:
        worker.stop()
        await running


async def test_a_batch_that_queues_nothing_does_not_wake_the_workers(harness: Harness) -> None:
    woken: list[int] = []
    handler = BatchHandler(
        harness.engine, harness.config, harness.clock, on_enqueued=lambda: woken.append(1)
    )
    await handler(records([person("p_maria", slack="U_MARIA"), account("acme")]))
    assert woken == []
