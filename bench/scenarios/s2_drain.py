"""S2 — scoring drain: a backlog of usage events, one scoring process, time until lag is 0.

Ours: ``python -m services.scoring`` (every background task it normally runs — rescoring,
relay, sweep — runs alongside) on a fresh database and consumer group; the clock starts at its
first committed batch (joining the group is not timed) and stops when the group's committed
offsets reach the end of the topic. Database rows/s = rows its handler wrote
(``churnwatch_scoring_rows_written_total``) ÷ that time.

The consumer alone: the same drain with rescoring held off (``SCORING_RESCORE_INTERVAL_SECONDS``
and ``SCORING_RESCORE_POLL_SECONDS`` at 600; a queued account then waits for the next round): what
catching up costs per event without the rescorings that run beside it, and the share of those.

Baselines, same messages: a raw aiokafka consumer that only decodes them; a raw asyncpg
set-based upsert of the rows the handler writes for them (``bench.baselines.raw_upsert``).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

from bench import procs
from bench.context import Context
from bench.infra import GroupOffsets, preload, scratch_database
from bench.procstat import CpuMeter, rss_bytes
from bench.report import Row, Section
from bench.stats import median
from bench.workload import Workload
from shared.settings import KafkaSettings

ROWS = "churnwatch_scoring_rows_written_total"
SCORED = "churnwatch_scoring_accounts_scored_total"


HELD_OFF = {"SCORING_RESCORE_INTERVAL_SECONDS": "600", "SCORING_RESCORE_POLL_SECONDS": "600"}


async def _ours(
    ctx: Context, settings: KafkaSettings, total: int, run: str, extra: dict[str, str]
) -> dict[str, Any]:
    async with scratch_database(ctx.infra) as url:
        group = f"{settings.topic_prefix}scoring-{run}"
        server = procs.service(
            "scoring",
            {
                "KAFKA_BOOTSTRAP_SERVERS": ctx.infra.bootstrap_servers,
                "TOPIC_PREFIX": settings.topic_prefix,
                "DATABASE_URL": url,
                "SCORING_CONSUMER_GROUP": group,
                "API_KEYS": "[]",
                **extra,
            },
            ctx.logs,
            suffix=f"-s2-{run}",
        )
        server.launch()
        try:
            await server.wait_ready()
            pg = CpuMeter(ctx.infra.pids.get("postgres", 0), tree=True)
            async with GroupOffsets(settings) as offsets:
                while (first := await offsets.total(group)) == 0:
                    if not server.running:
                        raise RuntimeError(f"scoring exited:\n{server.tail()}")
                    await asyncio.sleep(0.02)
                started = time.perf_counter()
                cpu = CpuMeter(procs.pid_of(server)).start()
                if pg.pid:
                    pg.start()
                rows0 = await server.metric(ROWS)
                done = first
                while done < total:
                    if not server.running:
                        raise RuntimeError(f"scoring exited:\n{server.tail()}")
                    await asyncio.sleep(0.05)
                    done = await offsets.total(group)
                seconds = time.perf_counter() - started
                cpu.stop()
                if pg.pid:
                    pg.stop()
            rows = await server.metric(ROWS) - rows0
            scored = await server.metric(SCORED, {"cause": "events"})
            rss = rss_bytes(procs.pid_of(server))
        finally:
            await server.terminate(30.0)
    events = total - first
    return {
        "events_per_second": events / seconds,
        "seconds": seconds,
        "cpu_us": cpu.seconds / events * 1e6,
        "pg_cpu_us": pg.seconds / events * 1e6 if pg.pid else None,
        "rows_per_second": rows / seconds,
        "rows_per_event": rows / events,
        "rescored": scored,
        "rss_mb": rss / 2**20,
    }


async def run(ctx: Context) -> Section:
    total = ctx.config.s2_events
    runs = ctx.config.runs
    settings, topics = await ctx.infra.topics()
    ctx.say(f"S2: producing {total:,} usage events to {topics.usage} (6 partitions)")
    pairs = list(Workload(seed=2).encoded(total, datetime.now(UTC)))
    await preload(settings, topics.usage, pairs)
    del pairs
    common = ["--bootstrap", ctx.infra.bootstrap_servers, "--topic", topics.usage]

    raw: list[dict[str, Any]] = []
    for n in range(runs + 1):  # the first one warms the broker's page cache up
        result = await asyncio.to_thread(
            procs.run_json,
            "bench.baselines.raw_consume",
            [*common, "--events", str(total)],
            {},
            ctx.logs,
            "s2-raw-consume",
        )
        if n:
            raw.append(result)
    raw_rate = median([r["events"] / r["seconds"] for r in raw])
    raw_cpu = median([r["cpu_seconds"] / r["events"] * 1e6 for r in raw])
    ctx.say(f"S2: raw consume+decode {raw_rate:,.0f} events/s")

    ours: list[dict[str, Any]] = []
    upserts: list[dict[str, Any]] = []
    for n in range(runs):
        result = await _ours(ctx, settings, total, str(n), {})
        ours.append(result)
        ctx.say(
            f"S2: scoring drain run {n + 1}: {result['events_per_second']:,.0f} events/s, "
            f"{result['rows_per_second']:,.0f} rows/s"
        )
        async with scratch_database(ctx.infra) as url:
            upsert = await asyncio.to_thread(
                procs.run_json,
                "bench.baselines.raw_upsert",
                [*common, "--events", str(total), "--database-url", url],
                {},
                ctx.logs,
                "s2-raw-upsert",
            )
        upserts.append(upsert)
        ctx.say(f"S2: raw upsert run {n + 1}: {upsert['rows_per_second']:,.0f} rows/s")

    alone: list[dict[str, Any]] = []
    for n in range(runs):
        alone.append(await _ours(ctx, settings, total, f"alone-{n}", HELD_OFF))
        ctx.say(f"S2: consumer alone run {n + 1}: {alone[-1]['events_per_second']:,.0f} events/s")

    rate = median([r["events_per_second"] for r in ours])
    rows = median([r["rows_per_second"] for r in ours])
    raw_rows = median([u["rows_per_second"] for u in upserts])
    section = Section(
        "S2 — scoring drain",
        rows=[
            Row(
                "S2 scoring drain, 1 process",
                rate,
                raw_rate,
                "events/s",
                target=0.25,
                cpu_us=(median([r["cpu_us"] for r in ours]), raw_cpu),
                db_cpu_us=_median_pg(ours),
            ),
            Row(
                "S2 consumer alone (rescoring held off)",
                median([r["events_per_second"] for r in alone]),
                raw_rate,
                "events/s",
                cpu_us=(median([r["cpu_us"] for r in alone]), raw_cpu),
                db_cpu_us=_median_pg(alone),
            ),
            Row("S2 database rows/s during the drain", rows, raw_rows, "rows/s", target=0.8),
        ],
        how=__doc__ or "",
    )
    section.details += [
        f"{total:,} usage events on 6 partitions, Zipf over 100k accounts; "
        f"{runs} run(s), median reported.",
        "scoring runs: " + _runs(ours),
        "consumer alone runs: " + _runs(alone),
        "raw consume+decode runs: "
        + ", ".join(f"{r['events'] / r['seconds']:,.0f} events/s" for r in raw),
        "raw upsert runs: "
        + ", ".join(
            f"{u['rows']:,} rows in {u['seconds']:.1f} s ({u['rows_per_second']:,.0f} rows/s)"
            for u in upserts
        ),
    ]
    if (pg := _median_pg(ours)) is not None:
        section.details.append(f"PostgreSQL CPU per event (median): {pg:.1f} µs")
    ctx.say(
        "S2: " + json.dumps({"ours": rate, "raw": raw_rate, "rows": rows, "raw_rows": raw_rows})
    )
    return section


def _median_pg(runs: list[dict[str, Any]]) -> float | None:
    pg = [r["pg_cpu_us"] for r in runs if r["pg_cpu_us"] is not None]
    return median(pg) if pg else None


def _runs(runs: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{r['events_per_second']:,.0f} events/s, {r['rows_per_second']:,.0f} rows/s, "
        f"{r['rows_per_event']:.2f} rows/event, CPU {r['cpu_us']:.1f} µs/event"
        + (f" + PostgreSQL {r['pg_cpu_us']:.1f} µs/event" if r["pg_cpu_us"] else "")
        + f", {r['rescored']:,.0f} rescorings, RSS {r['rss_mb']:.0f} MB"
        for r in runs
    )
