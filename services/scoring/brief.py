"""The pre-call brief: what a CSM reads before talking to a customer. Pure: data in, text out.

It answers, in this order: who the account is and who owns it; how healthy it is and why;
what changed in the last 30 days; where usage is heading; which tickets are open; when it
renews. :func:`compose` builds it from what the store returns; :func:`render_text` prints it.
"""

from __future__ import annotations

from datetime import date, datetime

import msgspec

from shared.events import ComponentMove

WEEKS_OF_USAGE = 8


class Person(msgspec.Struct, kw_only=True):
    person_id: str
    name: str | None = None


class Team(msgspec.Struct, kw_only=True):
    csm: Person | None = None
    account_executive: Person | None = None
    renewal_owner: Person | None = None


class Health(msgspec.Struct, kw_only=True):
    score: float
    band: str
    band_since: datetime
    as_of: datetime
    model_version: str
    partial: bool
    stale: bool
    missing: list[str]
    stale_inputs: list[str]
    reasons: list[str]


class Change(msgspec.Struct, kw_only=True):
    as_of: datetime
    score: float
    band: str
    triggers: list[str]
    reasons: list[str]
    moved_by: list[ComponentMove]


class Week(msgspec.Struct, kw_only=True):
    week_start: date
    usage_events: int
    active_days: int


class Usage(msgspec.Struct, kw_only=True):
    weeks: list[Week]
    trend: str  # e.g. "down 40% (last 4 weeks vs the 4 before)"


class Ticket(msgspec.Struct, kw_only=True):
    ticket_id: str
    priority: str
    status: str
    last_action: str
    updated_at: datetime


class Brief(msgspec.Struct, kw_only=True):
    account_id: str
    name: str | None
    tier: str | None
    lifecycle_stage: str | None
    seats: int | None
    arr: float | None
    renewal_date: date | None
    days_to_renewal: int | None
    team: Team
    as_of: datetime
    health: Health | None
    score_30d_ago: float | None
    changes_30d: list[Change]
    usage: Usage
    open_tickets: list[Ticket]


def usage_trend(weeks: list[Week]) -> str:
    """The last four weeks' usage against the four before, in words."""
    recent = sum(w.usage_events for w in weeks[-4:])
    before = sum(w.usage_events for w in weeks[-8:-4])
    if recent == before == 0:
        return "no usage in the last 8 weeks"
    if before == 0:
        return "usage started in the last 4 weeks"
    change = (recent - before) / before
    if abs(change) < 0.05:
        return "flat (last 4 weeks vs the 4 before)"
    direction = "up" if change > 0 else "down"
    return f"{direction} {round(abs(change) * 100)}% (last 4 weeks vs the 4 before)"


def days_to(day: date | None, as_of: datetime) -> int | None:
    return (day - as_of.date()).days if day is not None else None


def render_text(brief: Brief) -> str:
    """The brief as plain text a person reads in a minute."""
    lines: list[str] = []
    title = brief.name or brief.account_id
    lines.append(f"Pre-call brief: {title} ({brief.account_id})")
    lines.append(f"As of {brief.as_of:%Y-%m-%d %H:%M} UTC")
    facts = [
        f"tier {brief.tier}" if brief.tier else None,
        brief.lifecycle_stage,
        f"{brief.seats} seats" if brief.seats is not None else None,
        f"ARR {brief.arr:,.0f}" if brief.arr is not None else None,
    ]
    if any(facts):
        lines.append(", ".join(f for f in facts if f))
    team = [
        f"{role}: {p.name or p.person_id}"
        for role, p in (
            ("CSM", brief.team.csm),
            ("AE", brief.team.account_executive),
            ("Renewal owner", brief.team.renewal_owner),
        )
        if p is not None
    ]
    if team:
        lines.append(" · ".join(team))
    lines.append("")

    lines.append("Health")
    if brief.health is None:
        lines.append("  not scored yet")
    else:
        h = brief.health
        lines.append(
            f"  {h.score:.0f}/100, {h.band} since {h.band_since:%Y-%m-%d} (model {h.model_version})"
        )
        if brief.score_30d_ago is not None:
            delta = h.score - brief.score_30d_ago
            lines.append(f"  30 days ago: {brief.score_30d_ago:.0f} ({delta:+.0f})")
        for reason in h.reasons:
            lines.append(f"  - {reason}")
        if h.partial or h.stale:
            gaps = ", ".join([*h.missing, *(f"{s} (stale)" for s in h.stale_inputs)])
            lines.append(f"  data gaps: {gaps}")
    lines.append("")

    lines.append("What changed in the last 30 days")
    if not brief.changes_30d:
        lines.append("  no meaningful change")
    for change in brief.changes_30d:
        moves = ", ".join(f"{m.name} {m.delta_points:+.1f}" for m in change.moved_by[:3])
        lines.append(
            f"  {change.as_of:%Y-%m-%d}: {change.score:.0f} ({change.band})"
            + (f" — {moves}" if moves else "")
        )
        for reason in change.reasons[:2]:
            lines.append(f"      {reason}")
        for move in change.moved_by[:3]:
            if move.evidence:
                lines.append(f"      {move.name}: {'; '.join(move.evidence[:3])}")
    lines.append("")

    lines.append(f"Usage: {brief.usage.trend}")
    lines.append(
        "  " + "  ".join(f"{w.week_start:%m-%d}: {w.usage_events}" for w in brief.usage.weeks)
    )
    lines.append("")

    lines.append(f"Open tickets: {len(brief.open_tickets)}")
    for ticket in brief.open_tickets[:10]:
        lines.append(
            f"  {ticket.priority:<6} {ticket.ticket_id} ({ticket.status}, "
            f"{ticket.last_action} {ticket.updated_at:%Y-%m-%d})"
        )
    lines.append("")

    if brief.renewal_date is None:
        lines.append("Renewal: unknown")
    else:
        lines.append(f"Renewal: {brief.renewal_date:%Y-%m-%d} (in {brief.days_to_renewal} days)")
    return "\n".join(lines) + "\n"
