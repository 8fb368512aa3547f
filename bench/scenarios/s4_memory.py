"""S4 — memory: the scorer's resident memory per 100k accounts vs one compact struct each.

Ours: one ``python -m services.scoring``. It first consumes events of a fifth as many accounts
(so buffers, pools, caches and the heap reach their working size), then the same events — two
per account — for N more accounts; each phase ends once its events are committed and every
queued account is rescored. Reported: (RSS after − RSS after the first phase) per 100k new
accounts: what the scorer's memory grows by with the number of accounts.
Baseline: the resident memory a bare process adds for one compact ``msgspec`` struct per
account in a dict (``bench.baselines.compact_structs``).
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import asyncpg

from bench import procs
from bench.context import Context
from bench.infra import GroupOffsets, dsn, preload, scratch_database
from bench.procstat import rss_bytes
from bench.report import Row, Section
from bench.stats import median
from bench.workload import account_id
from shared.events import UsageEvent, encode
from shared.settings import KafkaSettings


def _events(accounts: range, per_account: int, seed: int) -> list[tuple[bytes, bytes]]:
    """``per_account`` usage events for every account of ``accounts``, shuffled."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out = []
    for rank in accounts:
        for n in range(per_account):
            event = UsageEvent(
                event_id=f"s4-{seed}-{rank}-{n}",
                account_id=account_id(rank),
                occurred_at=now - timedelta(minutes=rng.randint(1, 600)),
                received_at=now,
                source="bench",
                user_id=f"user-{rng.randint(0, 9):03d}.{account_id(rank)}@customer.example",
                type="feature_used",
                feature=f"feature-{rng.randint(0, 7)}",
            )
            out.append((event.account_id.encode(), encode(event)))
    rng.shuffle(out)
    return out


async def _settled(
    offsets: GroupOffsets, group: str, total: int, url: str, server: procs.ServiceProcess
) -> None:
    conn = await asyncpg.connect(dsn(url))
    try:
        while True:
            if not server.running:
                raise RuntimeError(f"scoring exited:\n{server.tail()}")
            if await offsets.total(group) >= total and not await conn.fetchval(
                "SELECT count(*) FROM scoring.dirty_accounts"
            ):
                return
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


async def _ours(ctx: Context, accounts: int, run: int) -> float:
    settings: KafkaSettings
    settings, topics = await ctx.infra.topics()
    async with scratch_database(ctx.infra) as url:
        group = f"{settings.topic_prefix}scoring"
        server = procs.service(
            "scoring",
            {
                "KAFKA_BOOTSTRAP_SERVERS": ctx.infra.bootstrap_servers,
                "TOPIC_PREFIX": settings.topic_prefix,
                "DATABASE_URL": url,
                "API_KEYS": "[]",
            },
            ctx.logs,
            suffix=f"-s4-{run}",
        )
        server.launch()
        try:
            await server.wait_ready()
            warm_accounts = accounts // 5
            warm = _events(range(1, warm_accounts + 1), 2, seed=run)
            await preload(settings, topics.usage, warm)
            async with GroupOffsets(settings) as offsets:
                await _settled(offsets, group, len(warm), url, server)
                warm_rss = rss_bytes(procs.pid_of(server))
                ctx.say(f"S4: scorer warm at {warm_rss / 2**20:.0f} MB; now {accounts:,} accounts")
                every = _events(range(warm_accounts + 1, warm_accounts + accounts + 1), 2, run)
                await preload(settings, topics.usage, every)
                await _settled(offsets, group, len(warm) + len(every), url, server)
                grown = rss_bytes(procs.pid_of(server)) - warm_rss
        finally:
            await server.terminate(30.0)
    return grown / accounts * 100_000 / 2**20


async def run(ctx: Context) -> Section:
    accounts = ctx.config.s4_accounts
    ours = [await _ours(ctx, accounts, n) for n in range(ctx.config.runs)]
    bases = []
    for _ in range(ctx.config.runs):
        base = await asyncio.to_thread(
            procs.run_json,
            "bench.baselines.compact_structs",
            ["--accounts", str(accounts)],
            {},
            ctx.logs,
            "s4-compact",
        )
        bases.append(base["bytes"] / base["accounts"] * 100_000 / 2**20)
    section = Section(
        "S4 — memory",
        rows=[
            Row(
                "S4 scorer RSS per 100k accounts",
                median(ours),
                median(bases),
                "MB",
                higher_is_better=False,
                target=1.5,
            )
        ],
        how=__doc__ or "",
    )
    section.details.append(
        f"{accounts:,} accounts after {accounts // 5:,} warm-up accounts; scorer growth per "
        f"100k accounts: {', '.join(f'{x:.1f} MB' for x in ours)}; compact structs: "
        f"{', '.join(f'{x:.1f} MB' for x in bases)}"
    )
    return section
