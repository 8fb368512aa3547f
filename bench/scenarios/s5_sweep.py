"""S5 — the time-driven sweep: the accounts due vs one raw SQL pass over every account's rows.

Ours: the service's ``Sweeper.sweep`` (the accounts due — ``health.next_eval_at`` at or before
the pass's moment — in keyset chunks of 2,000, 2 chunks in flight, one transaction each: lock
the scores, gather the facts, score in Python, write scores, their next due time, history
points and health changes), in a process of its own (``bench.sweeper``), at two moments
after every account was scored at noon UTC:

- 5 minutes later — the pass that runs every interval all day: only the accounts whose
  staleness or silence crossing fell in those minutes are due (the target: within 2× the raw
  pass, at 1M accounts);
- after the next UTC midnight (00:05, then a day later per further run; one run in
  both modes: at 1M accounts a pass takes minutes) — the day rollover:
  every account is due once a day. No target; its ratio is reported as it is, and its CPU per
  account is the sizing figure (accounts swept per hour per core).

Baseline: one SQL statement that reads the same rows over the same windows (those of the
pass's day) and aggregates them per account, without scoring or writing anything.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time
from typing import Any

from bench import procs
from bench.context import Context
from bench.infra import scratch_database
from bench.procstat import CpuMeter
from bench.report import Row, Section
from bench.stats import median


async def _pass(
    ctx: Context, common: list[str], accounts: int, minutes: float, what: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One sweep ``minutes`` after the seed (PostgreSQL's CPU metered), then the raw pass."""
    later = ["--later-minutes", f"{minutes:g}"]
    pg = CpuMeter(ctx.infra.pids.get("postgres", 0), tree=True)
    if pg.pid:
        pg.start()
    result = await asyncio.to_thread(
        procs.run_json, "bench.sweeper", ["sweep", *common, *later], {}, ctx.logs, f"s5-{what}"
    )
    result["pg_cpu_seconds"] = pg.stop() if pg.pid else None
    raw = await asyncio.to_thread(
        procs.run_json, "bench.sweeper", ["raw", *common, *later], {}, ctx.logs, f"s5-raw-{what}"
    )
    ctx.say(
        f"S5 {what}: {result['due']:,} of {accounts:,} accounts due, {result['accounts']:,} "
        f"swept in {result['seconds']:.2f} s; raw pass {raw['seconds']:.2f} s"
    )
    return result, raw


def _runs(passes: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
    return ", ".join(
        f"{s['seconds']:.2f} s ({s['due']:,} due, {s['accounts']:,} swept, "
        f"CPU {s['cpu_seconds']:.2f} s) vs raw {r['seconds']:.2f} s"
        for s, r in passes
    )


async def _one(ctx: Context, accounts: int, section: Section) -> None:
    # Noon UTC today: the 5-minute pass stays on the seed's day whatever the time of the run.
    noon = datetime.combine(datetime.now(UTC).date(), time(12), tzinfo=UTC)
    async with scratch_database(ctx.infra) as url:
        common = ["--database-url", url, "--now", noon.isoformat()]
        ctx.say(f"S5: seeding and scoring {accounts:,} accounts")
        seeded = await asyncio.to_thread(
            procs.run_json,
            "bench.sweeper",
            ["seed", *common, "--accounts", str(accounts)],
            {},
            ctx.logs,
            f"s5-seed-{accounts}",
        )
        intraday = [
            await _pass(ctx, common, accounts, 5 * (n + 1), f"{5 * (n + 1)}min")
            for n in range(ctx.config.runs)
        ]
        # 00:05 on the next day, then one more day per run: every account due each time
        rollover = [
            await _pass(ctx, common, accounts, (12 + 24 * n) * 60 + 5, f"day{n + 1}")
            for n in range(ctx.config.s5_rollover_runs)
        ]
    _intraday_row(section, accounts, intraday)
    _rollover_row(section, accounts, rollover)
    section.details.append(
        f"{accounts:,} accounts ({seeded['daily_rows']:,} daily rows; seeded in "
        f"{seeded['seed_seconds']:.0f} s, first scoring {seeded['first_scoring_seconds']:.0f} s)"
        f": 5-minute passes {_runs(intraday)}; day-rollover passes {_runs(rollover)}"
    )


def _intraday_row(
    section: Section, accounts: int, passes: list[tuple[dict[str, Any], dict[str, Any]]]
) -> None:
    seconds = median([s["seconds"] for s, _ in passes])
    swept = median([float(s["accounts"]) for s, _ in passes])
    cpu_ms = median([s["cpu_seconds"] * 1e3 for s, _ in passes])
    section.rows.append(
        Row(
            f"S5 sweep of {accounts:,} accounts, 5 min after scoring",
            seconds,
            median([r["seconds"] for _, r in passes]),
            "s",
            higher_is_better=False,
            target=2.0 if accounts >= 1_000_000 else None,
            note=f"{swept:,.0f} due and swept; the pass's CPU {cpu_ms:,.0f} ms",
        )
    )


def _rollover_row(
    section: Section, accounts: int, passes: list[tuple[dict[str, Any], dict[str, Any]]]
) -> None:
    swept = [s for s, _ in passes if s["accounts"]]
    cpu_us = median([s["cpu_seconds"] / s["accounts"] * 1e6 for s in swept]) if swept else None
    pg_us = [s["pg_cpu_seconds"] / s["accounts"] * 1e6 for s in swept if s["pg_cpu_seconds"]]
    section.rows.append(
        Row(
            f"S5 sweep of {accounts:,} accounts, day rollover",
            median([s["seconds"] for s, _ in passes]),
            median([r["seconds"] for _, r in passes]),
            "s",
            higher_is_better=False,
            cpu_us=(cpu_us, None),
            note="CPU µs per account swept",
            per="account",
            db_cpu_us=median(pg_us) if pg_us else None,
        )
    )
    if cpu_us:
        section.details.append(
            f"Day rollover, {accounts:,} accounts: {3.6e9 / cpu_us:,.0f} accounts swept per hour "
            "per core of the sweeping process"
            + (f" (PostgreSQL {median(pg_us):.0f} µs per account besides)" if pg_us else "")
        )


async def run(ctx: Context) -> Section:
    section = Section("S5 — sweep", how=__doc__ or "")
    for accounts in ctx.config.s5_accounts:
        await _one(ctx, accounts, section)
    section.details.append(
        "The CPU column of S5 is µs per account swept (the sweeping process), on the "
        "day-rollover row; the 5-minute row's CPU is the whole pass's, in its note."
    )
    return section
