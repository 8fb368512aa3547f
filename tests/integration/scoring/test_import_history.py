"""``churnwatch import-history`` against the real PostgreSQL: counted once however often it runs,
exact after a crash, once with live traffic, no notification, history and current scores."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from churnwatch import cli, files, importer
from churnwatch.simulator import simulate
from services.scoring import aggregate
from services.scoring.handler import BatchHandler
from services.scoring.model import Model
from services.scoring.store import dedup
from shared.events import Event
from tests.unit.scoring.builders import NOW, records, usage

START = date(2026, 7, 1)
SIM_DAYS = 45
SIM_END = datetime(2026, 8, 15, 9, 0, tzinfo=UTC)  # the moment the import is "as of"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 accounts over 45 days: events.jsonl, accounts.csv, people.csv, ..."""
    directory = tmp_path_factory.mktemp("sim")
    files.write_simulation(simulate(5, accounts=12, days=SIM_DAYS, start=START), directory)
    return directory


def options(directory: Path, model: Model, **overrides: Any) -> importer.Options:
    values: dict[str, Any] = {
        "events": [directory / "events.jsonl"],
        "accounts": [directory / "accounts.csv", directory / "account-changes.csv"],
        "people": [directory / "people.csv"],
        "as_of": SIM_END,
        "model": model,
        "chunk_events": 2_000,
    }
    return importer.Options(**(values | overrides))


def unique_events(directory: Path) -> list[Event]:
    seen: dict[bytes, Event] = {}
    for event in files.read_events(directory / "events.jsonl"):
        seen.setdefault(dedup.event_key(event), event)
    return list(seen.values())


def expected_days(events: list[Event]) -> dict[tuple[str, date], tuple[int, int, int, int]]:
    batch = aggregate.coalesce(events)
    return {
        key: (c.usage_events, c.tickets_opened, c.high_urgent_opened, c.escalations)
        for key, c in batch.days.items()
    }


async def stored_days(conn: asyncpg.Connection) -> dict[tuple[str, date], tuple[int, ...]]:
    rows = await conn.fetch(
        "SELECT account_id, day, usage_events, tickets_opened, high_urgent_opened, escalations "
        "FROM scoring.account_days"
    )
    return {(r[0], r[1]): (r[2], r[3], r[4], r[5]) for r in rows}


async def snapshot(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every aggregate table, sorted: what must not move when an import runs again."""
    tables = {
        "account_days": "account_id, day",
        "survey_days": "account_id, day",
        "account_users": "account_id, user_id",
        "account_features": "account_id, feature",
        "tickets": "account_id, ticket_id",
        "activity": "account_id",
        "processed_events": "event_hash",
    }
    out = {}
    for table, order in tables.items():
        rows = await conn.fetch(f"SELECT * FROM scoring.{table} ORDER BY {order}")  # noqa: S608
        out[table] = [tuple(r) for r in rows]
    return out


async def test_importing_twice_counts_every_event_once_and_notifies_nobody(
    scoring_url: str, pool: asyncpg.Pool, model: Model, simulated: Path
) -> None:
    events = unique_events(simulated)
    first = await importer.run(scoring_url, options(simulated, model))
    assert first.bad == []
    assert first.events_read == len(events) > 2_000
    assert first.events_counted == len(events)
    async with pool.acquire() as conn:
        assert await stored_days(conn) == expected_days(events)
        after_first = await snapshot(conn)

    # the same run again: every chunk is skipped by its marker
    again = await importer.run(scoring_url, options(simulated, model))
    assert (again.events_counted, again.chunks_skipped) == (0, again.chunks)
    # other chunk boundaries: no marker matches, every event is found by its digest
    regrouped = await importer.run(scoring_url, options(simulated, model, chunk_events=777))
    assert (regrouped.events_counted, regrouped.chunks_skipped) == (0, 0)
    assert regrouped.duplicates == len(events)
    async with pool.acquire() as conn:
        assert await snapshot(conn) == after_first
        assert await conn.fetchval("SELECT count(*) FROM scoring.outbox") == 0

        # a history point per account and imported day before the as-of day, and a current
        # score for every account
        days = await conn.fetch(
            "SELECT account_id, count(DISTINCT as_of::date) AS days, min(as_of) AS first "
            "FROM scoring.health_history GROUP BY account_id"
        )
        health = await conn.fetch("SELECT account_id, as_of, band FROM scoring.health")
        changes = await conn.fetchval(
            "SELECT count(*) FROM scoring.health_history WHERE change_id IS NOT NULL"
        )
    accounts = {e.account_id for e in events}
    assert {r["account_id"] for r in health} >= accounts
    assert {r["as_of"] for r in health} == {SIM_END}
    assert changes == 0
    imported_days = (SIM_END.date() - START).days
    by_account = {r["account_id"]: r for r in days}
    assert set(by_account) >= accounts
    assert max(r["days"] for r in days) == imported_days
    assert min(r["first"] for r in days) == importer.day_end(START)


async def test_overlapping_exports_count_the_shared_events_once(
    scoring_url: str, pool: asyncpg.Pool, model: Model, simulated: Path, tmp_path: Path
) -> None:
    """January–June then March–September: two files sharing a stretch, other chunk boundaries
    each time; then both again as one file. The shared events (some inside the live horizon,
    claimed in processed_events too) are counted once."""
    events = sorted(unique_events(simulated), key=lambda e: e.occurred_at)
    cut = len(events) // 5
    first, second = events[: 3 * cut], events[2 * cut :]
    shared = len(first) + len(second) - len(events)
    assert shared > 0
    assert second[-1].occurred_at >= SIM_END - timedelta(days=8)  # some live-horizon claims
    for name, part in (("first.jsonl", first), ("second.jsonl", second), ("all.jsonl", events)):
        files.write_events(tmp_path / name, part)

    def run(name: str, chunk: int) -> importer.Options:
        return options(simulated, model, events=[tmp_path / name], chunk_events=chunk)

    a = await importer.run(scoring_url, run("first.jsonl", 1_000))
    b = await importer.run(scoring_url, run("second.jsonl", 700))
    assert (a.events_counted, a.duplicates) == (len(first), 0)
    assert (b.events_counted, b.duplicates) == (len(second) - shared, shared)
    async with pool.acquire() as conn:
        assert await stored_days(conn) == expected_days(events)
        once = await snapshot(conn)
        claimed = await conn.fetchval("SELECT count(*) FROM scoring.imported_events")
    assert claimed == len(events)
    both = await importer.run(scoring_url, run("all.jsonl", 1_500))
    assert (both.events_counted, both.chunks_skipped, both.duplicates) == (0, 0, len(events))
    async with pool.acquire() as conn:
        assert await snapshot(conn) == once


async def test_a_crash_mid_import_then_a_rerun_counts_exactly(
    scoring_url: str, pool: asyncpg.Pool, model: Model, simulated: Path
) -> None:
    events = unique_events(simulated)
    with pytest.raises(importer.ImportFailure):
        await importer.run(
            scoring_url, options(simulated, model, chunk_events=1_000, fail_after_chunks=2)
        )
    async with pool.acquire() as conn:
        partial = sum(v[0] for v in (await stored_days(conn)).values())
    assert 0 < partial < sum(v[0] for v in expected_days(events).values())
    resumed = await importer.run(scoring_url, options(simulated, model, chunk_events=1_000))
    assert resumed.chunks_skipped == 2
    assert resumed.events_counted == len(events) - 2_000
    async with pool.acquire() as conn:
        assert await stored_days(conn) == expected_days(events)


async def test_sigkill_mid_import_then_a_rerun_counts_exactly(
    scoring_url: str, pool: asyncpg.Pool, model: Model, simulated: Path
) -> None:
    """A real crash: the CLI in its own process, killed once chunks are committed."""
    events = unique_events(simulated)
    env = os.environ | {"DATABASE_URL": scoring_url, "LOG_LEVEL": "WARNING"}
    command = [
        sys.executable,
        "-m",
        "churnwatch.cli",
        "import-history",
        str(simulated / "events.jsonl"),
        "--as-of",
        SIM_END.isoformat(),
        "--chunk-events",
        "100",
    ]
    child = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        committed = 0
        while committed < 3:
            assert child.returncode is None, await child.communicate()
            assert time.monotonic() < deadline, "no chunk committed in 60 s"
            async with pool.acquire() as conn:
                committed = await conn.fetchval("SELECT count(*) FROM scoring.import_chunks")
            await asyncio.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        if child.returncode is None:
            child.kill()
        await child.communicate()
    assert child.returncode == -signal.SIGKILL
    async with pool.acquire() as conn:
        # the server may still be finishing a COMMIT the killed process had sent: wait until
        # its sessions are gone before counting what was committed
        deadline = time.monotonic() + 30
        while await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'import-history'"
        ):
            assert time.monotonic() < deadline, "the killed import's sessions stayed"
            await asyncio.sleep(0.02)
        done = await conn.fetchval("SELECT count(*) FROM scoring.import_chunks")
        partial = sum(v[0] for v in (await stored_days(conn)).values())
    assert partial < len(events)  # it was killed part-way
    resumed = await importer.run(scoring_url, options(simulated, model, chunk_events=100))
    assert resumed.chunks_skipped == done
    async with pool.acquire() as conn:
        assert await stored_days(conn) == expected_days(events)


async def test_an_event_counted_once_whether_import_or_live_delivery_comes_first(
    scoring_url: str, pool: asyncpg.Pool, model: Model, handler: BatchHandler, tmp_path: Path
) -> None:
    recent = [usage("acme", at=NOW - timedelta(hours=h), event_id=f"r{h}") for h in range(1, 6)]
    old = [usage("acme", at=NOW - timedelta(days=30 + d), event_id=f"o{d}") for d in range(3)]
    path = tmp_path / "history.jsonl"
    files.write_events(path, [*old, *recent])
    # live first for one event, then the import, then live again for the others
    await handler(records(recent[0]))
    summary = await importer.run(
        scoring_url,
        importer.Options(events=[path], as_of=NOW, model=model, chunk_events=4),
    )
    assert summary.events_counted == len(old) + len(recent) - 1
    await handler(records(*recent))
    async with pool.acquire() as conn:
        total = await conn.fetchval("SELECT sum(usage_events) FROM scoring.account_days")
        outbox = await conn.fetchval("SELECT count(*) FROM scoring.outbox")
    assert total == len(old) + len(recent)
    assert outbox == 0  # the import published nothing (live rescoring has not run)


def test_bad_rows_are_reported_with_file_line_and_field_and_the_good_ones_imported(
    scoring_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jsonl = tmp_path / "events.jsonl"
    good = usage("acme", at=NOW - timedelta(days=40), event_id="g1")
    files.write_events(jsonl, [good])
    with jsonl.open("a") as extra:
        extra.write('{"event_type": "usage", "account_id": "acme"}\n')
        extra.write("not json\n")
    csv_file = tmp_path / "events.csv"
    csv_file.write_text(
        "event_type,event_id,account_id,occurred_at,user_id,type,quantity\n"
        "usage,c1,acme,2026-10-01T10:00:00Z,u1,login,2\n"
        "usage,c2,acme,2026-10-01T11:00:00Z,u1,login,lots\n"
        "usage,c3,,2026-10-01T12:00:00Z,u1,login,1\n"
    )
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("account_id,name,seats\nacme,Acme,12\nbeta,Beta,many\n")
    monkeypatch.setenv("DATABASE_URL", scoring_url)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(
        [
            *("import-history", str(jsonl), str(csv_file), "--accounts", str(accounts)),
            *("--as-of", NOW.isoformat()),
        ],
        out=out,
        err=err,
    )
    assert code == 2, err.getvalue()
    lines = err.getvalue()
    assert f"{jsonl}:2: missing field(s): event_id, occurred_at, user_id, type" in lines
    assert f"{jsonl}:3: not JSON" in lines
    assert f"{csv_file}:3: quantity: 'lots' is not a number" in lines
    assert f"{csv_file}:4: missing field(s): account_id" in lines
    assert out.getvalue().startswith("imported 2 of 2 events")
    assert f"{accounts}:3: " in lines

    async def seats() -> list[tuple[str, int]]:
        conn = await asyncpg.connect(scoring_url.replace("+asyncpg", ""))
        try:
            rows = await conn.fetch("SELECT account_id, seats FROM scoring.accounts")
        finally:
            await conn.close()
        return [(r[0], r[1]) for r in rows]

    assert asyncio.run(seats()) == [("acme", 12)]


def test_without_a_migrated_database_it_says_so_and_exits_3(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.jsonl"
    files.write_events(path, [usage("acme", at=NOW)])
    monkeypatch.setenv("DATABASE_URL", database_url)
    said = io.StringIO()
    code = cli.main(["import-history", str(path)], out=io.StringIO(), err=said)
    assert code == 3
    assert "not migrated" in said.getvalue()


FIGHTCHURN = ROOT / "tests" / "fixtures" / "outside" / "crm5"


@pytest.mark.skipif(not FIGHTCHURN.is_dir(), reason="the fightchurn crm5 fixture is not there")
async def test_the_fightchurn_export_imported_twice_is_counted_once(
    scoring_url: str, pool: asyncpg.Pool, model: Model, tmp_path: Path
) -> None:
    """Outside data (fightchurn's ChurnSim crm5, converted): 300 accounts over 18 months."""
    from churnwatch.outside import crm5

    converted = tmp_path / "crm5"
    await asyncio.to_thread(crm5.convert, FIGHTCHURN, converted)
    events: dict[bytes, Event] = {}
    for event in files.read_events(converted / "events.csv"):
        events.setdefault(dedup.event_key(event), event)
    run = importer.Options(
        events=[converted / "events.csv"],
        accounts=[converted / "accounts.csv", converted / "account-changes.csv"],
        people=[converted / "people.csv"],
        as_of=datetime(2023, 7, 1, tzinfo=UTC),
        model=model,
        history=False,  # 300 accounts × 546 days: the history step is tested above
    )
    first = await importer.run(scoring_url, run)
    assert first.bad == []
    assert first.events_counted == len(events) > 50_000
    async with pool.acquire() as conn:
        once = await snapshot(conn)
        assert await stored_days(conn) == expected_days(list(events.values()))
    second = await importer.run(scoring_url, run)
    assert second.events_counted == 0
    assert second.duplicates == len(events)
    async with pool.acquire() as conn:
        assert await snapshot(conn) == once
        assert await conn.fetchval("SELECT count(*) FROM scoring.outbox") == 0
        scored = await conn.fetchval("SELECT count(*) FROM scoring.health")
    assert scored == first.accounts == 300
