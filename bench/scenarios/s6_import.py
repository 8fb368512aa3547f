"""S6 — import-history: a file of past usage events loaded into scoring's tables.

Ours: ``churnwatch.importer.run`` (what ``churnwatch import-history`` runs) on a fresh, migrated
database: the file is read and decoded, each chunk of 50,000 events is one transaction (chunk
marker, every event's digest claimed in ``imported_events``, the recent ones in
``processed_events``, the events coalesced per account and day and merged with the live path's
staging-table merges). The load rate is events ÷ the load step's time; the score history of
the imported days and the current scores follow and are reported apart (no target).

Baseline, same file, same server: read and decode each line with the same decoder, then a
raw binary ``COPY`` of one row per event (id, account, time, user, type, feature, quantity)
into a plain table without any index, in chunks of the same size — what getting the same rows
into PostgreSQL costs at the least.

CPU per event (user + system, from ``/proc``): this process's (the importer runs in it) and
PostgreSQL's (the server and its backends) during the load step — the importer asks for each
step's progress bar as the step starts, which is where the meters start and stop — and the
same for the raw ``COPY``.
"""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench.context import Context
from bench.infra import dsn, scratch_database
from bench.procstat import CpuMeter
from bench.report import Row, Section
from bench.stats import median
from bench.workload import Workload
from churnwatch import files, importer
from churnwatch.progress import Bar
from services.scoring import model as health_model
from shared.events import UsageEvent, decode_event

CHUNK = importer.DEFAULT_CHUNK_EVENTS
RAW_TABLE = """
CREATE TABLE raw_events (
    event_id text, account_id text, occurred_at timestamptz, user_id text, type text,
    feature text, quantity float8
)
"""


def write_history(path: Path, events: int, accounts: int, days: int, now: datetime) -> None:
    workload = Workload(seed=6, accounts=accounts, spread=timedelta(days=days))
    files.write_events(path, workload.events(events, now))


async def raw_copy(url: str, path: Path, pg: CpuMeter) -> dict[str, float]:
    conn = await asyncpg.connect(dsn(url))
    try:
        await conn.execute(RAW_TABLE)
        own = CpuMeter(os.getpid()).start()
        if pg.pid:
            pg.start()
        started = time.perf_counter()
        rows: list[tuple[Any, ...]] = []
        count = 0
        with path.open("rb") as lines:
            for line in lines:
                e = decode_event(line)
                assert isinstance(e, UsageEvent)
                rows.append(
                    (
                        e.event_id,
                        e.account_id,
                        e.occurred_at,
                        e.user_id,
                        e.type,
                        e.feature,
                        e.quantity,
                    )
                )
                if len(rows) >= CHUNK:
                    await conn.copy_records_to_table("raw_events", records=rows)
                    count += len(rows)
                    rows = []
        if rows:
            await conn.copy_records_to_table("raw_events", records=rows)
            count += len(rows)
        seconds = time.perf_counter() - started
        own.stop()
        pg_seconds = pg.stop() if pg.pid else None
    finally:
        await conn.close()
    return {
        "events": count,
        "seconds": seconds,
        "events_per_second": count / seconds,
        "cpu_us": own.seconds / count * 1e6,
        "pg_cpu_us": pg_seconds / count * 1e6 if pg_seconds is not None else math.nan,
    }


class LoadMeter:
    """CPU of this process and of PostgreSQL during the import's load step: the importer asks
    for its step's progress bar as each step starts (load, then history), and no bar is given."""

    def __init__(self, pg: CpuMeter) -> None:
        self.own = CpuMeter(os.getpid())
        self.pg = pg

    def __call__(self, label: str, unit: str) -> Bar | None:
        step = label.strip()
        if step == "load":
            self.own.start()
            if self.pg.pid:
                self.pg.start()
        elif step == "history":
            self.own.stop()
            if self.pg.pid:
                self.pg.stop()
        return None


async def ours(url: str, path: Path, now: datetime, meter: LoadMeter) -> importer.Summary:
    options = importer.Options(
        events=[path],
        as_of=now,
        model=health_model.load(health_model.DEFAULT_MODEL_FILE),
        chunk_events=CHUNK,
    )
    return await importer.run(url, options, bars=meter)


async def run(ctx: Context) -> Section:
    total = ctx.config.s6_events
    accounts = ctx.config.s6_accounts
    days = ctx.config.s6_days
    runs = ctx.config.runs
    now = datetime.now(UTC).replace(microsecond=0)
    workdir = Path(tempfile.mkdtemp(prefix="bench-s6-", dir=ctx.logs))
    path = workdir / "history.jsonl"
    ctx.say(f"S6: writing {total:,} usage events over {days} days, {accounts:,} accounts")
    await asyncio.to_thread(write_history, path, total, accounts, days, now)
    size_mb = path.stat().st_size / 2**20

    raw: list[dict[str, float]] = []
    mine: list[importer.Summary] = []
    cpu: list[tuple[float, float]] = []  # ours: this process, PostgreSQL (µs/event, load step)
    postgres = ctx.infra.pids.get("postgres", 0)
    for n in range(runs):
        async with scratch_database(ctx.infra) as url:
            raw.append(await raw_copy(url, path, CpuMeter(postgres, tree=True)))
        ctx.say(
            f"S6: raw COPY run {n + 1}: {raw[-1]['events_per_second']:,.0f} events/s, "
            f"CPU {raw[-1]['cpu_us']:.1f} µs/event + PostgreSQL {raw[-1]['pg_cpu_us']:.1f}"
        )
        async with scratch_database(ctx.infra) as url:
            meter = LoadMeter(CpuMeter(postgres, tree=True))
            mine.append(await ours(url, path, now, meter))
        s = mine[-1]
        cpu.append(
            (
                meter.own.seconds / s.events_read * 1e6,
                meter.pg.seconds / s.events_read * 1e6 if postgres else math.nan,
            )
        )
        ctx.say(
            f"S6: import-history run {n + 1}: load {s.load_rate:,.0f} events/s, "
            f"CPU {cpu[-1][0]:.1f} µs/event + PostgreSQL {cpu[-1][1]:.1f}; "
            f"history {s.seconds.get('history', 0):.1f} s, "
            f"scores {s.seconds.get('scores', 0):.1f} s"
        )
    raw_rate = median([r["events_per_second"] for r in raw])
    load_rate = median([s.load_rate for s in mine])
    whole_rate = median([s.events_read / s.seconds["total"] for s in mine])
    pg_us = median([c[1] for c in cpu])
    section = Section(
        "S6 — import-history",
        rows=[
            Row(
                "S6 import-history load",
                load_rate,
                raw_rate,
                "events/s",
                target=0.5,
                cpu_us=(median([c[0] for c in cpu]), median([r["cpu_us"] for r in raw])),
                db_cpu_us=None if math.isnan(pg_us) else pg_us,
                note=f"raw COPY: PostgreSQL {median([r['pg_cpu_us'] for r in raw]):.1f} µs/event",
            ),
            Row("S6 import-history, load + history + scores", whole_rate, raw_rate, "events/s"),
        ],
        how=__doc__ or "",
    )
    section.details += [
        f"{total:,} usage events ({size_mb:.0f} MB of JSONL) over {days} days and "
        f"{accounts:,} accounts (Zipf); {runs} run(s), median reported.",
        "import-history runs: "
        + "; ".join(
            f"{s.events_counted:,} events in {s.chunks} chunks, load {s.seconds['load']:.1f} s "
            f"({s.load_rate:,.0f} events/s), history {s.history_days} days / "
            f"{s.history_points:,} points in {s.seconds['history']:.1f} s, "
            f"{s.scored:,} scores in {s.seconds['scores']:.1f} s"
            for s in mine
        ),
        "raw COPY runs: "
        + ", ".join(f"{r['events']:,.0f} rows in {r['seconds']:.1f} s" for r in raw),
    ]
    path.unlink(missing_ok=True)
    return section
