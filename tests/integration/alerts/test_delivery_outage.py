"""A delivery worker outlives a database outage (found by the chaos harness, issue 9: the idle
wait's query was outside the worker's error handling, so a PostgreSQL restart killed every
idle worker — alerts then stayed unready and delivered nothing until restarted).

The outage is real: the worker reaches PostgreSQL through a TCP relay that the test cuts (every
connection reset, new ones refused) and restores on the same port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.sinks import SlackSink
from services.alerts.delivery import DeliveryWorker
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


class Relay:
    """A TCP relay to PostgreSQL that can be cut and restored on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


async def test_an_idle_worker_survives_a_database_outage_and_delivers_once_it_is_back(
    harness: Harness,
    migrated: str,
    slack: SlackSink,
    http: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="shared.worker")
    target = urlsplit(migrated.replace("postgresql+asyncpg://", "postgresql://"))
    relay = Relay(target.hostname or "127.0.0.1", target.port or 5432)
    await relay.start()
    through_relay = migrated.replace(f":{target.port}/", f":{relay.port}/")
    engine: AsyncEngine = db.create_engine_for_url(through_relay, application_name="outage")
    worker = DeliveryWorker(
        engine, notifiers(http, slack, None), delivery_config(poll_seconds=0.05), name="w1"
    )
    task = asyncio.create_task(worker.run())
    try:

        async def idle() -> bool:
            return worker.idle

        await eventually(idle, timeout_s=10, what="the worker idle, polling the outbox")
        await relay.cut()

        async def failed_passes() -> bool:
            if task.done():
                raise AssertionError(f"the worker died: {task.exception()!r}")
            return caplog.text.count("a background pass failed; retrying") >= 3

        await eventually(
            failed_passes, timeout_s=10, what="passes failing while the database is gone"
        )

        await relay.start()  # back, on the same port
        await harness.feed(
            person("p_maria", slack="U_MARIA"),
            account("acme"),
            change("acme", T0, (80, "green"), (30, "red")),
        )

        async def delivered() -> bool:
            return len(slack.delivered()) == 1

        await eventually(
            delivered, timeout_s=20, what="the notification delivered after the outage"
        )
        assert not task.done()
    finally:
        worker.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await relay.cut()
        await engine.dispose()
