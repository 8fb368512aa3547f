"""One churnwatch for the abuse tests: the three services as real processes (DEBUG logs), with
secrets the tests know, on this session's Kafka and PostgreSQL, with the Slack and SMTP sinks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from chaos.stack import Deployment, Endpoints, Tunings
from tests.conftest import Infra


@pytest.fixture(scope="package")
async def deployment(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    home = tmp_path_factory.mktemp("abuse")
    running = Deployment(
        Endpoints(infra.bootstrap_servers, infra.database_url),
        home,
        tunings=Tunings(log_level="DEBUG"),
    )
    await running.prepare()
    try:
        await running.start()
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def code_of(response: httpx.Response) -> str | None:
    """The machine-readable error code, wherever the service puts it."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    detail = body.get("detail")
    if isinstance(detail, dict) and "code" in detail:
        return str(detail["code"])
    code = body.get("code")
    return str(code) if code is not None else None
