"""The operational endpoints every service serves: ``/healthz``, ``/readyz`` and ``/metrics``.

``/healthz`` answers 200 while the process runs its event loop (liveness). ``/readyz`` runs the
service's readiness checks (Kafka and database reachable…) and answers 503 naming the failing
ones, or 503 while the service shuts down. ``/metrics`` is the Prometheus text exposition of
the process's default registry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

ReadinessCheck = Callable[[], Awaitable[bool]]


class Draining:
    """Shared flag: set once shutdown begins. ``/readyz`` checks read it too."""

    def __init__(self) -> None:
        self.started_at: float | None = None

    @property
    def active(self) -> bool:
        return self.started_at is not None

    def begin(self) -> None:
        if self.started_at is None:
            self.started_at = time.monotonic()


log = logging.getLogger(__name__)

READY = Gauge("churnwatch_ready", "1 when the service's last readiness check passed")
CHECK_TIMEOUT_SECONDS = 2.0


async def run_checks(checks: Mapping[str, ReadinessCheck]) -> dict[str, bool]:
    async def one(name: str, check: ReadinessCheck) -> bool:
        try:
            return await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
        except Exception as exc:  # a failing check is an answer, not an error
            log.warning("readiness check failed", extra={"check": name, "error": repr(exc)})
            return False

    results = await asyncio.gather(*(one(name, check) for name, check in checks.items()))
    return dict(zip(checks, results, strict=True))


def ops_router(checks: Mapping[str, ReadinessCheck], draining: Draining | None = None) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process is running")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: every dependency answers",
        responses={503: {"description": "A dependency does not answer; `checks` names it"}},
    )
    async def readyz() -> JSONResponse:
        results = await run_checks(checks)
        shutting_down = draining is not None and draining.active
        ready = all(results.values()) and not shutting_down
        READY.set(1 if ready else 0)
        return JSONResponse(
            {"ready": ready, "checks": results, "shutting_down": shutting_down},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
