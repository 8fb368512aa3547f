"""Fixtures of the scoring integration tests: a migrated database, a pool, the model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from alembic import command

from services.scoring import model as health_model
from services.scoring.handler import BatchHandler
from services.scoring.model import Model
from services.scoring.scorer import Scorer
from services.scoring.store import connect
from shared import migrations
from shared.clock import FixedClock
from tests.unit.scoring.builders import NOW


@pytest.fixture
async def scoring_url(database_url: str) -> str:
    """This test's database, migrated to the scoring service's head."""
    await asyncio.to_thread(command.upgrade, migrations.config("scoring", database_url), "head")
    return database_url


@pytest.fixture
async def pool(scoring_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect.create_pool(scoring_url, size=4, application_name="scoring-test")
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def model() -> Model:
    return health_model.load(health_model.DEFAULT_MODEL_FILE)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def scorer(model: Model) -> Scorer:
    return Scorer(model, score_delta=10.0)


@pytest.fixture
def handler(pool: asyncpg.Pool, clock: FixedClock) -> BatchHandler:
    """A handler that accepts history up to 100 days old (tests build baselines)."""
    return BatchHandler(
        pool, clock, max_event_age=timedelta(days=100), future_tolerance=timedelta(hours=1)
    )
