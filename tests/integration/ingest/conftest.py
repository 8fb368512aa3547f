"""Fixtures: a real ingest process (``python -m services.ingest``) on this test's topics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shared.settings import KafkaSettings
from tests.integration.ingest.support import ingest_process
from tests.support import ServiceProcess


@pytest.fixture
async def ingest(kafka_settings: KafkaSettings, tmp_path: Path) -> AsyncIterator[ServiceProcess]:
    async with ingest_process(kafka_settings, tmp_path) as service:
        yield service


@pytest.fixture
async def http(ingest: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=ingest.url, timeout=30) as client:
        yield client
