"""``churnwatch``: replay and backtest event files, import accounts and people, read health,
briefs and alerts — talking to the services over HTTP.

Configuration comes from the environment (``make up`` writes it to ``.local/env``):
``CHURNWATCH_API_KEY`` and ``INGEST_URL`` / ``SCORING_URL`` / ``ALERTS_URL`` (default: the
local stack on ports 8000 / 8001 / 8002).

Exit codes: 0 done; 1 done, but some items were refused (or the account is unknown);
2 bad usage or a bad input file (the message names the file, line and field);
3 a service is unreachable or refused the request as a whole (a bad key, say).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

import httpx
import msgspec

from churnwatch import backtest, feedback, files, fit, importer
from churnwatch.client import (
    Client,
    ClientError,
    Endpoints,
    ServiceRefused,
    ServiceUnreachable,
)
from churnwatch.evaluation import HorizonAuc
from churnwatch.progress import Bar
from shared.events import Event
from shared.refused import error_of

OK, REFUSED_ITEMS, BAD_INPUT, UNAVAILABLE = 0, 1, 2, 3
REPLAY_BATCH = 1000
FEEDBACK_PAGE = 50_000  # the alerts API's most per page
REPLAY_MAX_BODY = 400 * 1024  # under ingest's 512 KiB default
RECORD_BATCH = 500
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
_SET_BY_INGEST = ("received_at", "source")


class InputError(Exception):
    """A bad input file: the message names the file, the line and why."""


# ---------------------------------------------------------------------------------------------
# Reading event files for replay


@dataclass(frozen=True, slots=True)
class Row:
    """One event of a file, ready to send, or why it cannot be sent."""

    line: int
    body: bytes | None  # the JSON object to send
    problem: str | None = None


def event_rows(path: Path) -> Iterator[Row]:
    """The events of a JSONL file (one object per line) or a CSV file (``EVENT_COLUMNS``)."""
    if path.suffix.lower() == ".csv":
        yield from _csv_rows(path)
    else:
        yield from _jsonl_rows(path)


def _jsonl_rows(path: Path) -> Iterator[Row]:
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                item = msgspec.json.decode(line)
            except msgspec.DecodeError as exc:
                yield Row(number, None, f"not JSON: {exc}")
                continue
            if not isinstance(item, dict):
                yield Row(number, None, "not a JSON object")
                continue
            for name in _SET_BY_INGEST:
                item.pop(name, None)
            yield Row(number, msgspec.json.encode(item))


def _csv_rows(path: Path) -> Iterator[Row]:
    with path.open(newline="", encoding="utf-8") as source:
        reader = csv.DictReader(source)
        columns = reader.fieldnames or []
        unknown = [c for c in columns if c not in EVENT_COLUMNS]
        if unknown or "event_type" not in columns:
            raise InputError(
                f"{path}:1: the header must name event columns ({', '.join(EVENT_COLUMNS)})"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "; event_type is missing")
            )
        for row in reader:
            item: dict[str, Any] = {k: v for k, v in row.items() if k and v not in (None, "")}
            try:
                if "quantity" in item:
                    item["quantity"] = _number(item["quantity"], "quantity", float)
                if "score" in item:
                    item["score"] = _number(item["score"], "score", int)
            except ValueError as exc:
                yield Row(reader.line_num, None, str(exc))
                continue
            yield Row(reader.line_num, msgspec.json.encode(item))


def _number(value: str, name: str, kind: Callable[[str], float | int]) -> float | int:
    try:
        return kind(value)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"{name}: {value!r} is not {what}") from None


def count_lines(path: Path) -> int:
    """Lines holding an event (a CSV's header is not one)."""
    with path.open("rb") as data:
        lines = sum(1 for line in data if line.strip())
    return lines - 1 if path.suffix.lower() == ".csv" else lines


# ---------------------------------------------------------------------------------------------
# replay


@dataclass
class ReplayReport:
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)  # code -> "line N: why"
    retried: int = 0
    lines: int = 0

    def reject(self, line: int, code: str, message: str) -> None:
        self.rejected[code] += 1
        shown = self.examples.setdefault(code, [])
        if len(shown) < 5:
            shown.append(f"line {line}: {message}")

    @property
    def total_rejected(self) -> int:
        return sum(self.rejected.values())

    def lines_of_text(self) -> list[str]:
        out = [
            f"accepted {self.accepted:,}, rejected {self.total_rejected:,}, "
            f"retried {self.retried:,} (requests repeated after 429 / 503 / no answer)"
        ]
        for code, count in self.rejected.most_common():
            out.append(f"  {code}: {count:,}")
            out += [f"    {example}" for example in self.examples.get(code, [])]
        return out


def batches(rows: Iterator[Row], size: int, max_bytes: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    weight = 0
    for row in rows:
        length = len(row.body or b"") + 1
        if batch and (len(batch) >= size or weight + length > max_bytes):
            yield batch
            batch, weight = [], 0
        batch.append(row)
        weight += length
    if batch:
        yield batch


async def replay(
    client: Client,
    path: Path,
    *,
    batch_size: int = REPLAY_BATCH,
    progress: Callable[[int, ReplayReport], None] | None = None,
) -> ReplayReport:
    """Send every event of the file to ingest's ``POST /v1/events``, in batches."""
    report = ReplayReport()
    for batch in batches(event_rows(path), batch_size, REPLAY_MAX_BODY):
        sendable = [row for row in batch if row.body is not None]
        for row in batch:
            if row.problem is not None:
                report.reject(row.line, "invalid_line", row.problem)
        if sendable:
            body = b"[" + b",".join(row.body or b"" for row in sendable) + b"]"
            before = client.retries
            response = await client.request(
                "ingest",
                "POST",
                "/v1/events",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            report.retried += client.retries - before
            _count(report, sendable, response)
        report.lines += len(batch)
        if progress is not None:
            progress(report.lines, report)
    return report


def _count(report: ReplayReport, rows: Sequence[Row], response: httpx.Response) -> None:
    if response.status_code in (401, 403):
        raise ServiceRefused("ingest", response.status_code, *error_of(response))
    if response.status_code >= 300:
        code, message = error_of(response)
        for row in rows:
            report.reject(row.line, code, message)
        return
    answer = response.json()
    report.accepted += int(answer.get("accepted", 0))
    for item in answer.get("rejected", []):
        index = int(item.get("index", -1))
        line = rows[index].line if 0 <= index < len(rows) else 0
        report.reject(line, str(item.get("code")), str(item.get("message", "")))


class Progress:
    """replay's progress: the CLI's bar (``churnwatch.progress``) over the file's lines, with
    what ingest accepted, rejected and was retried."""

    def __init__(self, total: int, out: TextIO = sys.stderr) -> None:
        self.bar = Bar("replay", max(1, total), unit="lines", out=out)

    def __call__(self, done: int, report: ReplayReport) -> None:
        extra = (
            f"accepted {report.accepted:,} · rejected {report.total_rejected:,} · "
            f"retried {report.retried:,}"
        )
        if done >= self.bar.total:
            self.bar.count = done
            self.bar.finish(extra)
        else:
            self.bar.update(done, done, extra)


# ---------------------------------------------------------------------------------------------
# accounts / people import


async def import_records(client: Client, kind: str, path: Path) -> tuple[int, list[str]]:
    """Send the records of a CSV to ``POST /v1/<kind>``; returns accepted and refusals."""
    now = datetime.now(UTC)
    try:
        records: Sequence[msgspec.Struct] = (
            files.read_accounts(path, now=now)
            if kind == "accounts"
            else files.read_people(path, now=now)
        )
    except files.FormatError as exc:
        raise InputError(str(exc)) from None
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    accepted = 0
    refused: list[str] = []
    for start in range(0, len(records), RECORD_BATCH):
        chunk = records[start : start + RECORD_BATCH]
        items = []
        for record in chunk:
            item = msgspec.to_builtins(record)
            item.pop("source", None)
            items.append(item)
        answer = await client.post_json("ingest", f"/v1/{kind}", msgspec.json.encode(items))
        accepted += int(answer.get("accepted", 0))
        for item in answer.get("rejected", []):
            index = int(item.get("index", -1))
            line = start + index + 2  # the header is line 1
            refused.append(f"{path}:{line}: {item.get('code')}: {item.get('message', '')}")
    return accepted, refused


# ---------------------------------------------------------------------------------------------
# health / brief / alerts


def format_health(body: Mapping[str, Any]) -> str:
    out = [
        f"{body['account_id']} — {body.get('name') or ''}".rstrip(" —"),
        f"  {body['score']:.1f}/100, {body['band']} since {_when(body.get('band_since'))} · "
        f"model {body.get('model_version')} ({body.get('profile')}) · as of "
        f"{_when(body.get('as_of'))}",
    ]
    flags = [f for f in ("partial", "stale") if body.get(f)]
    if flags:
        missing = body.get("missing", []) + body.get("stale_inputs", [])
        out.append(f"  {' and '.join(flags)}: {', '.join(missing)}")
    rows = [["component", "points", "weight", "contribution", "why"]]
    for c in body.get("components", []):
        rows.append(
            [
                c["name"] + ("" if c.get("status", "ok") == "ok" else f" ({c['status']})"),
                f"{c['points']:.1f}",
                f"{c['weight']:.0f}",
                f"{c['contribution']:.2f}",
                c.get("detail") or "",
            ]
        )
    out += _table(rows, right=(1, 2, 3))
    reasons = body.get("reasons", [])
    if reasons:
        out.append("  reasons:")
        out += [f"  - {r}" for r in reasons]
    return "\n".join(out)


def format_alerts(alerts: Sequence[Mapping[str, Any]]) -> str:
    if not alerts:
        return "no alerts"
    rows = [["id", "started", "account", "rule", "severity", "state", "to", "summary"]]
    for a in alerts:
        recipients = a.get("route", {}).get("recipients", [])
        rows.append(
            [
                str(a["id"]),
                _when(a.get("started_at")),
                a["account_id"],
                a["rule"],
                a["severity"],
                a["state"],
                ", ".join(r.get("person_id") or r.get("name", "?") for r in recipients),
                (a.get("summary") or "")[:70],
            ]
        )
    return "\n".join(_table(rows, right=(0,)))


def _when(value: str | None) -> str:
    if not value:
        return "—"
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _table(rows: Sequence[Sequence[str]], *, right: Sequence[int] = ()) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        out.append("  " + "  ".join(cells).rstrip())
    return out


# ---------------------------------------------------------------------------------------------
# backtest


def run_backtest(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from services.alerts import rules as alert_rules
    from services.alerts.settings import DEFAULT_RULES_FILE
    from services.scoring import model as scoring_model

    events_path: Path = args.events
    rules_path: Path = args.rules or DEFAULT_RULES_FILE
    try:
        labels = files.read_labels(args.labels)
        observed_until = files.read_observed_until(args.labels)
        model_paths = args.model or [scoring_model.DEFAULT_MODEL_FILE]
        models = [(Path(p), scoring_model.load(Path(p))) for p in model_paths]
        ruleset = alert_rules.load(rules_path)
        account_files = args.accounts or _beside(events_path)
        # A record without updated_at holds from the start of the data.
        records = [r for f in account_files for r in files.read_accounts(f, now=backtest.EPOCH)]
        horizons = [int(h) for h in args.horizons.split(",") if h.strip()]
        said = files.read_feedback(args.feedback) if args.feedback else None
    except (files.FormatError, scoring_model.ModelError, alert_rules.RulesError) as exc:
        raise InputError(str(exc)) from None
    except OSError as exc:
        raise InputError(f"{exc.filename}: {exc.strerror or exc}") from None
    except ValueError:
        raise InputError(f"--horizons: {args.horizons!r} is not a list of days") from None
    if args.tune and len(models) != 1:
        raise InputError("--tune works with one model file")
    started = time.perf_counter()

    def backtest_with(events: Iterable[Event]) -> backtest.BacktestResult:
        return backtest.run(
            events,
            labels,
            models,
            ruleset,
            records=records,
            observed_until=observed_until,
            horizons=horizons,
            judged=(args.judged_from, args.judged_until),
            resamples=args.bootstrap,
            seed=args.seed,
            keep_changes=args.tune or said is not None,
        )

    try:
        try:
            result = backtest_with(files.read_events(events_path))
        except backtest.EventsOutOfOrder as exc:
            err.write(f"churnwatch: {events_path}: {exc}; sorting it by month on disk first\n")
            with tempfile.TemporaryDirectory(prefix="churnwatch-backtest-") as spill:
                result = backtest_with(files.read_events_in_time_order(events_path, Path(spill)))
    except files.FormatError as exc:
        raise InputError(str(exc)) from None
    except OSError as exc:
        raise InputError(f"{exc.filename}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise InputError(f"{events_path}: {exc}") from None
    seconds = time.perf_counter() - started
    for warning in result.warnings:
        err.write(f"churnwatch: warning: {warning}\n")
    tuned = None
    if args.tune:
        from churnwatch import tune

        tuned = tune.search(
            result,
            ruleset,
            budget=args.budget,
            min_lift=args.min_lift,
            min_lead_days=args.min_lead,
        )
        if args.write_rules:
            try:
                args.write_rules.write_text(tune.rules_toml(rules_path.read_text(), tuned.chosen))
            except OSError as exc:
                raise InputError(f"{exc.filename}: {exc.strerror or exc}") from None
    agreement = _feedback_agreement(result, ruleset, said) if said is not None else None
    if args.json:
        body = _backtest_json(result)
        if agreement is not None:
            body["feedback"] = [asdict(a) for a in agreement]
        if tuned is not None:
            from churnwatch import tune

            body["tuning"] = tune.to_json(tuned)
        out.write(json.dumps(body, indent=2, default=str) + "\n")
        return OK
    out.write(format_backtest(result, account_files, seconds) + "\n")
    if tuned is not None:
        from churnwatch import tune

        out.write("\n" + tune.format_table(tuned, written=args.write_rules) + "\n")
    if agreement is not None:
        lines = [a.line() for a in agreement] or ["no verdicts"]
        out.write("\nAgreement with feedback on live alerts:\n  " + "\n  ".join(lines) + "\n")
    return OK


def _feedback_agreement(
    result: backtest.BacktestResult, ruleset: Any, said: list[feedback.Verdict]
) -> list[feedback.RuleAgreement]:
    """How the first model's replayed alerts agree with the verdicts (churnwatch.feedback)."""
    if not result.changes:
        return []
    opened = backtest.replay_alerts(
        result.changes[0], ruleset, result.observed, time_rules=result.time_rules
    )
    return feedback.agreement(said, opened)


def run_fit(args: argparse.Namespace, out: TextIO) -> int:
    """``churnwatch fit`` (churnwatch.fit); scikit-learn is imported only there, lazily."""
    from services.scoring import model as scoring_model

    try:
        return fit.command(args, out)
    except (files.FormatError, scoring_model.ModelError, fit.FitError) as exc:
        raise InputError(str(exc)) from None
    except OSError as exc:
        raise InputError(f"{exc.filename}: {exc.strerror or exc}") from None


def _beside(events: Path) -> list[Path]:
    """``accounts.csv`` and ``account-changes.csv`` next to the events, when they are there."""
    return [
        p
        for p in (events.with_name("accounts.csv"), events.with_name("account-changes.csv"))
        if p.exists()
    ]


HORIZON_NOTE = (
    "AUC at horizon h: each churner's score h days before its churn date against the same "
    "day's scores of the accounts observed then and known not to churn within h days; the share "
    "of pairs where the churner scores lower (ties ½). 1.0: every churner lower; 0.5: chance."
)


def format_backtest(
    result: backtest.BacktestResult, account_files: Sequence[Path], seconds: float
) -> str:
    names = [r.model_version for r in result.results]
    first, last = result.judged
    base = result.base_rate
    out = [
        f"Backtest: {result.events:,} events, {result.accounts:,} accounts, "
        f"{result.first_day} to {result.last_day}; every account scored at the end of every "
        f"day while observed ({seconds:.1f} s)",
        f"  judged: {first} to {last} — {result.labelled:,} labelled accounts observed, "
        f"{result.churners:,} churned in the period (base rate {_fmt(base, '{:.1%}')}); "
        f"{result.account_days:,} account-days scored after warm-up",
        "  account records: "
        + (
            ", ".join(str(p) for p in account_files)
            if account_files
            else "none (no seats, tiers, renewals or owners)"
        ),
        "",
        HORIZON_NOTE,
    ]
    rows = [["horizon", *[f"{n} (95% CI)" for n in names], "churners", "pairs"]]
    for i, first_auc in enumerate(result.results[0].aucs):
        rows.append(
            [f"{first_auc.horizon} days"]
            + [_auc_cell(r.aucs[i]) for r in result.results]
            + [f"{first_auc.churners:,}", f"{first_auc.pairs:,}"]
        )
    out += _table(rows, right=range(1, len(names) + 3))
    out.append("")
    out.append(
        "Rules: alerts opened in the judged period (one still open at its start counts from then)"
    )
    header = ["rule"]
    for name in names:
        suffix = f" {name}" if len(names) > 1 else ""
        header += [
            f"accounts{suffix}",
            f"precision{suffix}",
            f"recall{suffix}",
            f"lead{suffix}",
            f"/acct-mo{suffix}",
            f"/owner-wk{suffix}",
        ]
    rows = [header]
    for i, score in enumerate(result.results[0].rules):
        row = [score.rule if score.target == "churn" else f"{score.rule} (→ {score.target})"]
        for r in result.results:
            s = r.rules[i]
            v = s.volume
            row += [
                str(s.alerted),
                _fmt(s.precision, "{:.0%}"),
                _fmt(s.recall, "{:.0%}"),
                _fmt(s.median_lead_days, "{:.0f} d"),
                _fmt(v.per_account_month if v else None, "{:.3f}"),
                _fmt(v.per_owner_week if v else None, "{:.2f}"),
            ]
        rows.append(row)
    out += _table(rows, right=range(1, len(header)))
    out.append(
        "  accounts: alerted on · precision: of those, churned in the period after the alert (or "
        "real opportunities) · recall: churners alerted before their churn date · lead: median "
        "days ahead · /acct-mo: new alerts per observed account-month · /owner-wk: new alerts "
        "per owner (CSM) per week"
    )
    return "\n".join(out)


def _auc_cell(value: HorizonAuc) -> str:
    if value.auc is None:
        return "—"
    if value.low is None or value.high is None:
        return f"{value.auc:.3f}"
    return f"{value.auc:.3f} ({value.low:.3f}–{value.high:.3f})"


def _fmt(value: float | None, pattern: str) -> str:
    return "—" if value is None else pattern.format(value)


def _backtest_json(result: backtest.BacktestResult) -> dict[str, Any]:
    return {
        "events": result.events,
        "accounts": result.accounts,
        "first_day": result.first_day,
        "last_day": result.last_day,
        "judged": {"from": result.judged[0], "until": result.judged[1]},
        "labelled": result.labelled,
        "churners": result.churners,
        "base_rate": result.base_rate,
        "account_days": result.account_days,
        "warnings": list(result.warnings),
        "horizon_definition": HORIZON_NOTE,
        "models": [
            {
                "model_version": r.model_version,
                "path": r.path,
                "auc": [
                    {
                        "horizon_days": a.horizon,
                        "auc": a.auc,
                        "ci95": [a.low, a.high],
                        "churners": a.churners,
                        "pairs": a.pairs,
                    }
                    for a in r.aucs
                ],
                "rules": [
                    {
                        "rule": s.rule,
                        "target": s.target,
                        "accounts_alerted": s.alerted,
                        "precision": s.precision,
                        "recall": s.recall,
                        "late": s.late,
                        "median_lead_days": s.median_lead_days,
                        "alerts": s.volume.alerts if s.volume else None,
                        "per_account_month": s.volume.per_account_month if s.volume else None,
                        "per_owner_week": s.volume.per_owner_week if s.volume else None,
                        "busiest_owner_week": s.volume.busiest_owner_week if s.volume else None,
                    }
                    for s in r.rules
                ],
            }
            for r in result.results
        ],
    }


# ---------------------------------------------------------------------------------------------
# The command line


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (2026-07-01)") from None


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="churnwatch",
        description="Talk to a churnwatch deployment, and backtest the health model offline.",
        epilog="Environment: CHURNWATCH_API_KEY, INGEST_URL, SCORING_URL, ALERTS_URL "
        "(`source .local/env` after `make up`). Exit codes: 0 done, 1 some items refused or "
        "not found, 2 bad usage or input file, 3 a service unreachable or refusing.",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    replay_cmd = sub.add_parser("replay", help="send a JSONL or CSV file of events to ingest")
    replay_cmd.add_argument("file", type=Path, help="events: .jsonl (one object a line) or .csv")
    replay_cmd.add_argument("--batch", type=int, default=REPLAY_BATCH, help="events per request")

    bt = sub.add_parser("backtest", help="score an event file offline and judge it by labels")
    bt.add_argument("events", type=Path, help="events: .jsonl (one object a line) or .csv")
    bt.add_argument(
        "--labels",
        type=Path,
        required=True,
        help="labels.csv: account_id,churned,churn_date[,observed_until]",
    )
    bt.add_argument(
        "--model",
        action="append",
        help="a health model file; give it twice to compare two (default: the service's)",
    )
    bt.add_argument(
        "--accounts",
        type=Path,
        action="append",
        help="account records (CSV); default: accounts.csv and account-changes.csv beside EVENTS",
    )
    bt.add_argument("--rules", type=Path, default=None, help="alert rules file")
    bt.add_argument("--horizons", default="7,14,30", help="days before churn (default 7,14,30)")
    bt.add_argument(
        "--from",
        dest="judged_from",
        type=_day,
        default=None,
        metavar="DATE",
        help="judge only from this day (everything before is still folded and scored)",
    )
    bt.add_argument(
        "--until",
        dest="judged_until",
        type=_day,
        default=None,
        metavar="DATE",
        help="judge only until this day (default: the last day of the data)",
    )
    bt.add_argument(
        "--bootstrap",
        type=int,
        default=backtest.DEFAULT_RESAMPLES,
        metavar="N",
        help=f"resamples of accounts for the AUC's 95%% interval (0: none; default "
        f"{backtest.DEFAULT_RESAMPLES})",
    )
    bt.add_argument("--seed", type=int, default=0, help="the bootstrap's seed (default 0)")
    bt.add_argument(
        "--feedback",
        type=Path,
        help="feedback.csv (churnwatch feedback export): per rule, how the replayed alerts agree "
        "with what people said of the live ones",
    )
    bt.add_argument(
        "--tune",
        action="store_true",
        help="search the risk rules' thresholds (see --budget, --min-lift, --min-lead)",
    )
    bt.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="N",
        help="with --tune: at most N new risk alerts per owner per week (mean)",
    )
    bt.add_argument(
        "--min-lift",
        type=float,
        default=2.0,
        metavar="X",
        help="with --tune: risk alerts' precision at least X times the base rate (default 2)",
    )
    bt.add_argument(
        "--min-lead",
        type=float,
        default=14.0,
        metavar="DAYS",
        help="with --tune: median lead time at least this (default 14)",
    )
    bt.add_argument(
        "--write-rules",
        type=Path,
        default=None,
        metavar="FILE",
        help="with --tune: write the rules file with the chosen thresholds",
    )
    bt.add_argument("--json", action="store_true", help="machine-readable output")

    importer.add_parser(sub)

    fit_cmd = sub.add_parser("fit", help="learn a health model file from history and outcomes")
    fit.add_arguments(fit_cmd)

    for kind in ("accounts", "people"):
        group = sub.add_parser(kind, help=f"{kind} records").add_subparsers(
            dest="action", required=True, metavar="ACTION"
        )
        imp = group.add_parser("import", help=f"send the {kind} of a CSV file to ingest")
        imp.add_argument("file", type=Path)

    health_cmd = sub.add_parser("health", help="an account's current health, explained")
    health_cmd.add_argument("account")
    health_cmd.add_argument("--json", action="store_true")

    brief_cmd = sub.add_parser("brief", help="an account's pre-call brief")
    brief_cmd.add_argument("account")
    brief_cmd.add_argument("--json", action="store_true")

    alerts_group = sub.add_parser("alerts", help="alerts").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    listing = alerts_group.add_parser("list", help="alerts, newest first")
    listing.add_argument("--owner", help="alerts routed to this person id")
    listing.add_argument("--account")
    listing.add_argument("--rule")
    listing.add_argument(
        "--state", action="append", choices=("firing", "acknowledged", "snoozed", "resolved")
    )
    listing.add_argument("--open", action="store_true", help="only alerts not resolved")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")

    feedback_group = sub.add_parser("feedback", help="feedback on alerts").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    export = feedback_group.add_parser(
        "export", help="every verdict given on alerts, as feedback.csv (backtest --feedback)"
    )
    export.add_argument("--out", type=Path, required=True, help="the CSV file to write")
    export.add_argument("--since", help="only verdicts given since (RFC 3339, with an offset)")
    return top


async def dispatch(args: argparse.Namespace, endpoints: Endpoints, out: TextIO) -> int:
    async with httpx.AsyncClient(timeout=30) as http:
        client = Client(http, endpoints)
        command = args.command
        if command == "replay":
            if not args.file.exists():
                raise InputError(f"{args.file}: no such file")
            report = await replay(
                client, args.file, batch_size=args.batch, progress=Progress(count_lines(args.file))
            )
            out.write("\n".join(report.lines_of_text()) + "\n")
            return REFUSED_ITEMS if report.total_rejected else OK
        if command in ("accounts", "people"):
            accepted, refused = await import_records(client, command, args.file)
            out.write(
                f"imported {accepted} {command}"
                + (f", refused {len(refused)}" if refused else "")
                + "\n"
            )
            for line in refused:
                out.write(f"  {line}\n")
            return REFUSED_ITEMS if refused else OK
        if command == "health":
            body = await client.get_json("scoring", f"/v1/accounts/{args.account}/health")
            out.write((json.dumps(body, indent=2) if args.json else format_health(body)) + "\n")
            return OK
        if command == "brief":
            path = f"/v1/accounts/{args.account}/brief"
            if args.json:
                out.write(json.dumps(await client.get_json("scoring", path), indent=2) + "\n")
            else:
                out.write(await client.get_text("scoring", path, {"format": "text"}))
            return OK
        if command == "alerts":
            params: dict[str, Any] = {"limit": max(1, min(500, args.limit))}
            for name in ("owner", "account", "rule"):
                value = getattr(args, name)
                if value:
                    params["account_id" if name == "account" else name] = value
            if args.state:
                params["state"] = args.state
            if args.open:
                params["open_only"] = "true"
            page = await client.get_json("alerts", "/v1/alerts", params)
            alerts = page["alerts"]
            out.write((json.dumps(alerts, indent=2) if args.json else format_alerts(alerts)) + "\n")
            return OK
        if command == "feedback":
            written = await export_feedback(client, args.out, args.since)
            out.write(f"exported {written} verdicts to {args.out}\n")
            return OK
    raise AssertionError(f"unhandled command {command}")  # pragma: no cover


async def export_feedback(client: Client, path: Path, since: str | None) -> int:
    """Every verdict given since ``since`` into ``path`` (``GET /v1/feedback``, page by page)."""
    if since is not None:
        try:
            if datetime.fromisoformat(since.replace("Z", "+00:00")).tzinfo is None:
                raise ValueError
        except ValueError:
            raise InputError(f"--since: {since!r} is not a time with an offset") from None
    found: dict[tuple[int, str], feedback.Verdict] = {}
    while True:
        params = {"limit": FEEDBACK_PAGE} | ({"since": since} if since else {})
        page = await client.get_json("alerts", "/v1/feedback", params)
        for item in page["feedback"]:
            verdict = feedback.Verdict(
                alert_id=int(item["alert_id"]),
                account_id=item["account_id"],
                rule=item["rule"],
                verdict=item["verdict"],
                given_at=datetime.fromisoformat(item["given_at"]),
                source=item["source"],
                given_by=item["given_by"],
            )
            found[(verdict.alert_id, verdict.given_by)] = verdict
        if not page["truncated"] or not page["feedback"]:
            break
        last = page["feedback"][-1]["given_at"]  # the next page starts at the last time seen
        if last == since:
            raise InputError(f"more than {FEEDBACK_PAGE} verdicts given at {last}")
        since = last
    try:
        return files.write_feedback(path, sorted(found.values(), key=lambda v: v.given_at))
    except OSError as exc:
        raise InputError(f"{exc.filename}: {exc.strerror or exc}") from None


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = parser().parse_args(argv)
    endpoints = Endpoints.from_env(env if env is not None else os.environ)
    try:
        if args.command == "backtest":
            return run_backtest(args, out, err)
        if args.command == "fit":
            return run_fit(args, out)
        if args.command == "import-history":
            return importer.command(args, out, err, env if env is not None else os.environ)
        if not endpoints.api_key:
            err.write("churnwatch: set CHURNWATCH_API_KEY (make up writes it to .local/env)\n")
            return BAD_INPUT
        return asyncio.run(dispatch(args, endpoints, out))
    except InputError as exc:
        err.write(f"churnwatch: {exc}\n")
        return BAD_INPUT
    except ServiceUnreachable as exc:
        err.write(f"churnwatch: {exc}\n")
        return UNAVAILABLE
    except ServiceRefused as exc:
        err.write(f"churnwatch: {exc}\n")
        if exc.status == 404:
            return REFUSED_ITEMS
        return UNAVAILABLE
    except ClientError as exc:  # pragma: no cover - every subclass is handled above
        err.write(f"churnwatch: {exc}\n")
        return UNAVAILABLE


if __name__ == "__main__":
    raise SystemExit(main())
