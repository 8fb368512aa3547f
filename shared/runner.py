"""Running a service: uvicorn with the service's FastAPI app, and a graceful SIGTERM.

On SIGTERM (or SIGINT) a service:

1. starts *draining*: ``/readyz`` answers 503 so the load balancer stops sending traffic, and
   every new request except ``/healthz``, ``/readyz`` and ``/metrics`` gets
   ``503 shutting_down`` with ``Retry-After`` and ``Connection: close``; requests already in
   flight carry on;
2. after ``<SERVICE>_SHUTDOWN_DRAIN_SECONDS`` stops listening and waits for in-flight
   requests (at most ``<SERVICE>_SHUTDOWN_GRACE_SECONDS``);
3. runs the app's lifespan shutdown: consumers finish their batch, commit and leave the group;
   producers flush.

A second SIGINT skips the wait.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from types import FrameType

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import errors
from shared.ops import Draining
from shared.settings import ServiceSettings

ALWAYS_ANSWERED = frozenset({"/healthz", "/readyz", "/metrics"})


class RejectWhileDraining:
    """ASGI middleware: 503 for new requests once draining began."""

    def __init__(self, app: ASGIApp, draining: Draining, retry_after_seconds: int = 5) -> None:
        self._app = app
        self._draining = draining
        self._retry_after = str(retry_after_seconds).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._draining.active or scope["path"] in ALWAYS_ANSWERED:
            await self._app(scope, receive, send)
            return
        body = json.dumps(
            {"code": "shutting_down", "message": "the service is shutting down; retry"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", self._retry_after),
                    (b"connection", b"close"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


REQUEST_BODY_TIMEOUT_SECONDS = 15.0


class BodyDeadline:
    """ASGI middleware: a request's body must arrive within ``seconds`` of the request.

    uvicorn waits for a body as long as the client keeps the connection open, so a client
    that declares a body and sends it a byte at a time (or never) would hold a connection —
    and its memory — forever. Past the deadline the route gets an ``HTTPException`` (408
    ``request_timeout``) from ``receive``, which the service answers like any other error,
    and the connection is closed. Once the body is in, ``receive`` is the server's again
    (waiting for a disconnect is not limited).
    """

    def __init__(self, app: ASGIApp, seconds: float = REQUEST_BODY_TIMEOUT_SECONDS) -> None:
        self._app = app
        self._seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._seconds
        body_done = False

        async def receive_in_time() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise errors.refusal(
                    408,
                    "request_timeout",
                    f"the request body did not arrive within {self._seconds:g} s",
                    headers={"Connection": "close"},
                ) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self._app(scope, receive_in_time, send)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, draining: Draining, drain_seconds: float) -> None:
        super().__init__(config)
        self._draining = draining
        self._drain_seconds = drain_seconds

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs in the signal handler: only plain assignments here; on_tick does the rest.
        # Unlike plain uvicorn, the signal is not re-raised after the graceful shutdown: a
        # service that shut down cleanly exits with status 0.
        if self._draining.active and sig == signal.SIGINT:
            self.force_exit = True  # second Ctrl-C: stop now
            self.should_exit = True
            return
        self._draining.begin()

    async def on_tick(self, counter: int) -> bool:
        started = self._draining.started_at
        if started is not None and time.monotonic() - started >= self._drain_seconds:
            self.should_exit = True
        return await super().on_tick(counter)


def serve(app: FastAPI, settings: ServiceSettings, draining: Draining) -> None:
    """Serve ``app`` until SIGTERM, draining as described above. Blocks; call from ``__main__``."""
    app.add_middleware(BodyDeadline)
    app.add_middleware(RejectWhileDraining, draining=draining)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_config=None,  # shared.logs configured the root logger
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        timeout_keep_alive=5,
        server_header=False,
    )
    _Server(config, draining, settings.shutdown_drain_seconds).run()
