"""``python -m chaos`` (``make chaos``): one chaos run, its figures written to
docs/reliability.md. Exit status 0 when every check held."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from chaos import report
from chaos.faults import FAULTS
from chaos.harness import ChaosConfig, run

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter outages, fewer kills")
    parser.add_argument(
        "--only",
        action="append",
        choices=[*FAULTS, "inputs"],
        help="run only these faults (repeat); 'inputs': the hostile inputs",
    )
    parser.add_argument(
        "--report", type=Path, default=ROOT / "docs" / "reliability.md", help="where to write"
    )
    parser.add_argument("--no-report", action="store_true", help="print only")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (logs)")
    args = parser.parse_args(argv)
    config = ChaosConfig.quick() if args.quick else ChaosConfig()
    if args.only:
        config = replace(
            config, faults=tuple(f for f in FAULTS if f in args.only), inputs="inputs" in args.only
        )
    home = Path(tempfile.mkdtemp(prefix="churnwatch-chaos-"))
    home.chmod(0o755)  # the postgres system user must reach its cluster directory
    print(f"chaos: running in {home} (logs under {home}/services)", flush=True)
    try:
        result = asyncio.run(run(config, home))
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    print(report.summary(result), flush=True)
    if not args.no_report:
        report.write(args.report, result)
        print(f"chaos: figures written to {args.report}", flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
