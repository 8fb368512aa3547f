"""Wiring: the FastAPI app of the alerts service and the tasks its lifespan runs — the Kafka
consumer loop, the delivery workers (woken by LISTEN/NOTIFY), the scheduler.

On shutdown (after ``shared.runner`` drained the HTTP side) the consumer finishes and commits
its batch, the scheduler and workers finish what they hold, and connections close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from services.alerts import api, delivery, handler, links, rules, scheduler
from services.alerts.decide import Config
from services.alerts.handler import Clocks
from services.alerts.lifecycle import Timing
from services.alerts.messages import Content
from services.alerts.notifiers import Notifier
from services.alerts.notifiers.email import EmailNotifier, SmtpServer
from services.alerts.notifiers.slack import SlackNotifier
from services.alerts.routing import Channels, TeamChannel
from services.alerts.settings import AlertsSettings
from shared import db
from shared.auth import ApiKeys
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


def build_config(settings: AlertsSettings, ruleset: rules.RuleSet) -> Config:
    secret = settings.link_signing_secret
    if secret is None:
        log.warning(
            "ALERTS_LINK_SIGNING_SECRET is not set: one-click links are signed with a random "
            "key and stop working when this process restarts"
        )
        key = secrets.token_urlsafe(32)
    else:
        key = secret.get_secret_value()
    return Config(
        ruleset=ruleset,
        timing=Timing(
            group_wait=timedelta(seconds=settings.group_wait_seconds),
            repeat_interval=timedelta(seconds=settings.repeat_interval_seconds),
            escalate_after=timedelta(seconds=settings.escalate_after_seconds),
        ),
        team_channel=TeamChannel(settings.team_slack_channel, settings.team_email),
        channels=Channels(
            slack_api=settings.slack_bot_token is not None,
            slack_webhook=settings.slack_webhook_url is not None,
            email=settings.smtp_host is not None,
        ),
        content=Content(
            signer=links.LinkSigner(key, settings.previous_secrets()),
            public_url=settings.public_url,
            brief_url_template=settings.brief_url_template,
            link_ttl=timedelta(seconds=settings.link_ttl_seconds),
            message_id_domain=settings.message_id_domain,
        ),
        digest_channel=settings.digest_channel,
    )


def delivery_config(settings: AlertsSettings) -> delivery.DeliveryConfig:
    return delivery.DeliveryConfig(
        batch_size=settings.delivery_batch_size,
        poll_seconds=settings.delivery_poll_seconds,
        lease=timedelta(seconds=settings.delivery_lease_seconds),
        backoff_initial_seconds=settings.delivery_backoff_initial_seconds,
        backoff_max_seconds=settings.delivery_backoff_max_seconds,
        give_up=timedelta(seconds=settings.delivery_give_up_seconds),
        slack_channel_interval=timedelta(seconds=settings.slack_channel_interval_seconds),
        message_id_domain=settings.message_id_domain,
    )


def notifiers(settings: AlertsSettings, http: httpx.AsyncClient) -> dict[str, Notifier]:
    found: dict[str, Notifier] = {}
    if settings.slack_bot_token or settings.slack_webhook_url:
        found["slack"] = SlackNotifier(
            http,
            api_url=settings.slack_api_url,
            bot_token=settings.slack_bot_token,
            webhook_url=settings.slack_webhook_url,
        )
    if settings.smtp_host:
        found["email"] = EmailNotifier(
            SmtpServer(
                host=settings.smtp_host,
                port=settings.smtp_port,
                security=settings.smtp_security,
                username=settings.smtp_username,
                password=settings.smtp_password,
                timeout_seconds=settings.smtp_timeout_seconds,
            ),
            sender=settings.email_from,
        )
    return found


def _real_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Running:
    """The background parts, for readiness and shutdown."""

    loop: ConsumerLoop[handler.Message] | None = None
    producer: RenewingProducer | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


def build_app(settings: AlertsSettings, draining: Draining) -> FastAPI:
    ruleset = rules.load(settings.rules_file)
    api_keys = ApiKeys.from_json(settings.api_keys.get_secret_value())
    clock = settings.build_clock()
    clocks = Clocks(now=clock.now, real_now=_real_now)
    config = build_config(settings, ruleset)
    engine = db.create_engine(settings, application_name="churnwatch-alerts")
    topics = Topics(settings.topic_prefix)
    running = Running()
    worker_name = f"{socket.gethostname()}:{id(running):x}"

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.create_topics:
            await ensure_topics(settings, topics.all())
        producer = RenewingProducer(lambda: make_producer(settings))
        running.producer = producer
        await producer.start()
        consumer = make_consumer(settings, settings.group)
        await consumer.start()
        loop: ConsumerLoop[handler.Message] = ConsumerLoop(
            consumer,
            group=settings.group,
            topics=[topics.health, topics.accounts, topics.people],
            decode=handler.make_decoder(topics),
            handle=handler.BatchHandler(engine, config, clocks, digest_hour=settings.digest_hour),
            dead_letters=DeadLetters(producer, topics.alerts_dlq),
            max_records=settings.consumer_max_records,
            unprocessable=db.is_bad_data,
        )
        running.loop = loop
        wakeup = asyncio.Event()
        listener = delivery.OutboxListener(_asyncpg_dsn(settings), wakeup)
        await listener.start()
        http = httpx.AsyncClient(timeout=settings.slack_timeout_seconds)
        channels = notifiers(settings, http)
        workers = [
            delivery.DeliveryWorker(
                engine, channels, delivery_config(settings), name=f"{worker_name}/{i}"
            )
            for i in range(settings.delivery_workers)
        ]
        ticker = scheduler.Scheduler(
            engine,
            config,
            clocks,
            tick_seconds=settings.tick_seconds,
            digest_options=scheduler.DigestOptions(
                hour=settings.digest_hour,
                silent_days=settings.digest_silent_days,
                skip_empty=settings.digest_skip_empty,
            ),
            metrics_refresh_seconds=settings.metrics_refresh_seconds,
        )
        running.tasks = [
            asyncio.create_task(loop.run(), name="consumer"),
            asyncio.create_task(ticker.run(running.stopping), name="scheduler"),
            *(asyncio.create_task(w.run(running.stopping, wakeup), name=w.name) for w in workers),
        ]
        log.info(
            "alerts service started",
            extra={
                "rules": len(ruleset.rules),
                "channels": sorted(channels),
                "delivery_workers": len(workers),
                "group_wait_seconds": settings.group_wait_seconds,
            },
        )
        try:
            yield
        finally:
            loop.stop()
            running.stopping.set()
            done, pending = await asyncio.wait(
                running.tasks, timeout=settings.shutdown_grace_seconds
            )
            for task in pending:
                task.cancel()
            for task in done:
                if not task.cancelled() and task.exception():
                    log.error("background task failed", exc_info=task.exception())
            with contextlib.suppress(Exception):
                await consumer.stop()
            await listener.stop()
            await http.aclose()
            await producer.stop()
            await engine.dispose()
            log.info("alerts service stopped: consumer committed, workers finished")

    async def database_ready() -> bool:
        return await db.ping(engine)

    async def kafka_ready() -> bool:
        return running.producer is not None and await producer_ready(running.producer)

    async def consumer_ready() -> bool:
        loop = running.loop
        return loop is not None and loop.healthy and all(not t.done() for t in running.tasks)

    checks: Mapping[str, Any] = {
        "database": database_ready,
        "kafka": kafka_ready,
        "workers": consumer_ready,
    }
    app = FastAPI(title="churnwatch alerts", version="1", lifespan=lifespan)
    api.install_error_handlers(app)
    app.include_router(ops_router(checks, draining))
    app.include_router(
        api.router(
            engine,
            config,
            clocks,
            api_keys,
            config.content.signer,
            timedelta(seconds=settings.silence_max_seconds),
        )
    )
    return app


def _asyncpg_dsn(settings: AlertsSettings) -> str:
    return settings.database_url.get_secret_value().replace(
        "postgresql+asyncpg://", "postgresql://"
    )
