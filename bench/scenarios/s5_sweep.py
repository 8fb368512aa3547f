"""S5 — the time-driven sweep: re-evaluating every account vs one raw SQL pass over its rows.

Ours: the service's ``Sweeper.sweep`` (keyset chunks of 2,000 accounts, 2 chunks in flight,
one transaction each: lock the scores, gather the facts, score in Python, write scores,
history points and health changes), 5 minutes after every account was scored — in a process
of its own (``bench.sweeper``). Baseline: one SQL statement that reads the same rows over the
same windows and aggregates them per account, without scoring or writing anything.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from bench import procs
from bench.context import Context
from bench.infra import scratch_database
from bench.procstat import CpuMeter
from bench.report import Row, Section
from bench.stats import median


async def _one(ctx: Context, accounts: int, section: Section) -> None:
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    async with scratch_database(ctx.infra) as url:
        common = ["--database-url", url, "--now", now]
        ctx.say(f"S5: seeding and scoring {accounts:,} accounts")
        seeded = await asyncio.to_thread(
            procs.run_json,
            "bench.sweeper",
            ["seed", *common, "--accounts", str(accounts)],
            {},
            ctx.logs,
            f"s5-seed-{accounts}",
        )
        sweeps: list[dict[str, Any]] = []
        raws: list[dict[str, Any]] = []
        for n in range(ctx.config.runs):
            pg = CpuMeter(ctx.infra.pids.get("postgres", 0), tree=True)
            if pg.pid:
                pg.start()
            result = await asyncio.to_thread(
                procs.run_json,
                "bench.sweeper",
                ["sweep", *common, "--later-minutes", str(5 * (n + 1))],
                {},
                ctx.logs,
                f"s5-sweep-{accounts}",
            )
            result["pg_cpu_seconds"] = pg.stop() if pg.pid else None
            sweeps.append(result)
            raw = await asyncio.to_thread(
                procs.run_json, "bench.sweeper", ["raw", *common], {}, ctx.logs, "s5-raw"
            )
            raws.append(raw)
            ctx.say(
                f"S5: {accounts:,} accounts swept in {result['seconds']:.1f} s; "
                f"raw pass {raw['seconds']:.2f} s"
            )
    seconds = median([s["seconds"] for s in sweeps])
    raw_seconds = median([r["seconds"] for r in raws])
    cpu_us = median([s["cpu_seconds"] / s["accounts"] * 1e6 for s in sweeps])
    section.rows.append(
        Row(
            f"S5 sweep of {accounts:,} accounts",
            seconds,
            raw_seconds,
            "s",
            higher_is_better=False,
            cpu_us=(cpu_us, None),
            note="CPU µs per account",
        )
    )
    pg_us = [s["pg_cpu_seconds"] / s["accounts"] * 1e6 for s in sweeps if s["pg_cpu_seconds"]]
    section.details.append(
        f"{accounts:,} accounts ({seeded['daily_rows']:,} daily rows; seeded in "
        f"{seeded['seed_seconds']:.0f} s, first scoring {seeded['first_scoring_seconds']:.0f} s): "
        + "sweeps "
        + ", ".join(f"{s['seconds']:.1f} s ({s['accounts'] / s['seconds']:,.0f}/s)" for s in sweeps)
        + "; raw passes "
        + ", ".join(f"{r['seconds']:.2f} s" for r in raws)
        + f"; sweeping process CPU {cpu_us:.0f} µs/account"
        + (f", PostgreSQL {median(pg_us):.0f} µs/account" if pg_us else "")
    )


async def run(ctx: Context) -> Section:
    section = Section("S5 — sweep", how=__doc__ or "")
    for accounts in ctx.config.s5_accounts:
        await _one(ctx, accounts, section)
    section.details.append("The CPU column of S5 is µs per account (the sweeping process).")
    return section
