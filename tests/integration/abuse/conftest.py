"""One churnwatch for the abuse tests: the three services as real processes (DEBUG logs), with
secrets the tests know, on this session's Kafka and PostgreSQL, with the Slack and SMTP sinks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from chaos import inputs
from chaos.stack import Deployment, Endpoints, Tunings
from devstack.ephemeral import Infra


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


def code_of(response: httpx.Response | RawAnswer) -> str | None:
    """The machine-readable error code of an error answer (``shared.errors``' envelope)."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    code = body.get("code")
    return str(code) if code is not None else None


@dataclass(frozen=True)
class RawAnswer:
    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


async def raw_request(
    base_url: str,
    method: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    headers_only_above: int = 1024 * 1024,
    timeout_s: float = 30.0,
) -> RawAnswer:
    """One request on a connection of its own.

    A body up to ``headers_only_above`` bytes goes in the same write as the headers. A larger
    one is only declared (``Content-Length``): ingest refuses it on the declared length
    without reading it — and a client still writing it when the server closes would see a
    reset instead of the answer (docs/reliability.md)."""
    status, content, _ = await inputs.raw_request(
        base_url,
        method,
        path,
        body,
        headers,
        declare_only=len(body) > headers_only_above,
        timeout_s=timeout_s,
    )
    return RawAnswer(status, content)
