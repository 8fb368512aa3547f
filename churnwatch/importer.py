"""``churnwatch import-history``: go live with the past — events of any age, account and person
records, straight into scoring's tables, then the score history and the current scores.

Why not through ingest: the live path refuses events older than scoring's lateness window
(``SCORING_MAX_EVENT_AGE_DAYS``, 7 days) — a year of history would all be dead-lettered — and it
is per event (HTTP, Kafka, one batch of 2,000 at a time). The importer talks to the database
directly (``DATABASE_URL``, as the services do) and writes with the scoring service's own code:

1. **Load** — the files are read in chunks (``--chunk-events``, 50,000 by default); each chunk
   is one transaction of ``services.scoring.store.imports``: its marker, its events' dedup
   digests (every one in ``imported_events``; those inside the live dedup horizon also in
   ``processed_events``), and the new events coalesced per account and day
   (``aggregate.coalesce``) and merged by the live path's own set-based merges. While the
   database works on a chunk, the next one is read and decoded in a thread.
2. **Records** — account and person records (last writer wins by ``updated_at``, as live).
3. **History** — every imported day is replayed offline (``services.scoring.facts.Ledger`` +
   ``health.assess``, the same code the backtest runs) and each account's score at the end of
   each day is written to ``health_history`` — trends exist on day one. The events of each day
   are kept on disk in a temporary directory between the load and this step (files need not
   be sorted by time).
4. **Current scores** — every imported account is rescored as of ``--as-of`` (now) from the
   tables, with the facts query the service uses; its band carries on from the history.

Nothing goes to the outbox: an import notifies nobody. See docs/go-live.md for the guarantees
(re-runs, resuming, overlap with live traffic) and what the first live change does.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import logging
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from hashlib import blake2b
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import asyncpg
import msgspec

from churnwatch import files
from churnwatch.progress import Bar
from services.scoring import aggregate, due, health
from services.scoring.facts import Ledger
from services.scoring.model import Model
from services.scoring.store import dedup, facts_sql, imports, scores, sweeps, writes
from shared.events import (
    AccountRecord,
    Event,
    HealthSnapshot,
    PersonRecord,
    SurveyEvent,
    TicketEvent,
    UsageEvent,
    decode_event,
    encode,
)

log = logging.getLogger("churnwatch.importer")

DEFAULT_CHUNK_EVENTS = 50_000
DEFAULT_SOURCE = "native"  # what ingest stamps on the native API's events
FUTURE_TOLERANCE = timedelta(hours=1)  # as scoring's SCORING_FUTURE_TOLERANCE_SECONDS
HISTORY_WRITE_ROWS = 5_000
RESCORE_CHUNK = 1_000
SPILL_BYTES = 64 * 2**20  # buffered events of the history step, in memory before going to disk

_snapshot = msgspec.json.Decoder(HealthSnapshot)
_encoder = msgspec.json.Encoder()


class ImportFailure(Exception):
    """The import cannot go on (a file cannot be opened, the database refused); the message
    says why."""


@dataclass(frozen=True)
class Options:
    events: Sequence[Path]
    as_of: datetime
    model: Model
    accounts: Sequence[Path] = ()
    people: Sequence[Path] = ()
    source: str = DEFAULT_SOURCE
    chunk_events: int = DEFAULT_CHUNK_EVENTS
    score_delta: float = 10.0
    dedup_horizon: timedelta = timedelta(days=8)
    daily_rows_retention: timedelta = timedelta(days=400)
    history: bool = True
    fail_after_chunks: int | None = None  # tests: stop as a crash would, after N commits


@dataclass(frozen=True)
class BadRow:
    path: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass
class Summary:
    """What an import did; ``line()`` is the summary line."""

    events_read: int = 0  # good events in the files
    events_counted: int = 0  # new: written into the aggregates by this run
    duplicates: int = 0  # in the files more than once, imported before, or counted live
    chunks: int = 0
    chunks_skipped: int = 0  # committed by an earlier run
    accounts: int = 0  # accounts with events or a record
    account_records: int = 0
    person_records: int = 0
    first_day: date | None = None
    last_day: date | None = None
    history_days: int = 0
    history_points: int = 0
    scored: int = 0
    bad: list[BadRow] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def days(self) -> int:
        if self.first_day is None or self.last_day is None:
            return 0
        return (self.last_day - self.first_day).days + 1

    @property
    def load_rate(self) -> float:
        seconds = self.seconds.get("load", 0.0)
        return self.events_read / seconds if seconds > 0 else 0.0

    def line(self) -> str:
        period = f"{self.first_day} to {self.last_day}" if self.first_day else "no events"
        total = self.seconds.get("total", sum(self.seconds.values()))
        return (
            f"imported {self.events_counted:,} of {self.events_read:,} events "
            f"({self.duplicates:,} already counted), {self.accounts:,} accounts, "
            f"{self.days:,} days ({period}), {self.history_points:,} history points, "
            f"{self.scored:,} accounts scored; {self.load_rate:,.0f} events/s loaded, "
            f"{total:.1f} s in all" + (f"; {len(self.bad):,} bad rows skipped" if self.bad else "")
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "events_read": self.events_read,
            "events_counted": self.events_counted,
            "duplicates": self.duplicates,
            "chunks": self.chunks,
            "chunks_skipped": self.chunks_skipped,
            "accounts": self.accounts,
            "account_records": self.account_records,
            "person_records": self.person_records,
            "first_day": self.first_day.isoformat() if self.first_day else None,
            "last_day": self.last_day.isoformat() if self.last_day else None,
            "days": self.days,
            "history_points": self.history_points,
            "scored": self.scored,
            "bad_rows": len(self.bad),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "events_per_second": round(self.load_rate, 1),
        }


def event_key(event: Event) -> bytes:
    """The event's dedup key, exactly as the live consumer computes it: scoped by source and
    account (``dedup.event_key``)."""
    return dedup.event_key(event)


# ---------------------------------------------------------------------------------------------
# Reading the files: every bad row reported (file, line, field), the good ones kept


EVENT_NUMBERS: dict[str, Callable[[str], float | int]] = {"quantity": float, "score": int}


class EventReader:
    """The events of JSONL and CSV files, in file order, with the bytes read so far.

    An event without ``source`` gets ``--source`` (what ingest would stamp on it live, so that
    the live copy of the same event has the same dedup key); without ``received_at``, its
    ``occurred_at``. An event more than an hour after ``as_of`` is refused, as live scoring
    refuses events from the future.
    """

    def __init__(self, paths: Sequence[Path], *, source: str, as_of: datetime) -> None:
        self.paths = list(paths)
        self.source = source
        self.latest = as_of + FUTURE_TOLERANCE
        self.bad: list[BadRow] = []
        self.done_bytes = 0  # of the files finished
        self._position: Callable[[], int] = lambda: 0

    @property
    def total_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.paths)

    @property
    def bytes_read(self) -> int:
        return self.done_bytes + self._position()

    def __iter__(self) -> Iterator[Event]:
        for event, _ in self.with_lines():
            yield event

    def with_lines(self) -> Iterator[tuple[Event, bytes | None]]:
        """Each event with its JSON line when the file's line decodes as it is (so the history
        step's spill keeps the bytes read instead of encoding the event again), else None."""
        for path in self.paths:
            with path.open("rb") as raw:
                self._position = raw.tell
                if path.suffix.lower() == ".csv":
                    yield from ((event, None) for event in self._csv(path, raw))
                else:
                    yield from self._jsonl(path, raw)
            self._position = lambda: 0
            self.done_bytes += path.stat().st_size

    def _jsonl(self, path: Path, raw: BinaryIO) -> Iterator[tuple[Event, bytes | None]]:
        for number, line in enumerate(raw, start=1):
            if not line.strip():
                continue
            text: bytes | None = line.rstrip(b"\r\n")
            try:
                event = decode_event(line)
            except msgspec.DecodeError as exc:
                text = None
                try:
                    item = msgspec.json.decode(line)
                except msgspec.DecodeError:
                    self.bad.append(BadRow(path, number, f"not JSON: {exc}"))
                    continue
                if not isinstance(item, dict):
                    self.bad.append(BadRow(path, number, "not a JSON object"))
                    continue
                found = self._event(path, number, item)
                if found is None:
                    continue
                event = found
            if self._in_time(path, number, event):
                yield event, text

    def _csv(self, path: Path, raw: BinaryIO) -> Iterator[Event]:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        reader = csv.DictReader(text)
        columns = reader.fieldnames or []
        unknown = [c for c in columns if c not in files.EVENT_COLUMNS]
        if unknown or "event_type" not in columns:
            what = f"unknown column(s) {', '.join(unknown)}" if unknown else "no event_type column"
            self.bad.append(
                BadRow(path, 1, f"header: {what} (columns: {', '.join(files.EVENT_COLUMNS)})")
            )
            return
        try:
            for row in reader:
                item: dict[str, Any] = {k: v for k, v in row.items() if k and v not in (None, "")}
                problem = _numbers(item)
                if problem is not None:
                    self.bad.append(BadRow(path, reader.line_num, problem))
                    continue
                event = self._event(path, reader.line_num, item)
                if event is not None and self._in_time(path, reader.line_num, event):
                    yield event
        except (UnicodeDecodeError, csv.Error) as exc:
            self.bad.append(BadRow(path, reader.line_num + 1, f"unreadable: {exc}"))
        finally:
            text.detach()

    def _event(self, path: Path, line: int, item: dict[str, Any]) -> Event | None:
        item.setdefault("source", self.source)
        if "occurred_at" in item:
            item.setdefault("received_at", item["occurred_at"])
        try:
            return decode_event(msgspec.json.encode(item))
        except msgspec.DecodeError as exc:
            self.bad.append(BadRow(path, line, _field_message(item, exc)))
            return None

    def _in_time(self, path: Path, line: int, event: Event) -> bool:
        if event.occurred_at <= self.latest:
            return True
        self.bad.append(
            BadRow(
                path,
                line,
                f"occurred_at: {event.occurred_at.isoformat()} is more than an hour after the "
                f"import's as-of moment {self.latest - FUTURE_TOLERANCE:%Y-%m-%dT%H:%M:%SZ}",
            )
        )
        return False


def _numbers(item: dict[str, Any]) -> str | None:
    for name, kind in EVENT_NUMBERS.items():
        if name in item:
            try:
                item[name] = kind(item[name])
            except ValueError:
                what = "a whole number" if kind is int else "a number"
                return f"{name}: {item[name]!r} is not {what}"
    return None


_FILLED = ("received_at", "source")
_REQUIRED = {
    tag: tuple(
        sorted(
            (
                f.encode_name
                for f in msgspec.structs.fields(kind)
                if f.required and f.encode_name not in _FILLED
            ),
            key=lambda name: (*files.EVENT_COLUMNS, name).index(name),  # the CSV order
        )
    )
    for tag, kind in (("usage", UsageEvent), ("ticket", TicketEvent), ("survey", SurveyEvent))
}


def _field_message(item: dict[str, Any], exc: msgspec.DecodeError) -> str:
    """Every required field that is missing, at once; else msgspec's message (which names the
    field, e.g. ``Invalid enum value 'sky-high' - at `$.priority` ``)."""
    kind = item.get("event_type")
    if kind not in _REQUIRED:
        return f"event_type: {kind!r} is not one of {', '.join(_REQUIRED)}"
    missing = [n for n in _REQUIRED[kind] if item.get(n) in (None, "")]
    if missing:
        return f"missing field(s): {', '.join(missing)}"
    return str(exc)


def read_accounts(paths: Sequence[Path], now: datetime, bad: list[BadRow]) -> list[AccountRecord]:
    """Account records from CSV files: every bad row reported, the good ones kept (a file
    whose header lacks a required column is reported and left out)."""
    found: list[AccountRecord] = []
    errors: list[files.FormatError] = []
    for path in paths:
        try:
            found += files.read_accounts(path, now=now, errors=errors)
        except files.FormatError as exc:
            errors.append(exc)
    bad += [BadRow(e.path, e.line, e.reason) for e in errors]
    return found


def read_people(paths: Sequence[Path], now: datetime, bad: list[BadRow]) -> list[PersonRecord]:
    """Person records from CSV files, as :func:`read_accounts`."""
    found: list[PersonRecord] = []
    errors: list[files.FormatError] = []
    for path in paths:
        try:
            found += files.read_people(path, now=now, errors=errors)
        except files.FormatError as exc:
            errors.append(exc)
    bad += [BadRow(e.path, e.line, e.reason) for e in errors]
    return found


# ---------------------------------------------------------------------------------------------
# The days' events, kept for the history step


class DaySpill:
    """Every good event of the files, grouped by UTC day of ``occurred_at``: in memory up to
    ``SPILL_BYTES``, then appended to one file per day in a temporary directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.buffered: dict[date, list[bytes]] = defaultdict(list)
        self.size = 0
        self.on_disk: set[date] = set()

    def add(self, event: Event, line: bytes | None = None) -> None:
        """Keep an event: ``line`` is its JSON when the caller has it (it decodes to the same
        event), else it is encoded here."""
        if line is None:
            line = encode(event)
        self.buffered[event.occurred_at.astimezone(UTC).date()].append(line)
        self.size += len(line) + 1
        if self.size >= SPILL_BYTES:
            self.flush()

    def flush(self) -> None:
        for day, lines in self.buffered.items():
            with (self.directory / f"{day.isoformat()}.jsonl").open("ab") as out:
                out.write(b"\n".join(lines) + b"\n")
            self.on_disk.add(day)
        self.buffered.clear()
        self.size = 0

    def days(self) -> list[date]:
        return sorted(self.on_disk | set(self.buffered))

    def events(self, day: date) -> list[Event]:
        """The day's events, each once (by dedup key)."""
        lines = list(self.buffered.get(day, ()))
        if day in self.on_disk:
            with (self.directory / f"{day.isoformat()}.jsonl").open("rb") as spilled:
                lines += [line for line in spilled if line.strip()]
        seen: set[bytes] = set()
        out: list[Event] = []
        for line in lines:
            event = decode_event(line)
            key = event_key(event)
            if key not in seen:
                seen.add(key)
                out.append(event)
        return out


# ---------------------------------------------------------------------------------------------
# 1. Load


@dataclass
class Chunk:
    """A chunk of input, prepared in the reader's thread while the database works: its events
    and their keys, the claims sorted by key (index order) and those inside the live dedup
    horizon, and the whole chunk already coalesced (what is written when every event is new,
    the common case: then nothing is done per event on the database's side of the pipeline
    but the claims' ``COPY``)."""

    events: list[Event]
    keys: list[bytes]
    duplicates: int  # repeated inside the chunk
    bytes_read: int
    digest: bytes = b""
    claims: list[tuple[bytes, datetime]] = field(default_factory=list)
    recent: list[tuple[bytes, datetime]] = field(default_factory=list)  # inside the horizon
    batch: aggregate.Coalesced = field(default_factory=aggregate.Coalesced)

    def prepare(self, live_horizon: datetime) -> Chunk:
        # The marker: a digest of the events' keys in file order (the same input, the same
        # chunks, the same markers).
        self.digest = blake2b(b"".join(self.keys), digest_size=16).digest()
        at = [e.occurred_at for e in self.events]
        self.claims = sorted(zip(self.keys, at, strict=True), key=itemgetter(0))  # keys unique
        self.recent = [c for c in self.claims if c[1] >= live_horizon]
        self.batch = aggregate.coalesce(self.events)
        return self

    def fresh(self, new: set[bytes] | None) -> list[tuple[bytes, Event]]:
        """The (key, event) pairs of the events in ``new`` (None: all of them)."""
        pairs = zip(self.keys, self.events, strict=True)
        return list(pairs) if new is None else [(k, e) for k, e in pairs if k in new]


def chunks_of(
    reader: EventReader,
    size: int,
    spill: DaySpill | None,
    summary: Summary,
    live_horizon: datetime,
) -> Iterator[Chunk]:
    """Chunks of ``size`` events (each event once within its chunk); every event also goes to
    the spill (kept for the history step, when there is one), and the summary's period grows."""
    events: list[Event] = []
    keys: list[bytes] = []
    seen: set[bytes] = set()
    repeated = 0
    first, last = summary.first_day, summary.last_day
    for event, line in reader.with_lines():
        day = event.occurred_at.astimezone(UTC).date()
        if first is None or day < first:
            first = day
        if last is None or day > last:
            last = day
        if spill is not None:
            spill.add(event, line)
        key = event_key(event)
        if key in seen:
            repeated += 1
            continue
        seen.add(key)
        events.append(event)
        keys.append(key)
        if len(events) >= size:
            summary.events_read += len(events) + repeated
            summary.first_day, summary.last_day = first, last
            yield Chunk(events, keys, repeated, reader.bytes_read).prepare(live_horizon)
            events, keys, seen, repeated = [], [], set(), 0
    summary.events_read += len(events) + repeated
    summary.first_day, summary.last_day = first, last
    if events or repeated:
        yield Chunk(events, keys, repeated, reader.bytes_read).prepare(live_horizon)


async def load_chunk(
    conn: asyncpg.Connection,
    chunk: Chunk,
    live_horizon: datetime,
    legacy_until: datetime | None = None,
) -> int | None:
    """One chunk in one transaction; returns how many of its events were counted, or None
    when an earlier run committed this chunk."""
    async with conn.transaction():
        if not await imports.begin_chunk(conn, chunk.digest, len(chunk.events)):
            return None
        new = await imports.claim(conn, chunk.claims)
        recent = chunk.recent if new is None else [c for c in chunk.recent if c[0] in new]
        legacy: dict[bytes, bytes] = {}
        if legacy_until is not None and recent:
            fresh = chunk.fresh({k for k, _ in recent})
            legacy = dedup.legacy_keys((e for _, e in fresh), legacy_until)
        live_new = await dedup.claim_events(conn, recent, legacy=legacy)
        if new is None and live_new is None:
            counted, batch = len(chunk.events), chunk.batch  # all new: coalesced already
        else:
            kept = [
                e
                for k, e in chunk.fresh(new)
                if e.occurred_at < live_horizon or live_new is None or k in live_new
            ]
            counted, batch = len(kept), aggregate.coalesce(kept)
        await writes.apply_aggregates(conn, batch)
        await imports.finish_chunk(conn, chunk.digest, counted)
    return counted


async def load(
    pool: asyncpg.Pool,
    options: Options,
    spill: DaySpill,
    summary: Summary,
    accounts: set[str],
    *,
    bar: Bar | None,
) -> None:
    reader = EventReader(options.events, source=options.source, as_of=options.as_of)
    if bar is not None:
        bar.total = max(reader.total_bytes, 1)
    live_horizon = options.as_of - options.dedup_horizon
    produce = chunks_of(
        reader, options.chunk_events, spill if options.history else None, summary, live_horizon
    )
    committed = 0
    async with pool.acquire() as conn:
        legacy_until = await dedup.legacy_until(conn)
        pending = asyncio.ensure_future(asyncio.to_thread(next, produce, None))
        while (chunk := await pending) is not None:
            pending = asyncio.ensure_future(asyncio.to_thread(next, produce, None))
            summary.chunks += 1
            summary.duplicates += chunk.duplicates
            accounts.update(chunk.batch.activity)  # every event's account has a row there
            try:
                done = await load_chunk(conn, chunk, live_horizon, legacy_until)
            except BaseException:
                pending.cancel()
                raise
            if done is None:
                summary.chunks_skipped += 1
                summary.duplicates += len(chunk.events)
            else:
                summary.events_counted += done
                summary.duplicates += len(chunk.events) - done
                committed += 1
            log.debug(
                "chunk done",
                extra={
                    "chunk": summary.chunks,
                    "events": len(chunk.events),
                    "counted": done,
                    "skipped": done is None,
                },
            )
            if bar is not None:
                bar.update(chunk.bytes_read, summary.events_read, _load_extra(summary))
            if options.fail_after_chunks is not None and committed >= options.fail_after_chunks:
                pending.cancel()
                raise ImportFailure(f"stopped after {committed} chunks (fail_after_chunks)")
    summary.bad += reader.bad
    if bar is not None:
        bar.finish(_load_extra(summary))


def _load_extra(summary: Summary) -> str:
    return f"new {summary.events_counted:,} · already counted {summary.duplicates:,}"


# ---------------------------------------------------------------------------------------------
# 2. Records


async def load_records(
    pool: asyncpg.Pool,
    account_records: Sequence[AccountRecord],
    person_records: Sequence[PersonRecord],
) -> None:
    latest_accounts: dict[str, AccountRecord | None] = {}
    for record in sorted(account_records, key=lambda r: r.updated_at):
        latest_accounts[record.account_id] = record
    latest_people: dict[str, PersonRecord | None] = {}
    for person in sorted(person_records, key=lambda r: r.updated_at):
        latest_people[person.person_id] = person
    async with pool.acquire() as conn, conn.transaction():
        await writes.apply_people(conn, latest_people)
        await writes.apply_accounts(conn, latest_accounts)


# ---------------------------------------------------------------------------------------------
# 3. History


def day_end(day: date) -> datetime:
    """The moment of a day's imported history point (see ``imports.DAY_END``)."""
    return datetime.combine(day, clock_time(23, 59, 59, 999_999), UTC)


class RecordTimeline:
    """Which version of each account record holds on a day: the oldest version also holds
    before its ``updated_at`` (an export's records are usually dated when exported)."""

    def __init__(self, records: Sequence[AccountRecord]) -> None:
        self.pending = sorted(records, key=lambda r: r.updated_at)
        self.current: dict[str, AccountRecord] = {}
        for record in self.pending:
            self.current.setdefault(record.account_id, record)

    def as_of(self, moment: datetime) -> dict[str, AccountRecord]:
        while self.pending and self.pending[0].updated_at <= moment:
            record = self.pending.pop(0)
            self.current[record.account_id] = record
        return self.current


def _history_row(model: Model, assessed: health.Assessment, as_of: datetime) -> scores.HistoryRow:
    change = assessed.change
    return scores.HistoryRow(
        account_id=assessed.account_id,
        as_of=as_of,
        model_version=model.version,
        score=assessed.snapshot.score,
        band=assessed.snapshot.band,
        triggers=list(change.triggers) if change else [],
        change_id=None,  # never published
        snapshot=_encoder.encode(assessed.snapshot).decode(),
        moved_by=_encoder.encode(change.moved_by).decode() if change else None,
    )


async def write_history(
    pool: asyncpg.Pool,
    options: Options,
    spill: DaySpill,
    records: Sequence[AccountRecord],
    accounts: set[str],
    summary: Summary,
    *,
    bar: Bar | None,
) -> dict[str, health.Previous]:
    """Replay the days offline and write each account's day-end score; returns each account's
    last one (the current score carries its band on)."""
    ledger = Ledger()
    timeline = RecordTimeline(records)
    previous: dict[str, health.Previous] = {}
    days = [d for d in spill.days() if d < options.as_of.date()]
    if not days:
        return previous
    async with pool.acquire() as conn:
        ids = sorted(accounts | {r.account_id for r in records})
        live_since = await imports.live_history_since(conn, ids)
    first, last = days[0], days[-1]
    if bar is not None:
        bar.total = (last - first).days + 1
    rows: list[scores.HistoryRow] = []
    day = first
    written = 0
    while day <= last:
        ledger.fold_day(spill.events(day))
        as_of = day_end(day)
        current = timeline.as_of(as_of)
        for account_id in sorted(set(ledger.accounts) | set(current)):
            facts = ledger.facts(account_id, as_of, current.get(account_id))
            assessed = health.assess(
                options.model,
                facts,
                previous.get(account_id),
                as_of,
                score_delta=options.score_delta,
            )
            if assessed is None:
                continue
            previous[account_id] = assessed.previous(options.model.version, as_of)
            since = live_since.get(account_id)
            if since is None or day < since.astimezone(UTC).date():
                rows.append(_history_row(options.model, assessed, as_of))
        if len(rows) >= HISTORY_WRITE_ROWS:
            written += await _write_points(pool, rows)
            rows = []
        summary.history_days += 1
        if bar is not None:
            bar.update(
                summary.history_days, summary.history_days, f"points {written + len(rows):,}"
            )
        day += timedelta(days=1)
    written += await _write_points(pool, rows)
    summary.history_points = written
    if bar is not None:
        bar.finish(f"points {written:,}")
    return previous


async def _write_points(pool: asyncpg.Pool, rows: list[scores.HistoryRow]) -> int:
    if not rows:
        return 0
    async with pool.acquire() as conn, conn.transaction():
        await scores.write_health(conn, [], rows, [])
    return len(rows)


# ---------------------------------------------------------------------------------------------
# 4. Current scores


async def rescore_now(
    pool: asyncpg.Pool,
    options: Options,
    account_ids: Sequence[str],
    offline: dict[str, health.Previous],
    *,
    bar: Bar | None,
) -> int:
    """Score the accounts as of ``as_of`` from the tables (the service's facts query) and store
    the current scores — no history point, nothing to the outbox."""
    ids = sorted(set(account_ids))
    scored = 0
    for start in range(0, len(ids), RESCORE_CHUNK):
        part = ids[start : start + RESCORE_CHUNK]
        async with pool.acquire() as conn, conn.transaction():
            stored = await scores.lock_health(conn, part)
            facts = await facts_sql.gather_facts(conn, part, options.as_of)
            current: list[scores.HealthRow] = []
            for f in facts:
                row = stored.get(f.account_id)
                before = (
                    health.Previous(
                        snapshot=_snapshot.decode(row.snapshot),
                        model_version=row.model_version,
                        as_of=row.as_of,
                        band_since=row.band_since,
                        published_score=row.published_score,
                        published_silence=row.published_silence,
                    )
                    if row is not None
                    else offline.get(f.account_id)
                )
                assessed = health.assess(
                    options.model, f, before, options.as_of, score_delta=options.score_delta
                )
                if assessed is None:
                    continue
                snapshot = assessed.snapshot
                current.append(
                    scores.HealthRow(
                        account_id=f.account_id,
                        model_version=options.model.version,
                        profile=assessed.profile,
                        as_of=options.as_of,
                        score=snapshot.score,
                        band=snapshot.band,
                        band_since=assessed.band_since,
                        partial=snapshot.partial,
                        stale=snapshot.stale,
                        top_reason=snapshot.reasons[0] if snapshot.reasons else None,
                        snapshot=_encoder.encode(snapshot).decode(),
                        next_eval_at=due.next_evaluation(options.model, f, options.as_of),
                    )
                )
            await scores.write_health(conn, current, [], [])
        scored += len(current)
        if bar is not None:
            bar.update(start + len(part), scored)
    if bar is not None:
        bar.finish()
    return scored


# ---------------------------------------------------------------------------------------------
# The whole import


async def run(
    database_url: str, options: Options, *, bars: Callable[[str, str], Bar | None] | None = None
) -> Summary:
    """Import; the summary lists the bad rows (the good ones are imported all the same)."""
    summary = Summary()
    began = time.perf_counter()

    def bar(label: str, unit: str) -> Bar | None:
        return bars(label, unit) if bars is not None else None

    bad: list[BadRow] = []
    account_records = read_accounts(options.accounts, options.as_of, bad)
    person_records = read_people(options.people, options.as_of, bad)
    log.info(
        "import started",
        extra={
            "files": [str(p) for p in options.events],
            "as_of": options.as_of.isoformat(),
            "model_version": options.model.version,
            "chunk_events": options.chunk_events,
        },
    )
    pool = await asyncpg.create_pool(
        database_url.replace("postgresql+asyncpg://", "postgresql://", 1),
        min_size=1,
        max_size=3,
        server_settings={"application_name": "import-history"},
        command_timeout=600,
    )
    spill_dir = Path(tempfile.mkdtemp(prefix="churnwatch-import-"))
    try:
        async with pool.acquire() as lock:
            held = await imports.hold_sweep(lock)
            if not held:
                log.warning("a sweep is running; importing beside it")
            try:
                async with pool.acquire() as conn:
                    purged = await imports.forget_before(
                        conn, options.as_of - options.daily_rows_retention
                    )
                if purged:
                    log.info("forgot imported event digests", extra={"purged": purged})
                accounts: set[str] = set()
                spill = DaySpill(spill_dir)
                started = time.perf_counter()
                await load(pool, options, spill, summary, accounts, bar=bar("load   ", "events"))
                summary.seconds["load"] = time.perf_counter() - started
                log.info("events loaded", extra=summary.as_dict())

                started = time.perf_counter()
                await load_records(pool, account_records, person_records)
                summary.account_records = len(account_records)
                summary.person_records = len(person_records)
                summary.seconds["records"] = time.perf_counter() - started

                started = time.perf_counter()
                offline: dict[str, health.Previous] = {}
                if options.history:
                    offline = await write_history(
                        pool,
                        options,
                        spill,
                        account_records,
                        accounts,
                        summary,
                        bar=bar("history", "days"),
                    )
                    accounts.update(offline)
                summary.seconds["history"] = time.perf_counter() - started
                log.info(
                    "history written",
                    extra={"days": summary.history_days, "points": summary.history_points},
                )

                started = time.perf_counter()
                everyone = accounts | {r.account_id for r in account_records}
                summary.accounts = len(everyone)
                summary.scored = await rescore_now(
                    pool, options, sorted(everyone), offline, bar=bar("scores ", "accounts")
                )
                summary.seconds["scores"] = time.perf_counter() - started
            finally:
                if held:
                    await sweeps.sweep_unlock(lock)
    finally:
        await pool.close()
        shutil.rmtree(spill_dir, ignore_errors=True)
    summary.bad = bad + summary.bad
    summary.seconds["total"] = time.perf_counter() - began
    log.info("import finished", extra=summary.as_dict())
    by_reason = Counter(b.path.name for b in summary.bad)
    if by_reason:
        log.warning("bad rows skipped", extra={"files": dict(by_reason)})
    return summary


# ---------------------------------------------------------------------------------------------
# The command line: ``churnwatch import-history``

OK, BAD_INPUT, UNAVAILABLE = 0, 2, 3
SHOWN_BAD_ROWS = 20


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser(
        "import-history",
        help="load past events, accounts and people straight into scoring's database",
        description="Load past events (JSONL or CSV, any age) and account / person records "
        "straight into scoring's database (DATABASE_URL), then write the score history of "
        "the imported days and the current scores. Safe to re-run or resume: nothing is "
        "counted twice. Notifies nobody. See docs/go-live.md.",
    )
    cmd.add_argument("events", type=Path, nargs="*", help="event files: .jsonl or .csv")
    cmd.add_argument("--accounts", type=Path, action="append", default=[], help="accounts CSV")
    cmd.add_argument("--people", type=Path, action="append", default=[], help="people CSV")
    cmd.add_argument(
        "--as-of",
        default=None,
        help="the moment the current scores are for (RFC 3339; default now): the services' "
        "clock when they go live",
    )
    cmd.add_argument(
        "--source",
        default=DEFAULT_SOURCE,
        help="the source of events that name none: what ingest stamps on them live (native, "
        f"segment, zendesk, or an API key's name); default {DEFAULT_SOURCE}",
    )
    cmd.add_argument("--model", type=Path, default=None, help="health model (SCORING_MODEL_FILE)")
    cmd.add_argument(
        "--chunk-events",
        type=int,
        default=DEFAULT_CHUNK_EVENTS,
        help=f"events per transaction (default {DEFAULT_CHUNK_EVENTS:,})",
    )
    cmd.add_argument(
        "--no-history", action="store_true", help="skip the score history of the imported days"
    )
    cmd.add_argument("--json", action="store_true", help="the summary as JSON")


def command(args: argparse.Namespace, out: TextIO, err: TextIO, env: Mapping[str, str]) -> int:
    """``churnwatch import-history``: 0 done; 2 bad usage or bad rows (the good rows are
    imported); 3 the database cannot be reached or is not migrated."""
    from pydantic import ValidationError

    from services.scoring import model as scoring_model
    from services.scoring.settings import ScoringSettings
    from shared import logs

    logs.configure("import-history", env.get("LOG_LEVEL", "INFO"))
    try:
        settings = ScoringSettings()
    except ValidationError as exc:
        err.write(f"churnwatch: bad settings: {exc}\n")
        return BAD_INPUT
    given: list[Path] = [*args.events, *args.accounts, *args.people]
    problems = [f"{p}: no such file" for p in given if not p.is_file()]
    if not (args.events or args.accounts or args.people):
        problems.append("nothing to import: give event files, --accounts or --people")
    if args.chunk_events < 1:
        problems.append("--chunk-events: must be at least 1")
    as_of = datetime.now(UTC)
    if args.as_of:
        try:
            as_of = datetime.fromisoformat(args.as_of.replace("Z", "+00:00"))
            if as_of.tzinfo is None:
                problems.append(f"--as-of: {args.as_of!r} has no UTC offset")
        except ValueError:
            problems.append(f"--as-of: {args.as_of!r} is not an RFC 3339 time")
    model_path = args.model or settings.model_file
    try:
        model = scoring_model.load(model_path)
    except (scoring_model.ModelError, OSError) as exc:
        problems.append(f"{model_path}: {exc}")
    if problems:
        for problem in problems:
            err.write(f"churnwatch: {problem}\n")
        return BAD_INPUT
    options = Options(
        events=args.events,
        accounts=args.accounts,
        people=args.people,
        as_of=as_of.astimezone(UTC),
        model=model,
        source=args.source,
        chunk_events=args.chunk_events,
        score_delta=settings.score_delta_points,
        dedup_horizon=timedelta(days=settings.dedup_horizon_days),
        daily_rows_retention=timedelta(days=settings.daily_rows_retention_days),
        history=not args.no_history,
    )

    def bar(label: str, unit: str) -> Bar:
        return Bar(label, 1, unit=unit, out=err)

    try:
        summary = asyncio.run(run(settings.database_url.get_secret_value(), options, bars=bar))
    except asyncpg.UndefinedTableError as exc:
        err.write(
            f"churnwatch: the database is not migrated ({exc}); run the scoring migrations "
            "first (make up does)\n"
        )
        return UNAVAILABLE
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        err.write(f"churnwatch: cannot import into the database: {exc}\n")
        return UNAVAILABLE
    if args.json:
        body = summary.as_dict() | {"bad": [str(b) for b in summary.bad]}
        out.write(json.dumps(body, indent=2) + "\n")
    else:
        out.write(summary.line() + "\n")
    for bad in summary.bad[:SHOWN_BAD_ROWS]:
        err.write(f"churnwatch: {bad}\n")
    if len(summary.bad) > SHOWN_BAD_ROWS:
        err.write(f"churnwatch: … and {len(summary.bad) - SHOWN_BAD_ROWS:,} more bad rows\n")
    return BAD_INPUT if summary.bad else OK
