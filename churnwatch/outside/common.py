"""What both converters write: churnwatch's own file formats (``churnwatch.files``), plus the
invented CS team the outside data does not have.

A converted dataset is a folder:

``events.csv``
    Usage events in the CSV form ``churnwatch replay`` / ``backtest`` / ``import-history`` read
    (``files.EVENT_COLUMNS``: here ``event_type,event_id,account_id,occurred_at,user_id,type,
    feature,quantity``), ordered by account, then time.
``accounts.csv`` / ``account-changes.csv``
    The first account record of every account (``updated_at`` = when it became a customer) and
    its later versions (``updated_at`` = when each takes effect), as ``files.write_accounts``.
``people.csv``
    The invented CSMs (:func:`team`), assigned to accounts by :func:`csm_for`.
``labels.csv``
    ``files.LABEL_COLUMNS`` plus ``observed_until`` (the account's last observed day).
``summary.json``
    What was converted (counts, the data's first and last day, the churn definition's knobs).
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

from churnwatch import files
from shared.events import PersonRecord

SOURCE = "outside"  # the ``source`` of every converted record

EVENT_FILE = "events.csv"
ACCOUNTS_FILE = "accounts.csv"
CHANGES_FILE = "account-changes.csv"
PEOPLE_FILE = "people.csv"
LABELS_FILE = "labels.csv"
SUMMARY_FILE = "summary.json"

EVENT_HEADER = (
    "event_type",
    "event_id",
    "account_id",
    "occurred_at",
    "user_id",
    "type",
    "feature",
    "quantity",
)
LABEL_HEADER = (*files.LABEL_COLUMNS, "observed_until")

# The outside data has no CS team: an invented one, one CSM per ``ACCOUNTS_PER_CSM`` accounts
# (a usual book for a B2B CSM), named from these lists in order.
ACCOUNTS_PER_CSM = 100
_FIRST = ("Ada", "Bruno", "Chen", "Dalia", "Emil", "Farah", "Gus", "Hana", "Ivo", "Jun")
_LAST = ("Moreau", "Okafor", "Wei", "Haddad", "Lindqvist", "Qureshi", "Novak", "Sato", "Reyes")
TEAM_SINCE = datetime(1990, 1, 1, tzinfo=UTC)  # before any data: the team exists throughout


def team(accounts: int) -> list[tuple[str, str]]:
    """(person id, name) of the CSMs for a portfolio of ``accounts`` accounts."""
    size = max(1, round(accounts / ACCOUNTS_PER_CSM))
    return [
        (f"p_csm{i + 1:02d}", f"{_FIRST[i % len(_FIRST)]} {_LAST[i % len(_LAST)]}")
        for i in range(size)
    ]


def csm_for(account_id: str, csms: list[tuple[str, str]]) -> str:
    """The CSM of an account: a stable hash of its id picks one of ``csms``."""
    digest = hashlib.sha256(account_id.encode()).digest()
    return csms[int.from_bytes(digest[:4], "big") % len(csms)][0]


def people(csms: list[tuple[str, str]]) -> list[PersonRecord]:
    return [
        PersonRecord(
            person_id=person_id,
            name=name,
            email=f"{person_id.removeprefix('p_')}@cs.example.com",
            updated_at=TEAM_SINCE,
            source=SOURCE,
        )
        for person_id, name in csms
    ]


@dataclass(frozen=True)
class Label:
    """The ground truth of one account, with the last day its data covers."""

    account_id: str
    churn_date: date | None
    observed_until: date

    @property
    def churned(self) -> bool:
        return self.churn_date is not None


def write_labels(path: Path, labels: Iterable[Label]) -> int:
    rows = (
        [
            label.account_id,
            "true" if label.churned else "false",
            label.churn_date.isoformat() if label.churn_date else "",
            "",
            "",
            label.observed_until.isoformat(),
        ]
        for label in labels
    )
    return _write_rows(path, LABEL_HEADER, rows)


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC, as ``files`` writes it."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class EventWriter:
    """Writes usage events as ``events.csv`` in time order (then account, then id), whatever
    order they come in: rows wait in one file per month beside the target, and each month is
    sorted in memory when the writer closes (a month of crm5 is a few hundred thousand rows)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._parts = path.with_name(path.name + ".parts")
        shutil.rmtree(self._parts, ignore_errors=True)
        self._parts.mkdir(parents=True)
        self._files: dict[str, TextIO] = {}
        self._writers: dict[str, Any] = {}
        self.count = 0

    def usage(
        self,
        event_id: str,
        account_id: str,
        occurred_at: str,
        user_id: str,
        kind: str,
        feature: str | None,
        quantity: float,
    ) -> None:
        month = occurred_at[:7]
        part = self._writers.get(month)
        if part is None:
            opened = (self._parts / month).open("w", newline="", encoding="utf-8")
            self._files[month] = opened
            part = self._writers[month] = csv.writer(opened, lineterminator="\n")
        part.writerow(
            (
                "usage",
                event_id,
                account_id,
                occurred_at,
                user_id,
                kind,
                feature or "",
                _number(quantity),
            )
        )
        self.count += 1

    def close(self) -> None:
        for opened in self._files.values():
            opened.close()
        self._files.clear()
        self._writers.clear()
        with self.path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(EVENT_HEADER)
            for part in sorted(self._parts.iterdir()):
                with part.open(newline="", encoding="utf-8") as rows:
                    month = list(csv.reader(rows))
                month.sort(key=lambda row: (row[3], row[2], row[1]))
                writer.writerows(month)
        shutil.rmtree(self._parts)

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass(frozen=True)
class Summary:
    """What a conversion produced (``summary.json``)."""

    dataset: str
    first_day: date
    last_day: date
    accounts: int
    churners: int
    events: int
    account_records: int
    account_changes: int
    definition: dict[str, Any]

    def write(self, directory: Path) -> None:
        data = asdict(self)
        data["first_day"] = self.first_day.isoformat()
        data["last_day"] = self.last_day.isoformat()
        (directory / SUMMARY_FILE).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    @staticmethod
    def read(directory: Path) -> Summary:
        data = json.loads((directory / SUMMARY_FILE).read_text())
        data["first_day"] = date.fromisoformat(data["first_day"])
        data["last_day"] = date.fromisoformat(data["last_day"])
        return Summary(**data)


def write_people(directory: Path, csms: list[tuple[str, str]]) -> int:
    return files.write_people(directory / PEOPLE_FILE, people(csms))


def _write_rows(path: Path, header: Iterable[str], rows: Iterable[Iterable[str]]) -> int:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        count = 0
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
