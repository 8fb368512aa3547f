"""What the pages show, computed from the services' answers (pure: no I/O, ``today`` passed
in): portfolio rows in risk order with their filters and the ARR at risk, a manager's team
summary, the alert lists."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from services.console import charts
from services.console.permissions import Person

BAND_RISK = {"red": 0, "yellow": 1, "green": 2}
AT_RISK_BANDS = frozenset({"red", "yellow"})  # "ARR at risk": the ARR of red and yellow accounts
RENEWAL_WINDOWS = (30, 60, 90, 180)  # the renewal filter's choices, in days
OPEN_STATES = ("firing", "acknowledged", "snoozed")


@dataclass(frozen=True)
class Filters:
    """The portfolio's filters; an empty one lets everything through."""

    bands: frozenset[str] = frozenset()
    tier: str | None = None
    renewal_days: int | None = None  # renewing within this many days (or overdue)

    def admits(self, row: Row) -> bool:
        if self.bands and (row.band or "none") not in self.bands:
            return False
        if self.tier and row.tier != self.tier:
            return False
        if self.renewal_days is not None:
            days = row.days_to_renewal
            return days is not None and days <= self.renewal_days
        return True


@dataclass(frozen=True)
class Row:
    account_id: str
    name: str
    band: str | None
    score: float | None
    top_reason: str | None
    arr: float | None
    tier: str | None
    renewal_date: date | None
    days_to_renewal: int | None
    open_alerts: int
    critical_alerts: int
    csm: str | None
    csm_name: str | None
    sparkline: str

    @property
    def risk(self) -> tuple[int, float, str]:
        return (
            BAND_RISK.get(self.band or "", 3),
            self.score if self.score is not None else 101.0,
            self.account_id,
        )


def parse_date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def parse_time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def alerts_by_account(alerts: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    found: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for alert in alerts:
        found[str(alert["account_id"])].append(alert)
    return found


def row(account: Mapping[str, Any], alerts: Sequence[Mapping[str, Any]], today: date) -> Row:
    renewal = parse_date(account.get("renewal_date"))
    line = [
        (d, float(p["score"])) for p in account.get("line") or [] if (d := parse_date(p["day"]))
    ]
    open_alerts = [a for a in alerts if a["state"] in OPEN_STATES]
    return Row(
        account_id=account["account_id"],
        name=account.get("name") or account["account_id"],
        band=account.get("band"),
        score=account.get("score"),
        top_reason=account.get("top_reason"),
        arr=account.get("arr"),
        tier=account.get("tier"),
        renewal_date=renewal,
        days_to_renewal=(renewal - today).days if renewal else None,
        open_alerts=len(open_alerts),
        critical_alerts=sum(1 for a in open_alerts if a["severity"] == "critical"),
        csm=account.get("csm"),
        csm_name=account.get("csm_name"),
        sparkline=charts.sparkline(line, today),
    )


@dataclass(frozen=True)
class Portfolio:
    rows: list[Row]  # filtered, riskiest first
    total: int  # before filtering
    arr_at_risk: float  # of the rows shown
    arr_total: float
    tiers: list[str]  # the filter's choices
    by_band: dict[str, int] = field(default_factory=dict)


def portfolio(
    accounts: Iterable[Mapping[str, Any]],
    alerts: Iterable[Mapping[str, Any]],
    filters: Filters,
    today: date,
) -> Portfolio:
    grouped = alerts_by_account(alerts)
    every = sorted(
        (row(a, grouped.get(a["account_id"], []), today) for a in accounts), key=lambda r: r.risk
    )
    shown = [r for r in every if filters.admits(r)]
    by_band: dict[str, int] = defaultdict(int)
    for r in shown:
        by_band[r.band or "none"] += 1
    return Portfolio(
        rows=shown,
        total=len(every),
        arr_at_risk=sum(r.arr or 0.0 for r in shown if r.band in AT_RISK_BANDS),
        arr_total=sum(r.arr or 0.0 for r in shown),
        tiers=sorted({r.tier for r in every if r.tier}),
        by_band=dict(by_band),
    )


@dataclass(frozen=True)
class CsmHealth:
    person: Person
    accounts: int
    red: int
    yellow: int
    green: int
    unscored: int
    arr_at_risk: float
    unacknowledged_critical: int
    average_score: float | None


def team(
    people: Sequence[Person],
    accounts: Iterable[Mapping[str, Any]],
    alerts: Iterable[Mapping[str, Any]],
) -> list[CsmHealth]:
    """Each person's portfolio health (as the accounts' CSM), most at risk first; people with
    no account are left out."""
    grouped = alerts_by_account(alerts)
    mine: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for account in accounts:
        if account.get("csm"):
            mine[str(account["csm"])].append(account)
    found = []
    for person in people:
        owned = mine.get(person.person_id, [])
        if not owned:
            continue
        bands = [a.get("band") for a in owned]
        scores = [float(a["score"]) for a in owned if a.get("score") is not None]
        critical = sum(
            1
            for a in owned
            for alert in grouped.get(a["account_id"], [])
            if alert["severity"] == "critical" and alert["state"] == "firing"
        )
        found.append(
            CsmHealth(
                person=person,
                accounts=len(owned),
                red=bands.count("red"),
                yellow=bands.count("yellow"),
                green=bands.count("green"),
                unscored=bands.count(None),
                arr_at_risk=sum(
                    a.get("arr") or 0.0 for a in owned if a.get("band") in AT_RISK_BANDS
                ),
                unacknowledged_critical=critical,
                average_score=round(sum(scores) / len(scores), 1) if scores else None,
            )
        )
    return sorted(found, key=lambda c: (-c.unacknowledged_critical, -c.arr_at_risk, -c.red))


def split_alerts(
    alerts: Iterable[Mapping[str, Any]],
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """Open (firing, acknowledged) and snoozed alerts, critical first then newest."""
    severity = {"critical": 0, "warning": 1, "info": 2}

    def order(a: Mapping[str, Any]) -> tuple[int, int]:
        return (severity.get(a["severity"], 3), -int(a["id"]))

    live = sorted((a for a in alerts if a["state"] in ("firing", "acknowledged")), key=order)
    snoozed = sorted((a for a in alerts if a["state"] == "snoozed"), key=order)
    return live, snoozed


def usage_weeks(brief: Mapping[str, Any] | None) -> list[tuple[str, int]]:
    """A brief's weekly usage as (week start, events), oldest first."""
    weeks = ((brief or {}).get("usage") or {}).get("weeks") or []
    return [(str(w["week_start"]), int(w["usage_events"])) for w in weeks]


def days_to(days: int | None) -> str:
    """Days to a date in words: "in 12 days", "today", "45 days ago"; "—" when unknown."""
    if days is None:
        return "—"
    if days == 0:
        return "today"
    unit = "day" if abs(days) == 1 else "days"
    return f"in {days} {unit}" if days > 0 else f"{-days} {unit} ago"


def money(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 1_000_000:
        return f"${value / 1_000_000:.1f}M"
    if value >= 1_000:
        return f"${value / 1_000:.0f}k"
    return f"${value:.0f}"
