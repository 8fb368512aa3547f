"""Wiring: the FastAPI app of the alerts service and the tasks its lifespan runs — the Kafka
consumer loop, the delivery workers (woken by LISTEN/NOTIFY), the scheduler.

On shutdown (after ``shared.runner`` drained the HTTP side) the consumer finishes and commits
its batch, the scheduler and workers finish what they hold, and connections close.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts import (
    api,
    delivery,
    handler,
    hours,
    interactions,
    links,
    retention,
    rules,
    scheduler,
)
from services.alerts.decide import Config
from services.alerts.lifecycle import Timing
from services.alerts.messages import Content
from services.alerts.notifiers import Notifier
from services.alerts.notifiers.email import EmailNotifier
from services.alerts.notifiers.slack import SlackNotifier
from services.alerts.routing import Channels, PeopleDefaults, TeamChannel
from services.alerts.settings import AlertsSettings
from shared import db
from shared.auth import ApiKeys
from shared.clock import Clock
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
from shared.ops import Draining, ReadinessCheck, ops_router
from shared.worker import Supervisor, Worker

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
        cs_ops=(
            TeamChannel(settings.cs_ops_slack_channel, settings.cs_ops_email)
            if settings.cs_ops_slack_channel or settings.cs_ops_email
            else None
        ),
        rollout_summary_wait=timedelta(seconds=settings.rollout_summary_wait_seconds),
        people=people_defaults(settings),
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


def people_defaults(settings: AlertsSettings) -> PeopleDefaults:
    working, quiet = settings.working_hours, settings.quiet_hours
    return PeopleDefaults(
        working_hours=hours.parse_working(working) if working else None,
        quiet_hours=hours.parse_quiet(quiet) if quiet else None,
        alert_channel=settings.alert_channel,
        daily_alert_budget=settings.daily_alert_budget or None,
    )


def retention_of(settings: AlertsSettings) -> retention.Retention:
    return retention.Retention(
        resolved_alerts=timedelta(days=settings.retain_resolved_alerts_days),
        outbox=timedelta(days=settings.retain_outbox_days),
        used_links=timedelta(days=settings.retain_used_links_days),
        history=timedelta(days=settings.retain_history_days),
        batch_size=settings.purge_batch_size,
        max_batches=settings.purge_max_batches,
        every=timedelta(seconds=settings.purge_every_seconds),
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


def signing_secret(settings: AlertsSettings) -> str | None:
    """The Slack app's signing secret; set (and not blank), it turns interactivity on."""
    secret = settings.slack_signing_secret
    value = secret.get_secret_value().strip() if secret else ""
    return value or None


def notifiers(settings: AlertsSettings, http: aiohttp.ClientSession) -> dict[str, Notifier]:
    found: dict[str, Notifier] = {}
    if settings.slack_bot_token or settings.slack_webhook_url:
        found["slack"] = SlackNotifier(
            http,
            api_url=settings.slack_api_url,
            bot_token=settings.slack_bot_token,
            webhook_url=settings.slack_webhook_url,
            interactive=signing_secret(settings) is not None,
        )
    if (server := settings.smtp_server()) is not None:
        found["email"] = EmailNotifier(server, sender=settings.email_from)
    return found


@dataclass
class Parts:
    """What the alerts service is made of, built from its settings (nothing connects yet)."""

    settings: AlertsSettings
    ruleset: rules.RuleSet
    config: Config
    clock: Clock
    engine: AsyncEngine
    topics: Topics
    supervisor: Supervisor = field(default_factory=Supervisor)
    loop: ConsumerLoop[handler.Message] | None = None
    producer: RenewingProducer | None = None

    @classmethod
    def build(cls, settings: AlertsSettings) -> Parts:
        ruleset = rules.load(settings.rules_file)
        if settings.retain_history_days < ruleset.history_days:
            raise rules.RulesError(
                f"{settings.rules_file}: a score_dropped rule looks {ruleset.history_days:g} days "
                f"back, but ALERTS_RETAIN_HISTORY_DAYS={settings.retain_history_days:g} purges "
                "the score history sooner; raise the horizon or shorten the rule"
            )
        return cls(
            settings=settings,
            ruleset=ruleset,
            config=build_config(settings, ruleset),
            clock=settings.build_clock(),
            engine=db.create_engine(settings, application_name="churnwatch-alerts"),
            topics=Topics(settings.topic_prefix),
        )

    def consumer_loop(
        self, consumer: AIOKafkaConsumer, on_enqueued: Callable[[], None] = lambda: None
    ) -> ConsumerLoop[handler.Message]:
        """The consumer; ``on_enqueued`` wakes this process's delivery workers when a batch
        committed messages to send."""
        settings, topics = self.settings, self.topics
        assert self.producer is not None
        return ConsumerLoop(
            consumer,
            group=settings.group,
            topics=[topics.health, topics.accounts, topics.people],
            decode=handler.make_decoder(topics),
            handle=handler.BatchHandler(
                self.engine,
                self.config,
                self.clock,
                digest_hour=settings.digest_hour,
                on_enqueued=on_enqueued,
            ),
            dead_letters=DeadLetters(self.producer, topics.alerts_dlq),
            max_records=settings.consumer_max_records,
            unprocessable=db.is_bad_data,
        )

    def scheduler(self) -> scheduler.Scheduler:
        settings = self.settings
        return scheduler.Scheduler(
            self.engine,
            self.config,
            self.clock,
            tick_seconds=settings.tick_seconds,
            digest_options=scheduler.DigestOptions(
                hour=settings.digest_hour,
                silent_days=settings.digest_silent_days,
                skip_empty=settings.digest_skip_empty,
            ),
            metrics_refresh_seconds=settings.metrics_refresh_seconds,
        )

    def delivery_workers(self, channels: Mapping[str, Notifier]) -> list[delivery.DeliveryWorker]:
        prefix = f"{socket.gethostname()}:{id(self):x}"
        return [
            delivery.DeliveryWorker(
                self.engine,
                channels,
                delivery_config(self.settings),
                name=f"{prefix}/{i}",
                service_clock=self.clock,
            )
            for i in range(self.settings.delivery_workers)
        ]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start the consumer, the scheduler and the delivery workers; on exit stop them in
        an order that loses nothing: the consumer commits its batch, the others finish what
        they hold, then connections close."""
        settings = self.settings
        if settings.create_topics:
            await ensure_topics(settings, self.topics.all())
        self.producer = RenewingProducer(lambda: make_producer(settings))
        await self.producer.start()
        http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=settings.slack_timeout_seconds)
        )
        channels = notifiers(settings, http)
        senders = self.delivery_workers(channels)
        consumer = make_consumer(settings, settings.group)
        await consumer.start()
        self.loop = self.consumer_loop(consumer, lambda: wake_all(senders))
        workers: list[Worker] = [self.scheduler(), *senders]
        workers.append(retention.Purger(self.engine, retention_of(settings), self.clock))
        dsn = db.asyncpg_dsn(settings.database_url.get_secret_value())
        listener = delivery.OutboxListener(dsn, senders)  # a NOTIFY wakes the senders
        await listener.start()
        self.supervisor.start("consumer", self.loop.run())
        for worker in workers:
            self.supervisor.start(worker.name, worker.run())
        log.info(
            "alerts service started",
            extra={
                "rules": len(self.ruleset.rules),
                "channels": sorted(channels),
                "delivery_workers": len(senders),
                "group_wait_seconds": settings.group_wait_seconds,
            },
        )
        try:
            yield
        finally:
            self.loop.stop()
            for worker in workers:
                worker.stop()
            await self.supervisor.finish_all(settings.shutdown_grace_seconds)
            with contextlib.suppress(Exception):
                await consumer.stop()
            await listener.stop()
            await http.close()
            await self.producer.stop()
            await self.engine.dispose()
            log.info("alerts service stopped: consumer committed, workers finished")

    def checks(self) -> dict[str, ReadinessCheck]:
        async def database() -> bool:
            return await db.ping(self.engine)

        async def kafka() -> bool:
            return self.producer is not None and await producer_ready(self.producer)

        async def workers() -> bool:
            return self.loop is not None and self.loop.healthy and self.supervisor.alive

        return {"database": database, "kafka": kafka, "workers": workers}


def wake_all(workers: Sequence[Worker]) -> None:
    for worker in workers:
        worker.wake()


def build_app(settings: AlertsSettings, draining: Draining) -> FastAPI:
    parts = Parts.build(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with parts.running():
            yield

    app = FastAPI(title="churnwatch alerts", version="1", lifespan=lifespan)
    api.install_error_handlers(app)
    app.include_router(ops_router(parts.checks(), draining))
    api.install(
        app,
        parts.engine,
        parts.config,
        parts.clock,
        ApiKeys.from_json(settings.api_keys.get_secret_value()),
        parts.config.content.signer,
        timedelta(seconds=settings.silence_max_seconds),
    )
    interactions.install(app, signing_secret(settings), parts.clock)
    return app
