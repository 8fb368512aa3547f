"""The small fixtures under ``tests/fixtures/outside/``: subsets of the sources, in the sources'
own formats, so that a test runs the real converters on them.

- ``crm5/``: ``SAMPLE_ACCOUNTS`` accounts of a ``crm5.generate`` dump, picked by a seeded hash
  of their ids among those that started before the fit's cut-off (all of their subscription
  rows), and a seeded ``EVENT_SHARE`` of their event rows (ChurnSim writes about 30,000 events
  per account over 18 months: kept whole, a few hundred accounts would weigh 100 MB).
  Thinning lowers every account's activity by the same factor; who churns stays as simulated.
- ``cdnow/CDNOW_sample.txt``: every purchase line of ``SAMPLE_CUSTOMERS`` customers of
  ``CDNOW_master.txt``, picked by a seeded hash of their ids.

    python -m churnwatch.outside.fixtures   # from .local/outside/*/source (make eval-outside)
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import shutil
import sys
from datetime import date
from pathlib import Path

from churnwatch.outside import run

FIXTURES = run.ROOT / "tests" / "fixtures" / "outside"
SAMPLE_ACCOUNTS = 300
EVENT_SHARE = 0.02
SAMPLE_CUSTOMERS = 1000
SEED = "fixture-1"


def _draw(*parts: object) -> float:
    """A number in [0, 1) fixed by ``parts`` and the seed."""
    digest = hashlib.sha256("|".join(map(str, (SEED, *parts))).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def derive_crm5(source: Path, target: Path, cutoff: date) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with (source / "subscription.csv").open(newline="") as f:
        subscriptions = list(csv.DictReader(f))
    starts: dict[str, str] = {}
    for row in subscriptions:
        starts[row["account_id"]] = min(starts.get(row["account_id"], "9999"), row["start_date"])
    eligible = sorted(
        (a for a, s in starts.items() if s <= cutoff.isoformat()), key=lambda a: _draw("account", a)
    )
    chosen = set(eligible[:SAMPLE_ACCOUNTS])
    _filter_csv(source / "account.csv", target / "account.csv", "id", chosen)
    _filter_csv(source / "subscription.csv", target / "subscription.csv", "account_id", chosen)
    shutil.copyfile(source / "event_type.csv", target / "event_type.csv")
    meta = json.loads((source / "meta.json").read_text())
    meta["fixture"] = {
        "accounts": len(chosen),
        "event_share": EVENT_SHARE,
        "seed": SEED,
        "derived_by": "python -m churnwatch.outside.fixtures",
    }
    (target / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    with (
        gzip.open(source / "event.csv.gz", "rt", newline="") as raw,
        gzip.GzipFile(target / "event.csv.gz", "wb", compresslevel=9, mtime=0) as packed,
    ):
        reader = csv.reader(raw)
        header = next(reader)
        lines = [",".join(header)]
        for number, cells in enumerate(reader):
            if cells[0] in chosen and _draw("event", number) < EVENT_SHARE:
                lines.append(",".join(cells))
        packed.write(("\n".join(lines) + "\n").encode())


def _filter_csv(source: Path, target: Path, column: str, keep: set[str]) -> None:
    with source.open(newline="") as src, target.open("w", newline="") as out:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(out, fieldnames=reader.fieldnames or [], lineterminator="\n")
        writer.writeheader()
        writer.writerows(row for row in reader if row[column] in keep)


def derive_cdnow(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    lines = source.read_text(encoding="ascii").splitlines(keepends=True)
    customers = sorted(
        {line.split()[0] for line in lines[1:] if line.strip()}, key=lambda c: _draw("customer", c)
    )
    chosen = set(customers[:SAMPLE_CUSTOMERS])
    kept = [lines[0]] + [line for line in lines[1:] if line.strip() and line.split()[0] in chosen]
    (target / "CDNOW_sample.txt").write_text("".join(kept), encoding="ascii")


def main() -> int:
    work = run.DEFAULT_WORK
    derive_crm5(work / "crm5" / "source", FIXTURES / "crm5", run.DATASETS["crm5"].train_until)
    derive_cdnow(work / "cdnow" / "source" / "CDNOW_master.txt", FIXTURES / "cdnow")
    for path in sorted(FIXTURES.rglob("*")):
        if path.is_file():
            print(f"{path.relative_to(run.ROOT)}: {path.stat().st_size:,} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
