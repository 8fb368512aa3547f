"""Wiring: the scoring service's FastAPI app and the background work its lifespan runs.

Started: the database pool, the producer (dead letters and health changes), the consumer loop
over usage, tickets, surveys, accounts and people, the rescoring worker, the outbox relay and
the sweep. Stopped (SIGTERM, after the runner's drain) in the order that loses nothing: the
consumer finishes its batch, commits and leaves the group; the queue is rescored; the outbox
is flushed; then the producer and the pool close.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from services.scoring import api
from services.scoring.handler import BatchHandler, ConsumerLag, Inbound, decoder
from services.scoring.model import Model
from services.scoring.relay import Relay
from services.scoring.scorer import InlineRescorer, RescoreWorker, Scorer
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
from shared.worker import Supervisor

log = logging.getLogger(__name__)


@dataclass
class Workers:
    """The background work of one running instance."""

    pool: asyncpg.Pool
    producer: RenewingProducer
    consumer: AIOKafkaConsumer
    scorer: Scorer
    loop: ConsumerLoop[Inbound]
    rescorer: RescoreWorker
    relay: Relay
    sweeper: Sweeper


def build_workers(
    settings: ScoringSettings,
    model: Model,
    clock: Clock,
    pool: asyncpg.Pool,
    producer: RenewingProducer,
) -> Workers:
    topics = Topics(settings.topic_prefix)
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
    rescorer = RescoreWorker(
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
    inline = InlineRescorer(
        scorer,
        clock,
        max_accounts=settings.inline_max_accounts,
        max_lag_seconds=settings.inline_max_lag_seconds,
        lag=lambda: lag.seconds,
        on_changes=relay.wake,
    )

    def batch_committed() -> None:
        rescorer.wake()
        inline.after_commit()

    handler = BatchHandler(
        pool,
        clock,
        max_event_age=timedelta(days=settings.max_event_age_days),
        future_tolerance=timedelta(seconds=settings.future_tolerance_seconds),
        on_queued=batch_committed,
        lag=lag,
        rescore_inline=inline,
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
    lag.follow(lambda: loop.waiting_records)  # a backlog of fresh records counts too
    return Workers(pool, producer, consumer, scorer, loop, rescorer, relay, sweeper)


async def stop_in_order(work: Workers, supervisor: Supervisor, clock: Clock) -> None:
    """Stop without losing anything: the consumer commits and leaves the group, the rescoring
    and sweep finish, the queue is rescored once more and the outbox flushed."""
    work.loop.stop()
    await supervisor.finish("consumer", STOP_TIMEOUT_SECONDS)
    await work.consumer.stop()  # commits are done; leave the group
    work.sweeper.stop()
    work.rescorer.stop()
    await supervisor.finish("sweep", STOP_TIMEOUT_SECONDS)
    await supervisor.finish("rescorer", STOP_TIMEOUT_SECONDS)
    work.relay.stop()
    await supervisor.finish("relay", STOP_TIMEOUT_SECONDS)
    try:
        await work.scorer.drain_queue(work.pool, clock.now())
        await work.relay.publish_pending()
    except Exception:  # the next instance does it; nothing is lost
        log.exception("final rescoring/publishing failed")
    await work.producer.stop()
    await work.pool.close()


def build_app(settings: ScoringSettings, model: Model, clock: Clock, draining: Draining) -> FastAPI:
    supervisor = Supervisor()
    running: list[Workers] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.create_topics:
            await ensure_topics(settings, Topics(settings.topic_prefix).all())
        pool = await connect.create_pool(
            settings.database_url.get_secret_value(),
            size=settings.database_pool_size,
            application_name="churnwatch-scoring",
        )
        producer = RenewingProducer(lambda: make_producer(settings))
        await producer.start()
        work = build_workers(settings, model, clock, pool, producer)
        await work.consumer.start()
        for name, worker in (
            ("rescorer", work.rescorer),
            ("relay", work.relay),
            ("sweep", work.sweeper),
        ):
            supervisor.start(name, worker.run())
        supervisor.start("consumer", work.loop.run())
        app.state.pool = pool
        running.append(work)
        log.info(
            "scoring started",
            extra={"group": settings.group, "model_version": model.version},
        )
        try:
            yield
        finally:
            await stop_in_order(work, supervisor, clock)
            log.info("scoring stopped")

    async def database_ready() -> bool:
        if not running:
            return False
        async with running[0].pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
        return True

    async def kafka_ready() -> bool:
        return bool(running) and await producer_ready(running[0].producer)

    async def consumer_healthy() -> bool:
        return bool(running) and running[0].loop.healthy and supervisor.alive

    app = FastAPI(title="churnwatch scoring", version=model.version, lifespan=lifespan)
    api.install_error_handlers(app)
    checks = {"database": database_ready, "kafka": kafka_ready, "consumer": consumer_healthy}
    app.include_router(ops_router(checks, draining))
    api.install(app, ApiKeys.from_json(settings.api_keys.get_secret_value()), clock)
    return app


STOP_TIMEOUT_SECONDS = 30.0
