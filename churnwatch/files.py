"""The file formats of the simulator and the ``churnwatch`` CLI, with their writers and readers.

``events.jsonl``
    One v1 event per line, exactly as ``shared.events.encode`` writes it (the wire format:
    ``event_type`` usage / ticket / survey, ``event_id``, ``account_id``, ``occurred_at``, ...).
    What ``churnwatch replay`` sends and ``churnwatch backtest`` scores. Blank lines are skipped.
    ``received_at`` and ``source`` may be left out when reading (``occurred_at`` and ``file``).
``events.csv``
    The same events as CSV: a header naming some of ``EVENT_COLUMNS``, empty cells left out
    (what ``churnwatch replay`` also sends).
``accounts.csv``
    ``ACCOUNT_COLUMNS``: one account record per row; the team as three person-id columns.
    Empty cells are "unknown". ``updated_at`` may be missing or empty (the reader's ``now``).
``people.csv``
    ``PEOPLE_COLUMNS``: one person record per row; ``active`` is ``true`` / ``false``.
``labels.csv``
    ``LABEL_COLUMNS``: the ground truth, one account per row — never sent to the pipeline. An
    optional ``observed_until`` column (a date) says when the account's data ends, when that is
    before the end of the file (:func:`read_observed_until`).
``zendesk-organizations.csv``
    ``organization_id,account_id``: which account a Zendesk organization is.
``feedback.csv``
    ``FEEDBACK_COLUMNS``: one verdict (``useful``, ``not_useful``, ``known``) a person gave on
    a live alert, as ``churnwatch feedback export`` writes it; per-alert labels that
    ``churnwatch backtest --feedback`` judges the replayed rules by (:mod:`churnwatch.feedback`)
    and ``churnwatch fit --feedback`` reports the models' risk against.

Dates are ISO 8601 (``2026-07-01``), times RFC 3339 in UTC (``2026-07-01T00:00:00Z``), text is
UTF-8. Readers raise ``FormatError`` naming the file, the line and the reason.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar, get_args

import msgspec

from churnwatch.feedback import VERDICTS, Verdict
from churnwatch.simulator import GroundTruth, Simulation
from shared.events import (
    AccountRecord,
    AccountTeam,
    Event,
    LifecycleStage,
    PersonRecord,
    SurveyEvent,
    TicketEvent,
    UsageEvent,
    decode_account,
    decode_event,
    decode_person,
    encode,
)

ACCOUNT_COLUMNS = (
    "account_id",
    "name",
    "tier",
    "seats",
    "arr",
    "renewal_date",
    "lifecycle_stage",
    "csm",
    "account_executive",
    "renewal_owner",
    "updated_at",
)
PEOPLE_COLUMNS = (
    "person_id",
    "name",
    "email",
    "slack_user_id",
    "manager_id",
    "time_zone",
    "active",
    "updated_at",
)
LABEL_COLUMNS = ("account_id", "churned", "churn_date", "story", "opportunity_date")
EVENT_COLUMNS = (
    "event_type",
    "event_id",
    "account_id",
    "occurred_at",
    "user_id",
    "type",
    "feature",
    "quantity",
    "ticket_id",
    "action",
    "priority",
    "status",
    "kind",
    "score",
)
READ_SOURCE = "file"  # an event read from a file without a source
ORGANIZATION_COLUMNS = ("organization_id", "account_id")
FEEDBACK_COLUMNS = (
    "alert_id",
    "account_id",
    "rule",
    "verdict",
    "given_at",
    "source",
    "given_by",
)

IMPORT_SOURCE = "csv-import"

T = TypeVar("T")


class FormatError(ValueError):
    """A file could not be read: which file, which line (1 = the first), and why."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Events


def write_events(path: Path, events: Iterable[Event]) -> int:
    """Write ``events`` as JSONL; returns how many."""
    with path.open("wb") as out:
        return _write_event_lines(out, events)


def read_events(path: Path, *, errors: list[FormatError] | None = None) -> Iterator[Event]:
    """The events of a JSONL file or, for a ``.csv`` name, a CSV file (``EVENT_COLUMNS``), in
    file order. A bad line raises ``FormatError`` naming every missing field at once — or, with
    ``errors``, is appended there and skipped (a bad CSV header always raises)."""
    if path.suffix.lower() == ".csv":
        yield from _read_csv_events(path, errors)
        return
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield _jsonl_event(path, number, line)
            except FormatError as exc:
                if errors is None:
                    raise
                errors.append(exc)


def _jsonl_event(path: Path, number: int, line: bytes) -> Event:
    try:
        return decode_event(line)
    except msgspec.DecodeError as exc:
        try:
            item = msgspec.json.decode(line)
        except msgspec.DecodeError:
            raise FormatError(path, number, str(exc)) from exc
        if not isinstance(item, dict):
            raise FormatError(path, number, "not a JSON object") from exc
        return _event_of(path, number, item)


def read_events_in_time_order(path: Path, spill: Path) -> Iterator[Event]:
    """The events of a file in time order, however the file is ordered, without holding it in
    memory: they are read (a bad line raises ``FormatError`` naming ``path``), spread over one
    JSONL file per month of ``occurred_at`` under ``spill`` (a scratch directory), then each
    month is read back, sorted and yielded in turn."""
    months: dict[str, Any] = {}
    try:
        for event in read_events(path):
            month = event.occurred_at.astimezone(UTC).strftime("%Y-%m")
            out = months.get(month)
            if out is None:
                out = months[month] = (spill / f"{month}.jsonl").open("wb")
            out.write(encode(event))
            out.write(b"\n")
    finally:
        for out in months.values():
            out.close()
    for month in sorted(months):
        events = list(read_events(spill / f"{month}.jsonl"))
        events.sort(key=lambda e: e.occurred_at)
        yield from events


_EVENT_TYPES: dict[str, type[msgspec.Struct]] = {
    "usage": UsageEvent,
    "ticket": TicketEvent,
    "survey": SurveyEvent,
}
_FILLED = ("received_at", "source")  # set by ingest; filled in when a file leaves them out


def _required_fields(kind: type[msgspec.Struct]) -> tuple[str, ...]:
    required = {f.encode_name for f in msgspec.structs.fields(kind) if f.required}
    return tuple(c for c in EVENT_COLUMNS if c in required)  # in the file's column order


_REQUIRED = {name: _required_fields(kind) for name, kind in _EVENT_TYPES.items()}


def _event_of(path: Path, line: int, item: dict[str, Any]) -> Event:
    """An event from a decoded object: every missing field named at once, ``received_at`` and
    ``source`` filled in when absent."""
    kind = item.get("event_type")
    if kind not in _REQUIRED:
        choices = ", ".join(_REQUIRED)
        found = "missing" if kind is None else repr(kind)
        raise FormatError(path, line, f"event_type: {found} (one of {choices})")
    missing = [name for name in _REQUIRED[kind] if item.get(name) in (None, "")]
    if missing:
        raise FormatError(path, line, f"{kind} event: missing field(s) {', '.join(missing)}")
    item.setdefault("received_at", item["occurred_at"])
    item.setdefault("source", READ_SOURCE)
    try:
        return decode_event(msgspec.json.encode(item))
    except msgspec.DecodeError as exc:
        raise FormatError(path, line, str(exc)) from exc


def _read_csv_events(path: Path, errors: list[FormatError] | None) -> Iterator[Event]:
    with path.open(newline="", encoding="utf-8") as source:
        reader = csv.DictReader(source)
        columns = reader.fieldnames or []
        unknown = [c for c in columns if c not in EVENT_COLUMNS]
        if unknown or "event_type" not in columns:
            raise FormatError(
                path,
                1,
                f"the header must name event columns ({', '.join(EVENT_COLUMNS)})"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "; event_type is missing"),
            )
        for row in reader:
            try:
                yield _csv_event(path, reader.line_num, row)
            except FormatError as exc:
                if errors is None:
                    raise
                errors.append(exc)


def _csv_event(path: Path, line: int, row: Mapping[str, str | None]) -> Event:
    item: dict[str, Any] = {k: v for k, v in row.items() if k and v not in (None, "")}
    try:
        if "quantity" in item:
            item["quantity"] = _number(item["quantity"], "quantity", float)
        if "score" in item:
            item["score"] = _number(item["score"], "score", int)
    except ValueError as exc:
        raise FormatError(path, line, str(exc)) from exc
    return _event_of(path, line, item)


def _number(value: str, name: str, kind: Callable[[str], float | int]) -> float | int:
    try:
        return kind(value)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"{name}: {value!r} is not {what}") from None


def _write_event_lines(out: Any, events: Iterable[Event]) -> int:
    count = 0
    for event in events:
        out.write(encode(event))
        out.write(b"\n")
        count += 1
    return count


# ---------------------------------------------------------------------------------------------
# Accounts and people


def write_accounts(path: Path, records: Iterable[AccountRecord]) -> int:
    """Write account records as CSV (``ACCOUNT_COLUMNS``); returns how many."""
    return _write_csv(path, ACCOUNT_COLUMNS, (_account_row(r) for r in records))


def read_accounts(
    path: Path,
    *,
    now: datetime,
    source: str = IMPORT_SOURCE,
    errors: list[FormatError] | None = None,
) -> list[AccountRecord]:
    """Account records from CSV; ``now`` stands in for a missing ``updated_at``. With
    ``errors``, a bad row is appended there and skipped instead of raising."""

    def parse(row: Mapping[str, str]) -> AccountRecord:
        return AccountRecord(
            account_id=row["account_id"],
            name=row["name"],
            tier=_text(row.get("tier")),
            seats=_optional(row.get("seats"), int),
            arr=_optional(row.get("arr"), float),
            renewal_date=_optional(row.get("renewal_date"), date.fromisoformat),
            lifecycle_stage=_optional(row.get("lifecycle_stage"), _lifecycle_stage),
            team=AccountTeam(
                csm=_text(row.get("csm")),
                account_executive=_text(row.get("account_executive")),
                renewal_owner=_text(row.get("renewal_owner")),
            ),
            updated_at=_optional(row.get("updated_at"), _timestamp) or now,
            source=source,
        )

    return _read_csv(path, ("account_id", "name"), parse, decode_account, errors)


def write_people(path: Path, records: Iterable[PersonRecord]) -> int:
    """Write person records as CSV (``PEOPLE_COLUMNS``); returns how many."""
    return _write_csv(path, PEOPLE_COLUMNS, (_person_row(r) for r in records))


def read_people(
    path: Path,
    *,
    now: datetime,
    source: str = IMPORT_SOURCE,
    errors: list[FormatError] | None = None,
) -> list[PersonRecord]:
    """Person records from CSV; ``now`` stands in for a missing ``updated_at``. With
    ``errors``, a bad row is appended there and skipped instead of raising."""

    def parse(row: Mapping[str, str]) -> PersonRecord:
        return PersonRecord(
            person_id=row["person_id"],
            name=row["name"],
            email=_text(row.get("email")),
            slack_user_id=_text(row.get("slack_user_id")),
            manager_id=_text(row.get("manager_id")),
            time_zone=_text(row.get("time_zone")) or "UTC",
            active=_optional(row.get("active"), _boolean) is not False,
            updated_at=_optional(row.get("updated_at"), _timestamp) or now,
            source=source,
        )

    return _read_csv(path, ("person_id", "name"), parse, decode_person, errors)


def _account_row(record: AccountRecord) -> list[str]:
    return [
        record.account_id,
        record.name,
        _cell(record.tier),
        _cell(record.seats),
        _cell(record.arr),
        _cell(record.renewal_date),
        _cell(record.lifecycle_stage),
        _cell(record.team.csm),
        _cell(record.team.account_executive),
        _cell(record.team.renewal_owner),
        _cell(record.updated_at),
    ]


def _person_row(record: PersonRecord) -> list[str]:
    return [
        record.person_id,
        record.name,
        _cell(record.email),
        _cell(record.slack_user_id),
        _cell(record.manager_id),
        record.time_zone,
        _cell(record.active),
        _cell(record.updated_at),
    ]


# ---------------------------------------------------------------------------------------------
# Labels (ground truth) and Zendesk organizations


def write_labels(path: Path, truth: Iterable[GroundTruth]) -> int:
    """Write the ground truth as CSV (``LABEL_COLUMNS``); returns how many rows."""
    rows = (
        [t.account_id, _cell(t.churned), _cell(t.churn_date), t.story, _cell(t.opportunity_date)]
        for t in truth
    )
    return _write_csv(path, LABEL_COLUMNS, rows)


def read_labels(path: Path) -> list[GroundTruth]:
    """Ground truth from CSV. ``story`` may be empty for labels that did not come from here."""

    def parse(row: Mapping[str, str]) -> GroundTruth:
        problems = []
        account_id = row.get("account_id") or ""
        if not account_id:
            problems.append("account_id is empty")
        churned = churn_date = opportunity_date = None
        try:
            churned = _boolean(row["churned"])
        except ValueError as exc:
            problems.append(f"churned: {exc}")
        for name in ("churn_date", "opportunity_date"):
            try:
                value = _optional(row.get(name), _date_of(name))
            except ValueError as exc:
                problems.append(str(exc))
                continue
            if name == "churn_date":
                churn_date = value
            else:
                opportunity_date = value
        if churned is not None and churned != (churn_date is not None) and not problems:
            problems.append("churn_date is given exactly when churned is true")
        if problems:
            raise ValueError("; ".join(problems))  # every problem of the row at once
        return GroundTruth(
            account_id=account_id,
            story=row.get("story") or "",
            churned=bool(churned),
            churn_date=churn_date,
            opportunity_date=opportunity_date,
        )

    return _read_csv(path, ("account_id", "churned"), parse, None)


def read_observed_until(path: Path) -> dict[str, date]:
    """The labels' optional ``observed_until`` column: when an account's data ends (its last
    observed day), for the accounts whose cell is filled; empty without the column."""

    def parse(row: Mapping[str, str]) -> tuple[str, date | None]:
        return _required(row, "account_id"), _optional(
            row.get("observed_until"), _date_of("observed_until")
        )

    pairs = _read_csv(path, ("account_id",), parse, None)
    return {account: day for account, day in pairs if day is not None}


def write_organizations(path: Path, organizations: Mapping[int, str]) -> int:
    """Write the Zendesk organization -> account mapping as CSV; returns how many rows."""
    rows = ([str(org), account] for org, account in sorted(organizations.items()))
    return _write_csv(path, ORGANIZATION_COLUMNS, rows)


def read_organizations(path: Path) -> dict[int, str]:
    """The Zendesk organization id -> account id mapping from CSV."""

    def parse(row: Mapping[str, str]) -> tuple[int, str]:
        return int(row["organization_id"]), _required(row, "account_id")

    return dict(_read_csv(path, ORGANIZATION_COLUMNS, parse, None))


def write_feedback(path: Path, verdicts: Iterable[Verdict]) -> int:
    """Write verdicts on alerts as CSV (``FEEDBACK_COLUMNS``); returns how many rows."""
    rows = (
        [str(v.alert_id), v.account_id, v.rule, v.verdict, _cell(v.given_at), v.source, v.given_by]
        for v in verdicts
    )
    return _write_csv(path, FEEDBACK_COLUMNS, rows)


def read_feedback(path: Path) -> list[Verdict]:
    """Verdicts on alerts from CSV; a bad row names its line and field."""

    def parse(row: Mapping[str, str]) -> Verdict:
        alert_id = _required(row, "alert_id")
        if not alert_id.isdigit():
            raise ValueError(f"alert_id: {alert_id!r} is not an alert id")
        verdict = _required(row, "verdict")
        if verdict not in VERDICTS:
            raise ValueError(f"verdict: {verdict!r} is not one of {', '.join(VERDICTS)}")
        given_at = _required(row, "given_at")
        try:
            at = datetime.fromisoformat(given_at.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"given_at: {given_at!r} is not a time (RFC 3339)") from None
        if at.tzinfo is None:
            raise ValueError(f"given_at: {given_at!r} needs a UTC offset")
        return Verdict(
            alert_id=int(alert_id),
            account_id=_required(row, "account_id"),
            rule=_required(row, "rule"),
            verdict=verdict,
            given_at=at,
            source=row.get("source") or "",
            given_by=row.get("given_by") or "",
        )

    return _read_csv(path, FEEDBACK_COLUMNS[:5], parse, None)


# ---------------------------------------------------------------------------------------------
# A whole simulation


@dataclass(frozen=True)
class SimulationFiles:
    """Where ``write_simulation`` put a run, and how many rows each file holds."""

    directory: Path
    events: int
    accounts: int
    people: int
    account_changes: int
    people_changes: int
    labels: int
    organizations: int

    @property
    def events_path(self) -> Path:
        return self.directory / "events.jsonl"


def write_simulation(simulation: Simulation, directory: Path) -> SimulationFiles:
    """Write a whole run into ``directory`` (created if missing), generating it once:

    ``events.jsonl`` (every event, time order), ``accounts.csv`` / ``people.csv`` (as on the
    start date), ``account-changes.csv`` / ``people-changes.csv`` (later versions of records,
    ``updated_at`` = when they take effect), ``labels.csv`` (ground truth) and
    ``zendesk-organizations.csv``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    account_changes: list[AccountRecord] = []
    people_changes: list[PersonRecord] = []
    with (directory / "events.jsonl").open("wb") as out:
        events = 0
        for day in simulation:
            if day.index > 0:
                account_changes.extend(day.accounts)
                people_changes.extend(day.people)
            events += _write_event_lines(out, (e.event for e in day.events))
    return SimulationFiles(
        directory=directory,
        events=events,
        accounts=write_accounts(directory / "accounts.csv", simulation.accounts),
        people=write_people(directory / "people.csv", simulation.people),
        account_changes=write_accounts(directory / "account-changes.csv", account_changes),
        people_changes=write_people(directory / "people-changes.csv", people_changes),
        labels=write_labels(directory / "labels.csv", simulation.truth),
        organizations=write_organizations(
            directory / "zendesk-organizations.csv", simulation.zendesk_organizations
        ),
    )


# ---------------------------------------------------------------------------------------------
# CSV plumbing


def _write_csv(path: Path, columns: tuple[str, ...], rows: Iterable[list[str]]) -> int:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        count = 0
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def _read_csv(
    path: Path,
    required: tuple[str, ...],
    parse: Callable[[Mapping[str, str]], T],
    validate: Callable[[bytes], object] | None,
    errors: list[FormatError] | None = None,
) -> list[T]:
    """Rows parsed by ``parse``; with ``validate`` (a ``shared.events`` decoder) each parsed
    record is also checked against the v1 contract's constraints. With ``errors`` a bad row is
    appended there and skipped (a bad header always raises)."""
    with path.open(newline="", encoding="utf-8") as source:
        reader = csv.DictReader(source)
        missing = [c for c in required if c not in (reader.fieldnames or ())]
        if missing:
            raise FormatError(path, 1, f"missing column(s): {', '.join(missing)}")
        parsed: list[T] = []
        for row in reader:
            try:
                item = parse(row)
                if validate is not None and isinstance(item, msgspec.Struct):
                    validate(encode(item))
            except (ValueError, KeyError, msgspec.ValidationError) as exc:
                error = FormatError(path, reader.line_num, str(exc))
                if errors is None:
                    raise error from exc
                errors.append(error)
                continue
            parsed.append(item)
    return parsed


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _text(value: str | None) -> str | None:
    return value or None


def _required(row: Mapping[str, str], column: str) -> str:
    value = row.get(column)
    if not value:
        raise ValueError(f"{column} is empty")
    return value


def _optional(value: str | None, convert: Callable[[str], T]) -> T | None:
    return convert(value) if value else None


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(f"not a boolean: {value!r} (true or false)")


def _lifecycle_stage(value: str) -> LifecycleStage:
    for stage in get_args(LifecycleStage):
        if value == stage:
            return stage  # type: ignore[no-any-return]
    raise ValueError(f"unknown lifecycle stage {value!r} ({', '.join(get_args(LifecycleStage))})")


def _date_of(column: str) -> Callable[[str], date]:
    """A date parser whose error names the column."""

    def parse(value: str) -> date:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{column}: {value!r} is not a date (2026-07-01)") from None

    return parse


def _timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without a UTC offset: {value!r}")
    return parsed
