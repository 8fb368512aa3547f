"""Wiring: the console's FastAPI app — the backends' HTTP client, the signing keys, the
templates, the operational endpoints and the per-page metrics. No workers, no database."""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
from fastapi import FastAPI, Request, Response

from services.console import api, metrics
from services.console.backends import Backends
from services.console.identity import Directory
from services.console.limits import SignInLimits
from services.console.settings import ConsoleSettings
from services.console.signin import tokens_of
from shared.ops import Draining, ReadinessCheck, ops_router

log = logging.getLogger(__name__)


def secret_of(settings: ConsoleSettings) -> str:
    if settings.secret_key is None:
        log.warning(
            "CONSOLE_SECRET_KEY is not set: sessions and sign-in links are signed with a random"
            " key and stop working when this process restarts (and differ between replicas)"
        )
        return secrets.token_urlsafe(32)
    return settings.secret_key.get_secret_value()


def build_app(
    settings: ConsoleSettings,
    draining: Draining,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The app; ``transport`` (tests) replaces the network under the backends' client."""
    http = httpx.AsyncClient(timeout=settings.backend_timeout_seconds, transport=transport)
    backends = Backends(
        http,
        {"scoring": settings.scoring_url, "alerts": settings.alerts_url},
        settings.api_key.get_secret_value(),
    )
    tokens = tokens_of(settings, secret_of(settings))
    directory = Directory(
        backends,
        tokens,
        settings.admin_emails(),
        settings.proxy_networks(),
        settings.identity_header,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        log.info(
            "console started",
            extra={
                "scoring": settings.scoring_url,
                "alerts": settings.alerts_url,
                "sign_in": "email" if settings.smtp_host else "no SMTP",
                "proxy_networks": len(directory.proxies),
                "admins": len(directory.admins),
            },
        )
        try:
            yield
        finally:
            await http.aclose()
            log.info("console stopped")

    # no /docs or /redoc: their pages load scripts from a CDN (the console has none);
    # /openapi.json stays for the conformance tests
    app = FastAPI(
        title="churnwatch console", version="1", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    context = api.Context(
        settings,
        backends,
        directory,
        tokens,
        settings.build_clock(),
        api.environment(),
        SignInLimits.of(settings),
    )
    api.install(app, context)
    app.include_router(ops_router(checks(backends), draining))
    app.middleware("http")(timed)
    return app


def checks(backends: Backends) -> dict[str, ReadinessCheck]:
    async def scoring() -> bool:
        return await backends.ready("scoring")

    async def alerts() -> bool:
        return await backends.ready("alerts")

    return {"scoring": scoring, "alerts": alerts}


async def timed(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Time every page by its route (not its path: account ids would explode the labels)."""
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    name = getattr(route, "path", "unmatched")
    if name not in ("/metrics", "/healthz", "/readyz"):
        status = f"{response.status_code // 100}xx"
        metrics.PAGE_SECONDS.labels(name, status).observe(time.perf_counter() - started)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:;"
            " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
    return response
