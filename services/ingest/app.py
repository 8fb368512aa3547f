"""Wiring: the FastAPI app from its parts, and the parts from the settings (Kafka adapters)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from fastapi import FastAPI
from starlette.exceptions import HTTPException

from services.ingest import openapi
from services.ingest.api import Intake, ZendeskConfig, install
from services.ingest.decisions import Limits, RequestRefused
from services.ingest.handler import Handler
from services.ingest.http import RequestContext
from services.ingest.memberships import Memberships, MembershipTable
from services.ingest.metrics import REFUSED_REQUESTS
from services.ingest.publisher import KafkaPublisher, KafkaUnavailable, Publisher
from services.ingest.segment import SegmentRules, SegmentTranslator
from services.ingest.settings import IngestSettings
from shared import errors
from shared.auth import ApiKeys
from shared.clock import SYSTEM_CLOCK, Clock
from shared.events import Topics
from shared.kafka import RenewingProducer, client_options, ensure_topics, make_producer
from shared.ops import Draining, ReadinessCheck, ops_router
from shared.ratelimit import RateLimiter
from shared.worker import Supervisor

log = logging.getLogger(__name__)

DESCRIPTION = """\
Authenticated, validated, durable event intake: a 2xx means every accepted item is durably in
Kafka (idempotent producer, `acks=all`); refused items are reported by index and dead-lettered.
Error bodies are `{"code": "...", "message": "..."}` (with `errors` on a 422), as in every
churnwatch service. See docs/ingest.md.
"""


def intake_from(
    settings: IngestSettings,
    *,
    publisher: Publisher,
    memberships: Memberships,
    clock: Clock = SYSTEM_CLOCK,
    monotonic: Callable[[], float] = time.monotonic,
) -> Intake:
    return Intake(
        topics=Topics(settings.topic_prefix),
        limits=Limits(
            max_body_bytes=settings.max_body_bytes,
            max_event_bytes=settings.max_event_bytes,
            max_events=settings.max_events_per_request,
            max_future=timedelta(seconds=settings.max_future_seconds),
        ),
        api_keys=ApiKeys.from_json(settings.api_keys.get_secret_value()),
        rate_limiter=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
        handler=Handler(publisher, memberships),
        memberships=memberships,
        segment=SegmentTranslator(
            SegmentRules(
                account_property=settings.segment_account_property,
                login_events=tuple(settings.segment_login_events),
                group_updates_accounts=settings.segment_group_updates_accounts,
            )
        ),
        zendesk=ZendeskConfig(
            signing_secrets=settings.zendesk_secrets(),
            organizations=dict(settings.zendesk_organizations),
            max_signature_age=timedelta(seconds=settings.zendesk_max_signature_age_seconds),
        ),
        clock=clock,
        monotonic=monotonic,
    )


def create_app(
    intake: Intake,
    *,
    checks: Mapping[str, ReadinessCheck],
    retry_after_seconds: int = 5,
    draining: Draining | None = None,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    app = FastAPI(
        title="churnwatch ingest", version="1", description=DESCRIPTION, lifespan=lifespan
    )
    app.add_middleware(RequestContext)
    install(app, intake)
    app.include_router(ops_router(checks, draining))
    retry_after = {"Retry-After": str(retry_after_seconds)}

    def kafka_unavailable(exc: Exception) -> HTTPException:
        message = f"nothing of this request is acknowledged: {exc}; retry"
        return errors.refusal(503, "kafka_unavailable", message, retry_after)

    def undecodable(exc: Exception) -> HTTPException:
        # Only decoding a body raises these here: msgspec recurses into nested JSON (so JSON
        # nested deeper than the recursion limit raises RecursionError) and refuses strings
        # that are not UTF-8 with UnicodeDecodeError. Nothing of the request was published.
        why = "nested too deeply" if isinstance(exc, RecursionError) else "not UTF-8"
        return errors.refusal(400, "invalid_json", f"the body is not valid JSON: {why}")

    def refused(exc: Exception) -> HTTPException:
        assert isinstance(exc, RequestRefused)
        return errors.refusal(exc.status, exc.code, exc.message, exc.headers)

    errors.install(
        app,
        count=lambda code: REFUSED_REQUESTS.labels(code).inc(),
        translate={
            RequestRefused: refused,
            KafkaUnavailable: kafka_unavailable,
            RecursionError: undecodable,
            UnicodeDecodeError: undecodable,
        },
    )
    openapi.install(app)
    return app


def build(settings: IngestSettings, draining: Draining) -> FastAPI:
    """The service as it runs: the Kafka producer, the memberships table, the routes."""
    topics = Topics(settings.topic_prefix)
    publisher = KafkaPublisher(
        RenewingProducer(lambda: make_producer(settings), max_backoff_seconds=5.0),
        dlq_topic=topics.ingest_dlq,
        timeout_seconds=settings.produce_timeout_seconds,
        large_batch_messages=settings.large_batch_messages,
    )
    memberships = MembershipTable(
        lambda: AIOKafkaConsumer(
            **client_options(settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        ),
        topics.memberships,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        supervisor = Supervisor()

        async def start_kafka() -> None:  # the service answers (503) while Kafka is away
            if settings.create_topics:
                await _create_topics(settings, topics)
            supervisor.start("memberships", memberships.run())
            await publisher.connect()

        starting = supervisor.start("kafka-start", start_kafka())
        try:
            yield
        finally:
            memberships.stop()
            starting.cancel()  # when Kafka never came
            await supervisor.finish_all(settings.shutdown_grace_seconds)
            await publisher.close()  # flushes what is queued

    return create_app(
        intake_from(
            settings,
            publisher=publisher,
            memberships=memberships,
            clock=settings.build_clock(),
        ),
        checks={"kafka": publisher.ready, "memberships": memberships.ready},
        retry_after_seconds=settings.retry_after_seconds,
        draining=draining,
        lifespan=lifespan,
    )


async def _create_topics(settings: IngestSettings, topics: Topics) -> None:
    while True:
        try:
            created = await ensure_topics(settings, topics.all())
        except (KafkaError, OSError) as exc:
            log.warning("cannot create topics yet; retrying", extra={"error": repr(exc)})
            await asyncio.sleep(1.0)
            continue
        if created:
            log.info("created topics", extra={"topics": sorted(created)})
        return
