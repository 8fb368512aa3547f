"""Slow clients (slowloris): connections that dribble a request body, or never finish their
headers, do not exhaust a service — everyone else is still served promptly — and a body that
does not arrive within ``shared.runner.REQUEST_BODY_TIMEOUT_SECONDS`` is answered ``408
request_timeout`` and its connection closed (before issue 9 it was held for as long as the
client kept it open).

A client still dribbling when the server answers and closes may see the connection reset
instead of the answer: a byte that reached the server after its last read makes the kernel
reset the connection, and the client's pending read fails (TCP, not the service). So a reset
at the deadline counts as cut off in time too; most clients see the 408 itself."""

from __future__ import annotations

import asyncio
import contextlib
import time
from urllib.parse import urlsplit

import httpx

from chaos.stack import Deployment
from shared.runner import REQUEST_BODY_TIMEOUT_SECONDS
from tests.support import eventually

SLOW_BODIES = 60
SLOW_HEADERS = 60
PROMPT_REQUESTS = 30


async def dribble_body(
    base_url: str, path: str, key: str, opened: list[str]
) -> tuple[float, bytes]:
    """Declare a 1,000-byte body and send it a byte a second; returns when and what the
    server answered (b"reset" if the connection was reset, b"" if nothing came in time)."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    started = time.monotonic()
    writer.write(
        (
            f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {key}\r\nContent-Length: 1000\r\n\r\n["
        ).encode()
    )
    await writer.drain()
    opened.append(path)

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            for _ in range(999):
                await asyncio.sleep(1.0)
                writer.write(b" ")
                await writer.drain()

    trickling = asyncio.create_task(trickle())
    try:
        answer = await asyncio.wait_for(reader.read(), REQUEST_BODY_TIMEOUT_SECONDS + 20)
    except ConnectionResetError:
        answer = b"reset"
    except (ConnectionError, TimeoutError):
        answer = b""
    finally:
        trickling.cancel()
        writer.close()
    return time.monotonic() - started, answer


async def stall_headers(base_url: str, hold: asyncio.Event, opened: list[str]) -> None:
    """Send half a request line and nothing more until ``hold`` is set."""
    url = urlsplit(base_url)
    _reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(b"POST /v1/ev")
    await writer.drain()
    opened.append("headers")
    await hold.wait()
    writer.close()


async def test_slow_clients_are_cut_off_in_time_and_do_not_starve_the_others(
    deployment: Deployment,
) -> None:
    ingest, alerts = deployment.service("ingest").url, deployment.service("alerts").url
    keys = deployment.secrets.keys
    hold = asyncio.Event()
    opened: list[str] = []
    stalled = [
        asyncio.create_task(stall_headers(ingest, hold, opened)) for _ in range(SLOW_HEADERS)
    ]
    slow = [
        asyncio.create_task(dribble_body(ingest, "/v1/events", keys["events"], opened))
        for _ in range(SLOW_BODIES)
    ] + [
        asyncio.create_task(dribble_body(alerts, "/v1/silences", keys["admin"], opened))
        for _ in range(SLOW_BODIES // 4)
    ]
    latencies: list[float] = []
    try:

        async def all_open() -> bool:
            return len(opened) == len(stalled) + len(slow)

        await eventually(all_open, timeout_s=10, what="every slow connection open and holding")
        async with httpx.AsyncClient(timeout=10) as http:
            for n in range(PROMPT_REQUESTS):
                started = time.monotonic()
                answer = await http.post(
                    f"{ingest}/v1/events",
                    json={
                        "event_type": "usage",
                        "event_id": f"prompt-{n}",
                        "account_id": "prompt",
                        "occurred_at": "2026-11-20T10:00:00Z",
                        "user_id": "u",
                        "type": "login",
                    },
                    headers={"Authorization": f"Bearer {keys['events']}"},
                )
                latencies.append(time.monotonic() - started)
                assert answer.status_code in (202, 422), answer.text  # 422: too old is fine
                health = await http.get(f"{alerts}/healthz")
                assert health.status_code == 200
        outcomes = await asyncio.gather(*slow)
    finally:
        hold.set()
        await asyncio.gather(*stalled, return_exceptions=True)
    assert max(latencies) < 2.0, f"served while {SLOW_BODIES} clients dribbled: {latencies}"
    for seconds, raw in outcomes:
        assert raw == b"reset" or (raw.startswith(b"HTTP/1.1 408") and b"request_timeout" in raw), (
            raw[:200]
        )
        assert REQUEST_BODY_TIMEOUT_SECONDS - 1 <= seconds <= REQUEST_BODY_TIMEOUT_SECONDS + 10
    answered = [raw for _, raw in outcomes if raw != b"reset"]
    assert len(answered) >= len(outcomes) // 2, f"{len(answered)} of {len(outcomes)} saw the 408"
