"""python -m bench [--quick] [--only S1,S2,…] [--doc PATH]

Starts its own Kafka broker and PostgreSQL on free ports in a temporary directory, runs the
scenarios, prints one table, writes the document (``docs/benchmarks.md`` unless ``--doc``),
and stops everything it started — also when a scenario fails or the run is interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

from bench import infra, report
from bench.config import FULL, QUICK
from bench.context import Context
from bench.findings import FINDINGS, PREAMBLE, SIZING
from bench.report import Section
from bench.scenarios import (
    s1_ingest,
    s2_drain,
    s3_latency,
    s4_memory,
    s5_sweep,
    s6_import,
    s7_console,
)

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS: dict[str, Callable[[Context], Coroutine[Any, Any, Section]]] = {
    "S1": s1_ingest.run,
    "S2": s2_drain.run,
    "S3": s3_latency.run,
    "S4": s4_memory.run,
    "S5": s5_sweep.run,
    "S6": s6_import.run,
    "S7": s7_console.run,
}


@contextlib.contextmanager
def sampling_load(samples: list[float], every_s: float = 5.0) -> Iterator[None]:
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(every_s):
            samples.append(os.getloadavg()[0])

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the reduced run (under 3 minutes)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="e.g. S1,S3")
    parser.add_argument("--doc", type=Path, default=None, help="where to write the document")
    parser.add_argument("--no-doc", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    wanted = [name.strip().upper() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    doc = args.doc or ROOT / "docs" / "benchmarks.md"

    started = report.now()
    load_before = report.load_average()
    logs = Path(tempfile.mkdtemp(prefix="churnwatch-bench-logs-"))
    sections: list[Section] = []
    failed: list[str] = []
    samples: list[float] = []
    print(f"bench: {config.mode} run of {', '.join(wanted)}; logs in {logs}", file=sys.stderr)
    with infra.running() as running, sampling_load(samples):
        servers = running.server_versions()
        ctx = Context(running, config, logs, load_samples=samples)
        for name in wanted:
            ctx.say(f"{name}: starting")
            try:
                section = asyncio.run(SCENARIOS[name](ctx))
            except Exception:
                failed.append(name)
                ctx.say(f"{name}: FAILED\n{traceback.format_exc()}")
                continue
            section.findings = section.findings or FINDINGS.get(name, "")
            sections.append(section)
            for line in section.details:
                ctx.say(f"{name}: {line}")
    finished = report.now()
    print()
    print(report.render_text(sections))
    if failed:
        print(f"\nfailed: {', '.join(failed)} (logs in {logs})")
    if not args.no_doc and sections:
        run = report.Run(
            mode=f"make bench{'-quick' if args.quick else ''}",
            started=started,
            finished=finished,
            load_before=load_before,
            load_after=report.load_average(),
            load_samples=samples,
            settings=settings_table(config),
            servers=servers,
            sections=sections,
        )
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(report.markdown(run, PREAMBLE, SIZING))
        print(f"\nwrote {doc.relative_to(ROOT) if doc.is_relative_to(ROOT) else doc}")
    return 1 if failed else 0


def settings_table(config: object) -> dict[str, str]:
    from dataclasses import asdict

    values = asdict(config)  # type: ignore[call-overload]
    return {key: str(value) for key, value in values.items()}


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
