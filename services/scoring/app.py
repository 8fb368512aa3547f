"""Wiring: the scoring service's FastAPI app and the background work its lifespan runs.

Started: the database pool, the producer (dead letters and health changes), the consumer loop
over usage, tickets, surveys, accounts and people, the rescoring worker, the outbox relay and
the sweep. Stopped (SIGTERM, after the runner's drain) in the order that loses nothing: the
consumer finishes its batch, commits and leaves the group; the queue is rescored; the outbox
is flushed; then the producer and the pool close.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
from fastapi import FastAPI

from services.scoring import api
from services.scoring.handler import BatchHandler, ConsumerLag, Inbound, decoder
from services.scoring.model import Model
from services.scoring.relay import Relay
from services.scoring.scorer import RescoreWorker, Scorer
from services.scoring.settings import ScoringSettings
from services.scoring.store import connect
from services.scoring.sweep import Horizons, Sweeper
from shared.auth import ApiKeys
from shared.clock import Clock
from shared.db import is_bad_data
from shared.events import Topics
from shared.kafka import (
    ConsumerLoop,
    DeadLetters,
    RenewingProducer,
    ensure_topics,
    make_consumer,
    make_producer,
    producer_ready,
)
from shared.ops import Draining, ops_router

log = logging.getLogger(__name__)


def build_app(settings: ScoringSettings, model: Model, clock: Clock, draining: Draining) -> FastAPI:
    keys = ApiKeys.from_json(settings.api_keys.get_secret_value())
    topics = Topics(settings.topic_prefix)
    state: dict[str, object] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.create_topics:
            await ensure_topics(settings, topics.all())
        pool = await connect.create_pool(
            settings.database_url.get_secret_value(),
            size=settings.database_pool_size,
            application_name="churnwatch-scoring",
        )
        producer = RenewingProducer(lambda: make_producer(settings))
        await producer.start()
        consumer = make_consumer(settings, settings.group)
        scorer = Scorer(model, score_delta=settings.score_delta_points)
        lag = ConsumerLag()
        relay = Relay(
            pool,
            producer,
            topics.health,
            batch_size=settings.relay_batch_size,
            poll_seconds=settings.relay_poll_seconds,
        )
        worker = RescoreWorker(
            scorer,
            pool,
            clock,
            poll_seconds=settings.rescore_poll_seconds,
            chunk=settings.rescore_chunk_accounts,
            on_changes=relay.wake,
            min_interval_seconds=settings.rescore_interval_seconds,
            lag=lambda: lag.seconds,
        )
        sweeper = Sweeper(
            scorer,
            pool,
            clock,
            interval_seconds=settings.sweep_interval_seconds,
            chunk=settings.sweep_chunk_accounts,
            concurrency=settings.sweep_concurrency,
            horizons=Horizons(
                dedup=timedelta(days=settings.dedup_horizon_days),
                daily_rows=timedelta(days=settings.daily_rows_retention_days),
                history=timedelta(days=settings.history_retention_days),
            ),
            on_changes=relay.wake,
        )
        handler = BatchHandler(
            pool,
            clock,
            max_event_age=timedelta(days=settings.max_event_age_days),
            future_tolerance=timedelta(seconds=settings.future_tolerance_seconds),
            on_queued=worker.wake,
            lag=lag,
        )
        loop: ConsumerLoop[Inbound] = ConsumerLoop(
            consumer,
            group=settings.group,
            topics=[topics.usage, topics.tickets, topics.surveys, topics.accounts, topics.people],
            decode=decoder(topics),
            handle=handler,
            dead_letters=DeadLetters(producer, topics.scoring_dlq),
            max_records=settings.max_batch_records,
            unprocessable=is_bad_data,
        )
        await consumer.start()
        state["loop"] = loop
        tasks = {
            "consumer": asyncio.create_task(loop.run(), name="consumer"),
            "rescorer": asyncio.create_task(worker.run(), name="rescorer"),
            "relay": asyncio.create_task(relay.run(), name="relay"),
            "sweep": asyncio.create_task(sweeper.run(), name="sweep"),
        }
        for task in tasks.values():
            task.add_done_callback(_stop_process_if_failed)
        app.state.pool = pool
        state["pool"] = pool
        state["producer"] = producer
        log.info(
            "scoring started",
            extra={"group": settings.group, "model_version": model.version},
        )
        try:
            yield
        finally:
            loop.stop()
            await _finish(tasks.pop("consumer"))
            await consumer.stop()  # commits are done; leave the group
            sweeper.stop()
            worker.stop()
            await _finish(tasks.pop("sweep"))
            await _finish(tasks.pop("rescorer"))
            relay.stop()
            await _finish(tasks.pop("relay"))
            try:
                await scorer.drain_queue(pool, clock.now())
                await relay.publish_pending()
            except Exception:  # the next instance does it; nothing is lost
                log.exception("final rescoring/publishing failed")
            await producer.stop()
            await pool.close()
            log.info("scoring stopped")

    app = FastAPI(title="churnwatch scoring", version=model.version, lifespan=lifespan)
    api.install_error_handlers(app)

    async def database_ready() -> bool:
        pool = state.get("pool")
        if not isinstance(pool, asyncpg.Pool):
            return False
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
        return True

    async def kafka_ready() -> bool:
        producer = state.get("producer")
        return isinstance(producer, RenewingProducer) and await producer_ready(producer)

    async def consumer_healthy() -> bool:
        loop = state.get("loop")
        return isinstance(loop, ConsumerLoop) and loop.healthy

    app.include_router(
        ops_router(
            {"database": database_ready, "kafka": kafka_ready, "consumer": consumer_healthy},
            draining,
        )
    )
    app.include_router(api.router(keys, clock))
    return app


STOP_TIMEOUT_SECONDS = 30.0


async def _finish(task: asyncio.Task[None]) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT_SECONDS)
    except TimeoutError:
        log.error("a background task did not stop in time", extra={"task": task.get_name()})
        task.cancel()
    except Exception:
        log.exception("a background task failed", extra={"task": task.get_name()})


def _stop_process_if_failed(task: asyncio.Task[None]) -> None:
    """A background task must not die quietly: log it and stop the process (to be restarted)."""
    if task.cancelled() or task.exception() is None:
        return
    log.critical(
        "background task crashed; stopping the service",
        exc_info=task.exception(),
        extra={"task": task.get_name()},
    )
    os.kill(os.getpid(), signal.SIGTERM)
