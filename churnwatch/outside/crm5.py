"""fightchurn's ChurnSim, B2B CRM model ``crm5``: generated in a tool venv against a PostgreSQL
of the run's own, dumped, and converted into churnwatch's formats.

**Generate** (:func:`generate`). ``fightchurn`` 1.2.0 (PyPI, MIT; the simulator published with
the book *Fighting Churn with Data*, described in SSRN 4540160) lives in its own virtual
environment, ``~/.cache/churnwatch/venvs/fightchurn-<digest of the lock>``, built from
``fightchurn-requirements.lock`` with ``--require-hashes`` (:func:`ensure_venv`); none of its
dependencies enter the project's locks. A PostgreSQL server of the run's own
(``devstack.postgres.PostgresServer``, the one the tests and benchmarks start) receives the
simulation: ``python -m fightchurn.churnsim.churnsim --config-name crm5 init_customers=N
n_parallel=1 random_seed=S start_date=... end_date=... force=True`` with ``CHURN_DB``,
``CHURN_DB_USER``, ``CHURN_DB_PASS``, ``CHURN_DB_HOST``, ``PGPORT``, ``CHURN_OUT_DIR`` and a
``TMPDIR`` of its own (the simulator keeps its id counter and COPY files there). The four tables
the conversion reads are dumped as CSV (``account.csv``, ``subscription.csv``,
``event_type.csv``, ``event.csv.gz``, with ``meta.json``: the knobs and the data's end) and the
server is stopped.

**The source.** ``crm5.account(id, channel, date_of_birth, country)``;
``crm5.subscription(account_id, product, start_date, end_date, mrr, quantity, units,
bill_period_months, discount)`` — one row per product per billing period: the base plan
(``units = 'users'``, ``quantity`` = the plan's seats: 5, 10, 25, 50 or 100; ``mrr`` after the
customer's discount) and two add-ons every customer carries (``meetings``, ``search_unlimited``,
list price); ``crm5.event(account_id, event_time, event_type_id, user_id, event_value)``;
``crm5.event_type(event_type_id, event_type_name)``: 25 actions (``add_contact``, ``meeting``,
``win_opportunity``, ...). Churn is where the subscriptions stop: the simulator decides at each
month's end, renews (new rows from the old ``end_date``) or ends the customer — at a renewal, or
mid-term for 6- and 12-month plans (the last row's ``end_date`` moved forward to that month's
end). Events stop the day before.

**Conversion** (:func:`convert`; stated again in docs/signal-quality.md):

- every event on or before the data's end → one usage event: account ``crm5-<id>`` (5 digits),
  user ``u<user_id>``, type ``feature_used``, feature = the event type's name, quantity = the
  event's value when it has one (``win_opportunity`` / ``lose_opportunity`` amounts) else 1,
  ``occurred_at`` = ``event_time`` read as UTC; ``event_id`` = account and the event's rank in
  the account's events ordered by (time, type, user, value);
- account records: one per billing period (``updated_at`` = the period's start): tier = the base
  plan's level (``starter`` ... ``premier``), seats = the base plan's ``quantity``, ARR = 12 × the
  period's MRR (all its rows), renewal date = the period's ``end_date``, lifecycle ``onboarding``
  in the first 90 days and ``mature`` after, the CSM picked by ``common.csm_for``; a last record
  with lifecycle ``churned`` at the churn date. The first goes to ``accounts.csv``, the rest to
  ``account-changes.csv``. Periods starting after the data's end are left out;
- churn date = the earliest ``end_date`` among the rows of the account's last billing period
  (the row the simulator moves on a mid-term churn), when it is on or before the data's end
  (the simulation's ``end_date``); observed until the day before. Other accounts are observed
  until the data's end. Events after the data's end (the simulator finishes each customer's
  month) are dropped, so every account's data ends on the same day.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time as clock
import venv
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from churnwatch import files
from churnwatch.files import FormatError
from churnwatch.outside import common
from shared.events import AccountRecord, AccountTeam, LifecycleStage

HERE = Path(__file__).resolve().parent
LOCK = HERE / "fightchurn-requirements.lock"
DATASET = "crm5"
SCHEMA = "crm5"
ONBOARDING_DAYS = 90
GRAINS = ("day", "event")
SOURCE_FILES = ("meta.json", "account.csv", "subscription.csv", "event_type.csv", "event.csv.gz")


@dataclass(frozen=True)
class Knobs:
    """What the simulation is asked for (hydra overrides of the ``crm5`` configuration)."""

    init_customers: int = 300
    start: date = date(2022, 1, 1)
    end: date = date(2023, 6, 30)
    seed: int = 7

    def overrides(self) -> list[str]:
        return [
            f"init_customers={self.init_customers}",
            "n_parallel=1",
            f"random_seed={self.seed}",
            f"start_date={self.start.isoformat()}",
            f"end_date={self.end.isoformat()}",
            "force=True",
        ]


def cache_root() -> Path:
    root = os.environ.get("CHURNWATCH_CACHE") or Path.home() / ".cache" / "churnwatch"
    return Path(root)


def venv_dir() -> Path:
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:12]
    return cache_root() / "venvs" / f"fightchurn-{digest}"


def ensure_venv(say: Callable[[str], None] = print) -> Path:
    """The tool venv's python, created from the hashed lock when missing (about a minute)."""
    target = venv_dir()
    python = target / "bin" / "python"
    if (target / ".installed").exists():
        return python
    shutil.rmtree(target, ignore_errors=True)  # half-made by an interrupted run
    target.parent.mkdir(parents=True, exist_ok=True)
    say(f"crm5: creating the fightchurn tool venv {target} from {LOCK.name}")
    venv.create(target, with_pip=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--require-hashes",  # antlr4-python3-runtime 4.9.3 (hydra's) is a source release
            "-r",
            str(LOCK),
        ],
        check=True,
    )
    (target / ".installed").touch()
    return python


def generated(source: Path) -> bool:
    return all((source / name).exists() for name in SOURCE_FILES)


def generate(source: Path, knobs: Knobs, *, say: Callable[[str], None] = print) -> None:
    """Run ChurnSim ``crm5`` into a PostgreSQL of our own and dump its tables into ``source``."""
    from devstack import process
    from devstack.postgres import PostgresServer

    python = ensure_venv(say)
    work = source.parent / "generate"
    shutil.rmtree(work, ignore_errors=True)
    (work / "tmp").mkdir(parents=True)
    for path in (source.parent, work):
        path.chmod(0o755)  # the postgres system user must reach its cluster directory
    server = PostgresServer(work / "postgres", port=process.free_port(), tied_to_parent=True)
    server.start()
    try:
        server.wait_ready()
        asyncio.run(_create_database(server.port))
        env = {
            **os.environ,
            "CHURN_DB": "fightchurn",
            "CHURN_DB_USER": "postgres",
            "CHURN_DB_PASS": "unused",  # the server trusts loopback connections
            "CHURN_DB_HOST": "127.0.0.1",
            "PGPORT": str(server.port),
            "CHURN_OUT_DIR": str(work / "out"),
            "TMPDIR": str(work / "tmp"),
        }
        argv = [str(python), "-m", "fightchurn.churnsim.churnsim", "--config-name", DATASET]
        say(f"crm5: simulating ({' '.join(knobs.overrides())}); log in {work / 'sim.log'}")
        started = clock.monotonic()
        with (work / "sim.log").open("wb") as log:
            subprocess.run(
                [*argv, *knobs.overrides()],
                env=env,
                cwd=work,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
            )
        say(f"crm5: simulated in {clock.monotonic() - started:.0f} s; dumping the tables")
        source.mkdir(parents=True, exist_ok=True)
        asyncio.run(_dump(server.port, source))
        meta = {
            "model": DATASET,
            "fightchurn": "1.2.0",
            "init_customers": knobs.init_customers,
            "start_date": knobs.start.isoformat(),
            "end_date": knobs.end.isoformat(),
            "random_seed": knobs.seed,
        }
        (source / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    finally:
        server.stop()
    shutil.rmtree(work, ignore_errors=True)


async def _create_database(port: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = 'fightchurn'"):
            await conn.execute("CREATE DATABASE fightchurn")
    finally:
        await conn.close()


_DUMPS = {
    "account.csv": "SELECT id, channel, date_of_birth, country FROM crm5.account ORDER BY id",
    "subscription.csv": (
        "SELECT account_id, product, start_date, end_date, mrr, quantity, units,"
        " bill_period_months, discount FROM crm5.subscription"
        " ORDER BY account_id, start_date, product"
    ),
    "event_type.csv": "SELECT event_type_id, event_type_name FROM crm5.event_type ORDER BY 1",
    "event.csv.gz": (
        "SELECT account_id, event_time, event_type_id, user_id, event_value FROM crm5.event"
        " ORDER BY account_id, event_time, event_type_id, user_id, event_value"
    ),
}


async def dump_tables(port: int, target: Path, database: str = "fightchurn") -> None:
    """The four tables as CSV files with a header (the event table gzipped)."""
    import asyncpg

    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database=database)
    try:
        for name, query in _DUMPS.items():
            partial = target / f"{name}.partial"
            with contextlib.ExitStack() as stack:
                sink: Callable[[bytes], object]
                if name.endswith(".gz"):
                    sink = stack.enter_context(gzip.open(partial, "wb", compresslevel=6)).write
                else:
                    sink = stack.enter_context(partial.open("wb")).write

                async def write(chunk: bytes, sink: Callable[[bytes], object] = sink) -> None:
                    sink(chunk)

                await conn.copy_from_query(query, output=write, format="csv", header=True)
            partial.replace(target / name)
    finally:
        await conn.close()


async def _dump(port: int, target: Path) -> None:
    await dump_tables(port, target)


# ---------------------------------------------------------------------------------------------
# Conversion


@dataclass(frozen=True)
class _Row:
    product: str
    start: date
    end: date
    mrr: float
    quantity: float | None
    units: str | None


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as source:
        return list(csv.DictReader(source))


def _read_subscriptions(path: Path) -> dict[int, list[_Row]]:
    by_account: dict[int, list[_Row]] = defaultdict(list)
    for line, row in enumerate(_csv_rows(path), start=2):
        try:
            by_account[int(row["account_id"])].append(
                _Row(
                    product=row["product"],
                    start=date.fromisoformat(row["start_date"]),
                    end=date.fromisoformat(row["end_date"]),
                    mrr=float(row["mrr"]),
                    quantity=float(row["quantity"]) if row["quantity"] else None,
                    units=row["units"] or None,
                )
            )
        except (KeyError, ValueError) as exc:
            raise FormatError(path, line, f"subscription row: {exc}") from None
    return by_account


def account_id_of(source_id: int) -> str:
    return f"crm5-{source_id:05d}"


def _periods(rows: list[_Row]) -> list[tuple[date, list[_Row]]]:
    by_start: dict[date, list[_Row]] = defaultdict(list)
    for row in rows:
        by_start[row.start].append(row)
    return sorted(by_start.items())


def label_of(account_id: str, rows: list[_Row], data_end: date) -> common.Label:
    """Churn date = the earliest end among the last billing period's rows, if by the data's end."""
    _, last = _periods(rows)[-1]
    ends = min(row.end for row in last)
    if ends <= data_end:
        return common.Label(account_id, ends, ends - timedelta(days=1))
    return common.Label(account_id, None, data_end)


def records_of(
    account_id: str, rows: list[_Row], label: common.Label, data_end: date, csm: str
) -> list[AccountRecord]:
    """One account record per billing period, and one ``churned`` record at the churn date."""
    periods = _periods(rows)
    began = periods[0][0]
    records = []
    for start, period in periods:
        if start > data_end:
            break
        base = next((r for r in period if r.units == "users"), period[0])
        stage: LifecycleStage = (
            "onboarding" if start < began + timedelta(days=ONBOARDING_DAYS) else "mature"
        )
        records.append(
            AccountRecord(
                account_id=account_id,
                name=f"CRM customer {account_id.removeprefix('crm5-')}",
                tier=base.product.split("_")[0],
                seats=int(base.quantity) if base.quantity is not None else None,
                arr=round(12 * sum(r.mrr for r in period), 2),
                renewal_date=min(r.end for r in period),
                lifecycle_stage=stage,
                team=AccountTeam(csm=csm),
                updated_at=datetime.combine(start, time(), UTC),
                source=common.SOURCE,
            )
        )
    if label.churn_date is not None:
        last = records[-1]
        records.append(
            AccountRecord(
                account_id=account_id,
                name=last.name,
                tier=last.tier,
                seats=last.seats,
                arr=0.0,
                renewal_date=None,
                lifecycle_stage="churned",
                team=last.team,
                updated_at=datetime.combine(label.churn_date, time(), UTC),
                source=common.SOURCE,
            )
        )
    return records


def convert(source: Path, out: Path, *, grain: str = "day") -> common.Summary:
    """Convert a dump written by :func:`generate` (or a subset of it: the fixtures) into ``out``.

    ``grain`` ``day`` (the default): one usage event per account, user, event type and UTC day,
    quantity = how many events it stands for; ``event``: one usage event per event."""
    if grain not in GRAINS:
        raise ValueError(f"grain: {grain!r} (one of {', '.join(GRAINS)})")
    meta = json.loads((source / "meta.json").read_text())
    start = date.fromisoformat(meta["start_date"])
    data_end = date.fromisoformat(meta["end_date"])
    names = {
        int(r["event_type_id"]): r["event_type_name"] for r in _csv_rows(source / "event_type.csv")
    }
    subscriptions = _read_subscriptions(source / "subscription.csv")
    accounts = sorted(int(r["id"]) for r in _csv_rows(source / "account.csv"))
    out.mkdir(parents=True, exist_ok=True)
    kept = [
        a for a in accounts if subscriptions.get(a) and _periods(subscriptions[a])[0][0] <= data_end
    ]
    csms = common.team(len(kept))
    labels: dict[int, common.Label] = {}
    first: list[AccountRecord] = []
    changes: list[AccountRecord] = []
    for source_id in kept:
        rows = subscriptions[source_id]
        account_id = account_id_of(source_id)
        labels[source_id] = label_of(account_id, rows, data_end)
        csm = common.csm_for(account_id, csms)
        records = records_of(account_id, rows, labels[source_id], data_end, csm)
        first.append(records[0])
        changes.extend(records[1:])
    with common.EventWriter(out / common.EVENT_FILE) as events:
        _convert_events(source / "event.csv.gz", events, labels, names, data_end, grain)
    files.write_accounts(out / common.ACCOUNTS_FILE, first)
    files.write_accounts(out / common.CHANGES_FILE, changes)
    common.write_people(out, csms)
    common.write_labels(out / common.LABELS_FILE, labels.values())
    summary = common.Summary(
        dataset=DATASET,
        first_day=start,
        last_day=data_end,
        accounts=len(labels),
        churners=sum(1 for label in labels.values() if label.churned),
        events=events.count,
        account_records=len(first),
        account_changes=len(changes),
        definition={**meta, "onboarding_days": ONBOARDING_DAYS, "grain": grain, "csms": len(csms)},
    )
    summary.write(out)
    return summary


_EVENT_HEADER = ["account_id", "event_time", "event_type_id", "user_id", "event_value"]


def _convert_events(
    path: Path,
    events: common.EventWriter,
    labels: Mapping[int, common.Label],
    names: Mapping[int, str],
    data_end: date,
    grain: str,
) -> None:
    """The event table (ordered by account, then time) into usage events."""
    last_moment = f"{(data_end + timedelta(days=1)).isoformat()} 00:00:00"
    by_day = grain == "day"
    # day grain: (user, type) -> [first time, events] of the account-day being read
    pending: dict[tuple[str, int], list[Any]] = {}
    pending_key: tuple[int, str] = (-1, "")
    account = -1
    sequence = 0
    account_id = ""

    def flush() -> None:
        source_id, day = pending_key
        day_id = day.replace("-", "")
        for (user, type_id), (moment, count) in sorted(pending.items()):
            events.usage(
                f"{account_id_of(source_id)}-{day_id}-{user}-{type_id}",
                account_id_of(source_id),
                moment.replace(" ", "T") + "Z",
                user,
                "feature_used",
                names[type_id],
                count,
            )
        pending.clear()

    with gzip.open(path, "rt", newline="", encoding="utf-8") as raw:
        reader = csv.reader(raw)
        if next(reader, None) != _EVENT_HEADER:
            raise FormatError(path, 1, f"expected the header {','.join(_EVENT_HEADER)}")
        for row in reader:
            try:
                source_id_text, moment, type_text, user_text, value = row
                source_id = int(source_id_text)
                if source_id != account:
                    account = source_id
                    account_id = account_id_of(account)
                    sequence = 0
                else:
                    sequence += 1
                if account not in labels or moment >= last_moment:
                    continue
                type_id = int(type_text)
                if type_id not in names:
                    raise KeyError(f"event_type_id {type_id} is not in event_type.csv")
                user = f"u{int(user_text)}" if user_text else "u0"
                if not by_day:
                    events.usage(
                        f"{account_id}-{sequence}",
                        account_id,
                        moment.replace(" ", "T") + "Z",
                        user,
                        "feature_used",
                        names[type_id],
                        float(value) if value else 1.0,
                    )
                    continue
                key = (account, moment[:10])
                if key != pending_key:
                    if pending:
                        flush()
                    pending_key = key
                slot = pending.setdefault((user, type_id), [moment, 0])
                slot[1] += 1
            except (ValueError, KeyError) as exc:
                raise FormatError(path, reader.line_num, f"event row: {exc}") from None
        if pending:
            flush()


if __name__ == "__main__":  # pragma: no cover - a maintenance entry: dump a running simulation
    asyncio.run(dump_tables(int(sys.argv[1]), Path(sys.argv[2])))
