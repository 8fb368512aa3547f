"""S1 — ingest throughput at 1, 100 and 1,000 events per request, closed loop.

Ours: ``python -m services.ingest`` (the per-key rate limit off: one client key sends
everything). Baseline: ``bench.baselines.bare_ingest``, the least an app on the same server
stack can do for the same bodies (same decoder, same producer settings, item bytes sent as
they came). Both answer 202 only once Kafka acknowledged the request's events. The load
generator (``bench.loadgen``, its own process) keeps 32 connections busy; a run measures
after a warm-up; ours and the baseline alternate, run after run. CPU µs/event is the server
process's CPU time in the measured window ÷ events accepted.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import procs
from bench.context import Context
from bench.report import Row, Section
from bench.stats import median
from bench.workload import Workload, body
from shared.auth import digest, new_key


def _bodies(path: Path, size: int, seed: int) -> Path:
    """Enough distinct bodies of ``size`` events that the cycle is long (~60k events)."""
    workload = Workload(seed=seed)
    count = max(20, 60_000 // size)
    now = datetime.now(UTC)
    bodies = []
    for _ in range(count):
        items = workload.native_items(size, now)
        bodies.append([size, body(items).decode()])
    path.write_text(json.dumps(bodies))
    return path


async def _load(ctx: Context, server: procs.ServiceProcess, bodies: Path, key: str | None) -> Any:
    config = ctx.config
    return await asyncio.to_thread(
        procs.run_json,
        "bench.loadgen",
        [
            "closed",
            "--url",
            f"{server.url}/v1/events",
            "--bodies",
            str(bodies),
            *(["--key", key] if key else []),
            "--connections",
            str(config.s1_connections),
            "--seconds",
            str(config.s1_seconds),
            "--warmup",
            str(config.s1_warmup_seconds),
            "--cpu-pid",
            str(procs.pid_of(server)),
        ],
        {},
        ctx.logs,
        f"s1-load-{server.name}",
    )


def _check(result: Any, who: str) -> None:
    bad = {code: n for code, n in result["statuses"].items() if code != "202"}
    if bad or not result["events"]:
        raise RuntimeError(f"S1 {who}: answers other than 202: {bad} ({result})")


async def run(ctx: Context) -> Section:
    settings, _ = await ctx.infra.topics()
    key = new_key()
    ours = procs.service(
        "ingest",
        {
            "KAFKA_BOOTSTRAP_SERVERS": ctx.infra.bootstrap_servers,
            "TOPIC_PREFIX": settings.topic_prefix,
            "API_KEYS": json.dumps(
                [{"name": "bench", "sha256": digest(key), "scopes": ["events"]}]
            ),
            "INGEST_RATE_LIMIT_PER_SECOND": "0",
        },
        ctx.logs,
        suffix="-s1",
    )
    bare_port = procs.free_port()
    bare = procs.server(
        "bare-ingest",
        [procs.sys.executable, "-m", "bench.baselines.bare_ingest"],
        {
            "BARE_PORT": str(bare_port),
            "KAFKA_BOOTSTRAP_SERVERS": ctx.infra.bootstrap_servers,
            "TOPIC_PREFIX": settings.topic_prefix,
        },
        ctx.logs,
        port=bare_port,
    )
    sizes = ctx.config.s1_sizes
    files = {
        size: _bodies(ctx.logs / f"s1-bodies-{size}.json", size, seed=10 + size) for size in sizes
    }
    results: dict[tuple[str, int], list[Any]] = {}
    with procs.started(ours.launch(), bare.launch()):
        await ours.wait_ready()
        await bare.wait_ready()
        for run in range(ctx.config.runs):
            for size in sizes:
                pair = [("ours", ours, key), ("bare", bare, None)]
                if run % 2:
                    pair.reverse()
                for who, server, token in pair:
                    result = await _load(ctx, server, files[size], token)
                    _check(result, who)
                    results.setdefault((who, size), []).append(result)
                    ctx.say(
                        f"S1 run {run + 1}, {size} events/request, {who}: "
                        f"{result['events_per_second']:,.0f} events/s, "
                        f"{result['cpu_seconds'] / result['events'] * 1e6:.1f} µs/event"
                    )
    section = Section("S1 — ingest throughput", how=__doc__ or "")
    best = 0.0
    for size in sizes:
        mine, base = results[("ours", size)], results[("bare", size)]
        rate = median([r["events_per_second"] for r in mine])
        best = max(best, rate)
        section.rows.append(
            Row(
                f"S1 ingest, {size:,} event{'s' if size > 1 else ''}/request",
                rate,
                median([r["events_per_second"] for r in base]),
                "events/s",
                target=0.7 if size == 1000 else None,
                cpu_us=(
                    median([r["cpu_seconds"] / r["events"] * 1e6 for r in mine]),
                    median([r["cpu_seconds"] / r["events"] * 1e6 for r in base]),
                ),
            )
        )
        section.details.append(
            f"{size} events/request: ours "
            + ", ".join(f"{r['events_per_second']:,.0f}" for r in mine)
            + " events/s (p99 "
            + ", ".join(f"{r['p99_ms']:.1f}" for r in mine)
            + " ms); bare "
            + ", ".join(f"{r['events_per_second']:,.0f}" for r in base)
            + " events/s (p99 "
            + ", ".join(f"{r['p99_ms']:.1f}" for r in base)
            + " ms)"
        )
    ctx.s1_max_events_per_second = best
    section.details.append(
        f"{ctx.config.s1_connections} connections, {ctx.config.s1_warmup_seconds:g} s warm-up + "
        f"{ctx.config.s1_seconds:g} s measured per run; ~265-byte items (Zipf over 100k accounts)."
    )
    return section
