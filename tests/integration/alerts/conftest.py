"""Fixtures of the alerts integration tests: a migrated database, the Slack and SMTP sinks,
and the service's parts in-process on a fixed clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.sinks import SlackSink, SmtpSink
from shared import db
from shared.clock import FixedClock
from shared.migrations import config as alembic_config
from tests.integration.alerts.support import T0, Harness, make_config


@pytest.fixture
async def migrated(database_url: str) -> str:
    from alembic import command

    await asyncio.to_thread(command.upgrade, alembic_config("alerts", database_url), "head")
    return database_url


@pytest.fixture
async def engine(migrated: str) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine_for_url(migrated, application_name="alerts-test")
    yield engine
    await engine.dispose()


@pytest.fixture
async def slack() -> AsyncIterator[SlackSink]:
    async with SlackSink(token="xoxb-test-token") as sink:
        yield sink


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpSink]:
    async with SmtpSink() as sink:
        yield sink


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=1.0) as client:
        yield client


@pytest.fixture
def harness(engine: AsyncEngine) -> Harness:
    return Harness(engine, make_config(), FixedClock(T0))
