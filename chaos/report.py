"""The figures of a run, as Markdown: written between two markers of docs/reliability.md so the
prose around them stays as written. Pure except :func:`write`."""

from __future__ import annotations

from pathlib import Path

from chaos.faults import FaultResult
from chaos.harness import RunResult

START = "<!-- chaos:figures:start (written by `make chaos`; edits here are overwritten) -->"
END = "<!-- chaos:figures:end -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(result: RunResult) -> str:
    config = result.config
    rate = result.events_acknowledged / result.load_seconds if result.load_seconds else 0.0
    passed = sum(c.ok for f in [*result.faults, result.final] for c in f.checks)
    total = sum(len(f.checks) for f in [*result.faults, result.final])
    lines = [
        f"Last run: {result.started_at:%Y-%m-%d %H:%M} UTC on {result.machine}; "
        f"{result.seconds / 60:.1f} minutes; **{passed} of {total} checks held**"
        + (f"; the run stopped early: `{result.error}`" if result.error else "")
        + ".",
        "",
        "| load | |",
        "|---|---|",
        f"| target | {config.load.events_per_second:g} events/s from {config.load.clients} "
        f"clients, {config.load.batch_size} events per request, {config.accounts} accounts |",
        f"| held | {rate:,.0f} events/s acknowledged over {result.load_seconds:,.0f} s of load "
        f"(faults included) |",
        f"| requests | {result.requests:,}; retried {result.retries:,} times (same event ids) |",
        "| answers | "
        + ", ".join(f"{k} ×{v:,}" for k, v in sorted(result.statuses.items()))
        + " |",
        f"| ledger | {result.events_acknowledged:,} events acknowledged, "
        f"{result.events_refused:,} refused (probes, never retried), "
        f"{result.events_in_doubt:,} in doubt |",
        "",
    ]
    for fault in [*result.faults, result.final]:
        lines += _fault(fault)
    return "\n".join(lines)


def _fault(fault: FaultResult) -> list[str]:
    heading = f"#### {fault.title}" + (f" ({fault.seconds:.0f} s)" if fault.seconds else "")
    lines = [heading, ""]
    if fault.figures:
        lines += ["| observed | |", "|---|---|"]
        lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in fault.figures.items()]
        lines.append("")
    lines += ["| checked afterwards | held | figures |", "|---|---|---|"]
    lines += [
        f"| {_cell(c.name)} | {'yes' if c.ok else '**NO**'} | {_cell(c.detail)} |"
        for c in fault.checks
    ]
    lines.append("")
    return lines


def summary(result: RunResult) -> str:
    failed = [
        f"  FAIL {f.name}: {c.name}: {c.detail}"
        for f in [*result.faults, result.final]
        for c in f.checks
        if not c.ok
    ]
    state = "every check held" if result.ok else f"{len(failed)} checks failed"
    return "\n".join([f"chaos: {state} ({result.seconds / 60:.1f} min)", *failed])


def write(path: Path, result: RunResult) -> None:
    """Replace the figures between the markers (or append them with the markers)."""
    figures = f"{START}\n\n{render(result)}\n{END}"
    text = path.read_text() if path.exists() else "# Reliability\n\n"
    if START in text and END in text:
        before, _, rest = text.partition(START)
        _, _, after = rest.partition(END)
        text = before + figures + after
    else:
        text = text.rstrip() + "\n\n" + figures + "\n"
    path.write_text(text)
