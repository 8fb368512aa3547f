"""An HTTP/1.1 load generator, run as its own process so its CPU is not the server's.

    python -m bench.loadgen closed --url URL --bodies FILE --connections 32 --seconds 10 ...
    python -m bench.loadgen open   --url URL --bodies FILE --rate 50 --seconds 30 ...

``--bodies`` is a file of request bodies (a JSON list of ``[events, body text]``), sent in turn.
*Closed* loop: every connection sends its next request as soon as the last one was answered
(throughput). *Open* loop: requests leave on a fixed schedule whatever the answers (latency at a
given rate), on as many connections as that takes. Keep-alive, pre-built request bytes, a
minimal response parser: the client costs a small fraction of what the server does per request.

Prints one JSON line: counts, accepted events, latency percentiles, the measured window and —
with ``--cpu-pid`` — the CPU seconds that process spent inside the window. A status 599 is no
server's answer: the generator got none (the connection broke; ``errors`` counts why). An idle
connection is not reused near the server's keep-alive timeout (:data:`REUSE_IDLE_SECONDS`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import uvloop

from bench.procstat import cpu_seconds
from bench.stats import percentile


@dataclass
class Tally:
    statuses: dict[int, int] = field(default_factory=dict)
    events: int = 0
    latencies: list[float] = field(default_factory=list)
    sent: list[tuple[int, float, float, int]] = field(default_factory=list)  # body, at, s, status
    errors: dict[str, int] = field(default_factory=dict)  # the 599s: no answer, by error

    def add(self, status: int, events: int, latency: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == 202:
            self.events += events
        self.latencies.append(latency)


SERVER_KEEP_ALIVE_SECONDS = 5.0  # shared.runner: the services' uvicorn closes idle connections
REUSE_IDLE_SECONDS = SERVER_KEEP_ALIVE_SECONDS - 1.0
"""A connection idle longer than this is closed rather than reused: the server may be closing
it at that very moment, and a request written into a closing connection is lost (it was the
599 of S3's open loop: connections opened during a slow spell sat idle past the server's
keep-alive, then were taken again in the next one)."""


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.idle_since = time.monotonic()

    def stale(self, now: float) -> bool:
        """The server closed it, or may be closing it (idle near its keep-alive timeout)."""
        if self._reader is None:
            return False
        return self._reader.at_eof() or now - self.idle_since > REUSE_IDLE_SECONDS

    async def request(self, raw: bytes) -> int:
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        self._writer.write(raw)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lowered = name.lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"connection" and value.strip().lower() == b"close":
                close = True
        if length:
            await self._reader.readexactly(length)
        if close:
            self.close()
        self.idle_since = time.monotonic()
        return status

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def requests(url: str, key: str | None, bodies: list[tuple[int, str]]) -> list[tuple[int, bytes]]:
    parts = urlsplit(url)
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    out = []
    for events, text in bodies:
        body = text.encode()
        head = (
            f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\n{auth}Content-Length: {len(body)}\r\n\r\n"
        )
        out.append((events, head.encode() + body))
    return out


def take(idle: list[Connection], host: str, port: int, now: float | None = None) -> Connection:
    """The most recently used idle connection that is not stale, else a new one."""
    now = time.monotonic() if now is None else now
    while idle:
        conn = idle.pop()
        if not conn.stale(now):
            return conn
        conn.close()
    return Connection(host, port)


async def closed(args: argparse.Namespace, prepared: list[tuple[int, bytes]]) -> dict[str, object]:
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    tally = Tally()
    measuring = False
    stop = False

    async def worker(offset: int) -> None:
        conn = Connection(host, port)
        i = offset
        while not stop:
            events, raw = prepared[i % len(prepared)]
            i += args.connections
            started = time.perf_counter()
            try:
                status = await conn.request(raw)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                conn.close()
                status = 599
                if measuring:
                    tally.errors[type(exc).__name__] = tally.errors.get(type(exc).__name__, 0) + 1
            if measuring:
                tally.add(status, events, time.perf_counter() - started)
        conn.close()

    tasks = [asyncio.create_task(worker(n)) for n in range(args.connections)]
    await asyncio.sleep(args.warmup)
    cpu0 = cpu_seconds(args.cpu_pid) if args.cpu_pid else 0.0
    t0 = time.perf_counter()
    measuring = True
    await asyncio.sleep(args.seconds)
    measuring = False
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(args.cpu_pid) - cpu0 if args.cpu_pid else 0.0
    stop = True
    await asyncio.wait(tasks, timeout=30)
    return summary(tally, elapsed, cpu)


async def open_loop(
    args: argparse.Namespace, prepared: list[tuple[int, bytes]]
) -> dict[str, object]:
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    tally = Tally()
    idle: list[Connection] = []
    interval = 1.0 / args.rate
    total = int(args.rate * (args.warmup + args.seconds))
    warm = int(args.rate * args.warmup)
    in_flight: set[asyncio.Task[None]] = set()

    async def one(index: int) -> None:
        conn = take(idle, host, port)
        events, raw = prepared[index % len(prepared)]
        sent_at = time.time()
        started = time.perf_counter()
        try:
            status = await conn.request(raw)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            conn.close()
            status = 599
            tally.errors[type(exc).__name__] = tally.errors.get(type(exc).__name__, 0) + 1
        latency = time.perf_counter() - started
        idle.append(conn)
        if index >= warm:
            tally.add(status, events, latency)
        tally.sent.append((index % len(prepared), sent_at, latency, status))

    start = time.perf_counter()
    cpu0 = 0.0
    t0 = start
    for index in range(total):
        due = start + index * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if index == warm:
            cpu0 = cpu_seconds(args.cpu_pid) if args.cpu_pid else 0.0
            t0 = time.perf_counter()
        task = asyncio.create_task(one(index))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight, timeout=60)
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(args.cpu_pid) - cpu0 if args.cpu_pid else 0.0
    result = summary(tally, elapsed, cpu)
    result["sent"] = tally.sent
    return result


def summary(tally: Tally, elapsed: float, cpu: float) -> dict[str, object]:
    lat = sorted(tally.latencies)
    return {
        "seconds": elapsed,
        "requests": len(lat),
        "statuses": {str(k): v for k, v in tally.statuses.items()},
        "errors": tally.errors,
        "events": tally.events,
        "events_per_second": tally.events / elapsed if elapsed else 0.0,
        "cpu_seconds": cpu,
        "p50_ms": percentile(lat, 50) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("mode", choices=["closed", "open"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--bodies", type=Path, required=True)
    parser.add_argument("--key", default=None)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second (open)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--cpu-pid", type=int, default=0)
    args = parser.parse_args(argv)
    bodies = [(int(n), str(text)) for n, text in json.loads(args.bodies.read_text())]
    prepared = requests(args.url, args.key, bodies)
    run = closed if args.mode == "closed" else open_loop
    result = uvloop.run(run(args, prepared))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
