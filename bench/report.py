"""The results: one row per measurement, the printed table, and ``docs/benchmarks.md``."""

from __future__ import annotations

import math
import os
import platform
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "aiokafka",
    "asyncpg",
    "msgspec",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "SQLAlchemy",
    "pydantic",
)


@dataclass
class Row:
    """One line of the table.

    ``ratio`` is ours ÷ baseline for every row; ``higher_is_better`` says which way is good
    (throughput: higher; latency, memory, time: lower). ``target`` is the issue's threshold on
    the ratio, when it sets one.
    """

    scenario: str
    ours: float
    baseline: float
    unit: str
    higher_is_better: bool = True
    target: float | None = None
    cpu_us: tuple[float | None, float | None] = (None, None)  # ours, baseline (µs/event)
    note: str = ""
    per: str = "event"  # what cpu_us is per: "event" or "account" (the sweep)
    db_cpu_us: float | None = None  # PostgreSQL's CPU per event / account, when measured

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else math.nan

    @property
    def met(self) -> bool | None:
        if self.target is None or math.isnan(self.ratio):
            return None
        return self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target

    @property
    def target_text(self) -> str:
        if self.target is None:
            return "—"
        sign = "≥" if self.higher_is_better else "≤"
        verdict = {True: "met", False: "missed", None: ""}[self.met]
        return f"{sign} {self.target:g} ({verdict})"


@dataclass
class Section:
    """What a scenario says besides its rows: how it was measured, its runs, its findings."""

    name: str
    rows: list[Row] = field(default_factory=list)
    how: str = ""
    details: list[str] = field(default_factory=list)
    findings: str = ""


def _fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "n/a"
    if unit == "events/s" or unit == "rows/s":
        return f"{value:,.0f} {unit}"
    if unit == "ms":
        return f"{value:,.1f} ms"
    if unit == "s":
        return f"{value:,.2f} s"
    if unit == "MB":
        return f"{value:,.1f} MB"
    return f"{value:,.3g} {unit}"


def _cpu(cpu: tuple[float | None, float | None]) -> str:
    ours, base = cpu
    if ours is None and base is None:
        return "—"
    show = [f"{v:,.1f}" if v is not None else "—" for v in (ours, base)]
    return " / ".join(show)


def table(sections: list[Section]) -> list[list[str]]:
    lines = [["scenario", "ours", "baseline", "ratio", "target", "CPU µs/event (ours / base)"]]
    for section in sections:
        for row in section.rows:
            lines.append(
                [
                    row.scenario,
                    _fmt(row.ours, row.unit),
                    _fmt(row.baseline, row.unit),
                    "n/a" if math.isnan(row.ratio) else f"{row.ratio:.2f}",
                    row.target_text,
                    _cpu(row.cpu_us),
                ]
            )
    return lines


def render_text(sections: list[Section]) -> str:
    lines = table(sections)
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def sizing(sections: list[Section]) -> list[str]:
    """What one CPU of each measured process handles, from its CPU time per event or per
    account (and PostgreSQL's, where the scenario measured it): the figures to size pods by."""
    out = []
    for section in sections:
        for row in section.rows:
            ours = row.cpu_us[0]
            if not ours:
                continue
            db = row.db_cpu_us
            if row.per == "account":
                line = f"{3.6e9 / ours:,.0f} accounts swept per hour"
                cell = (
                    f"{db:,.0f} µs per account: one CPU per {3.6e9 / db:,.0f} an hour"
                    if db
                    else "—"
                )
            else:
                line = f"{1e6 / ours:,.0f} events/s"
                # 1,000 events/s × db µs each = db millicores
                cell = f"{db:,.0f} millicores per 1,000 events/s" if db else "—"
            out.append(f"| {row.scenario} | {ours:,.1f} µs | {line} | {cell} |")
    if not out:
        return []
    return [
        "| scenario | CPU per event (per account: the sweep) | one CPU of the process handles "
        "| PostgreSQL needs |",
        "|---|---|---|---|",
        *out,
    ]


def render_markdown_table(sections: list[Section]) -> str:
    lines = table(sections)
    out = ["| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(lines[0])]
    out += ["| " + " | ".join(line) + " |" for line in lines[1:]]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# The machine and the software


def machine() -> dict[str, str]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = "unknown"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
            break
    return {
        "CPU": model,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "kernel": platform.release(),
    }


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def versions(servers: dict[str, str]) -> dict[str, str]:
    out = {"Python": sys.version.split()[0], **servers}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


@dataclass
class Run:
    """Everything the document says about one run of the benchmark."""

    mode: str
    started: datetime
    finished: datetime
    load_before: str
    load_after: str
    load_samples: list[float]
    settings: dict[str, str]
    servers: dict[str, str]
    sections: list[Section]


def markdown(run: Run, preamble: str, sizing_notes: str = "") -> str:
    mach = machine()
    vers = versions(run.servers)
    loads = run.load_samples
    load_range = (
        f"{min(loads):.2f}–{max(loads):.2f} (1-minute load average, sampled during the run)"
        if loads
        else "not sampled"
    )
    out = [
        "# Benchmarks",
        "",
        "<!-- Generated by `make bench` (bench/report.py): edit bench/, not this file. -->",
        "",
        preamble.strip(),
        "",
        f"**Run:** `{run.mode}` on {run.started:%Y-%m-%d}, {run.started:%H:%M}–"
        f"{run.finished:%H:%M} UTC ({(run.finished - run.started).total_seconds() / 60:.0f} min).",
        f"**Load on the machine:** before {run.load_before}, after {run.load_after}; {load_range}.",
        "",
        "## Results",
        "",
        render_markdown_table(run.sections),
        "",
        "Ratio = ours ÷ baseline. CPU µs/event = CPU time (user + system, from `/proc`) of the "
        "measured process divided by the events it handled in the measured window.",
        "",
    ]
    sized = sizing(run.sections)
    if sized:
        out += ["## Sizing: what one CPU handles", "", *sized, ""]
        if sizing_notes:
            out += [sizing_notes.strip(), ""]
    out += [
        "## Machine and software",
        "",
        "| | |",
        "|---|---|",
    ]
    out += [f"| {k} | {v} |" for k, v in mach.items()]
    out += [f"| {k} | {v} |" for k, v in vers.items()]
    out += ["", "## Settings", "", "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in run.settings.items()]
    for section in run.sections:
        out += ["", f"## {section.name}", ""]
        if section.how:
            out += [section.how.strip(), ""]
        if section.details:
            out += [f"- {d}" for d in section.details]
            out.append("")
        missed = [r for r in section.rows if r.met is False]
        if section.findings:
            title = "Missed target: profile and what it would take" if missed else "Notes"
            out += [f"### {title}", "", section.findings.strip(), ""]
    return "\n".join(out).rstrip() + "\n"


def now() -> datetime:
    return datetime.now(UTC)
