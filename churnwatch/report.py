"""The demo's outputs: a terminal summary and a self-contained HTML report a CSM would read.

Both are pure functions of :class:`~churnwatch.collect.RunData` — what the pipeline produced
(scores and history from scoring, alerts from the alerts service, messages from the sinks)
plus the ground truth to judge it by. The HTML has its CSS inline and its charts as inline
SVG: no script, no external asset, so it opens anywhere and can be mailed as one file.

Which alerts count. The demo imports its first ``onboarding_days`` as history
(``churnwatch import-history``, which notifies nobody) and runs live from then: alerts count
from the first live day. (A run that silenced its first days instead — older saved runs —
counts the same way: an alert over before the silence ended reached nobody; one still open
then counts from that moment, which is when its owner heard of it.)

``python -m churnwatch.report reports/demo-run.json [--out reports/demo.html]`` renders the
report again from a saved run.
"""

from __future__ import annotations

import argparse
import html
import json
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email import message_from_string, policy
from pathlib import Path
from typing import Any

from churnwatch.collect import Account, AlertRow, Point, RunData, Truth, load
from churnwatch.evaluation import ANY_RISK, RISK_MOTIONS, Fired, RuleScore, score_rules

CHURN_STORIES = (
    "slow_decay",
    "champion_leaves",
    "ticket_storm",
    "silent_drop_off",
    "renewal_yellow",
)
STORY_TITLES = {
    "healthy": "Healthy",
    "expansion": "Expansion",
    "advocate": "Advocate",
    "holiday_dip": "Holiday dip (noise)",
    "one_off_urgent": "One urgent ticket (noise)",
    "lukewarm_renews": "Lukewarm, renews (noise)",
    "slow_decay": "Slow usage decay",
    "champion_leaves": "The champion leaves",
    "ticket_storm": "Ticket storm",
    "silent_drop_off": "Silent drop-off",
    "renewal_yellow": "Renewal approaching while yellow",
}
BAND_ORDER = ("green", "yellow", "red")
BAND_COLOURS = {"green": "#2e9d57", "yellow": "#e0a800", "red": "#d64545"}
BAND_FILLS = {"green": "#e6f4ea", "yellow": "#fff6d6", "red": "#fde4e4"}
SEVERITY_COLOURS = {"critical": "#b42318", "warning": "#dc6803", "info": "#1f6feb"}
HEALTHY_SAMPLE = 12
SLACK_SHOWN = 3


# ---------------------------------------------------------------------------------------------
# Figures: everything the report says, computed once


@dataclass(frozen=True)
class Counted:
    """An alert that reached someone, from ``at`` (its start, or the end of onboarding)."""

    alert: AlertRow
    at: datetime


@dataclass(frozen=True)
class Figures:
    run: RunData
    truth: dict[str, Truth]
    accounts: dict[str, Account]
    counted: list[Counted]
    scores: list[RuleScore]
    counted_from: datetime

    @property
    def churners(self) -> list[Truth]:
        return [t for t in self.run.truth if t.churned]

    def fired(self) -> list[Fired]:
        return [Fired(c.alert.account_id, c.alert.rule, c.alert.motion, c.at) for c in self.counted]

    def alerts_of(self, account_id: str) -> list[Counted]:
        return [c for c in self.counted if c.alert.account_id == account_id]

    def first_risk_alert(self, account_id: str) -> Counted | None:
        risk = [c for c in self.alerts_of(account_id) if c.alert.motion in RISK_MOTIONS]
        return min(risk, key=lambda c: c.at) if risk else None

    def final_bands(self) -> Counter[str]:
        return Counter(h.band for h in self.run.health.values())

    def name(self, account_id: str) -> str:
        account = self.accounts.get(account_id)
        return account.name if account else account_id

    def person_name(self, person_id: str) -> str:
        for person in self.run.people:
            if person.person_id == person_id:
                return person.name
        return person_id


def counted_alerts(run: RunData) -> tuple[list[Counted], datetime]:
    """The alerts that count (see the module docstring), and from when alerts count."""
    begin = datetime.combine(run.start + timedelta(days=run.onboarding_days), time(), UTC)
    counted: list[Counted] = []
    for alert in run.alerts:
        if alert.started_at >= begin:
            counted.append(Counted(alert, alert.started_at))
        elif alert.resolved_at is None or alert.resolved_at > begin:
            counted.append(Counted(alert, begin))
    return counted, begin


def figures(run: RunData) -> Figures:
    counted, begin = counted_alerts(run)
    fired = [Fired(c.alert.account_id, c.alert.rule, c.alert.motion, c.at) for c in counted]
    return Figures(
        run=run,
        truth={t.account_id: t for t in run.truth},
        accounts={a.account_id: a for a in run.accounts},
        counted=counted,
        scores=score_rules(run.rules, fired, run.ground_truth()),
        counted_from=begin,
    )


def _money(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _days(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def first_slack_messages(run: RunData, count: int = SLACK_SHOWN) -> list[dict[str, Any]]:
    """The first messages Slack would have posted (answered with success), as received."""
    return [r for r in run.slack if r.get("delivered")][:count]


def chosen_email(run: RunData) -> Any | None:
    """An alert email if there is one, else the last digest a CSM received (a portfolio after
    months of data says more than the first one), else the last email."""
    for mail in run.mail:
        if "portfolio on" not in mail.subject:
            return mail
    csms = {p.email for p in run.people if p.role == "csm" and p.email}
    for mail in reversed(run.mail):
        if any(address in csms for address in mail.to):
            return mail
    return run.mail[-1] if run.mail else None


def _shortened(text: str, lines: int = 60) -> str:
    kept = text.rstrip().splitlines()
    if len(kept) <= lines:
        return "\n".join(kept)
    return "\n".join(kept[:lines]) + f"\n… ({len(kept) - lines} more lines)"


def text_part(raw: str) -> tuple[str, str]:
    """The headers of a message exactly as received, and its text/plain part decoded."""
    head, _, _ = raw.replace("\r\n", "\n").partition("\n\n")
    message = message_from_string(raw, policy=policy.default)
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    return head, str(text)


# ---------------------------------------------------------------------------------------------
# Terminal summary


def _table(rows: Sequence[Sequence[str]], *, right: Iterable[int] = ()) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    aligned = set(right)
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.rjust(widths[i]) if i in aligned else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  " + "  ".join(cells).rstrip())
        if n == 0:
            lines.append("  " + "  ".join("─" * w for w in widths))
    return lines


def summary(run: RunData) -> str:
    f = figures(run)
    out: list[str] = []
    ingest = run.ingest
    sent = {k: v for k, v in ingest.get("sent", {}).items() if k not in ("accounts", "people")}
    accepted = sum(v for k, v in ingest.get("accepted", {}).items() if k in sent)
    rejected = ingest.get("rejected", {})
    out.append(
        f"churnwatch demo: {len(run.accounts)} accounts, {len(run.people)} people, "
        f"{run.days} days from {run.start} (seed {run.seed})"
    )
    out.append(
        "Ingest: "
        + ", ".join(f"{channel} {n:,}" for channel, n in sorted(sent.items()))
        + f" events sent; {accepted:,} accepted, {sum(rejected.values()):,} rejected"
        + (f" ({', '.join(f'{c}: {n}' for c, n in rejected.items())})" if rejected else "")
    )

    bands = f.final_bands()
    as_of = run.collected_at.strftime("%Y-%m-%d %H:%M UTC") if run.collected_at else "?"
    out.append(f"\nPortfolio at the end of the run (scoring, as of {as_of}):")
    out.append(
        "  "
        + " · ".join(f"{band} {bands.get(band, 0)}" for band in BAND_ORDER)
        + (
            f" · not scored {len(run.accounts) - len(run.health)}"
            if len(run.health) < len(run.accounts)
            else ""
        )
    )
    rows = [["story", "accounts", "churned", "green", "yellow", "red"]]
    for story, accounts in _by_story(f).items():
        band = Counter(run.health[a].band for a in accounts if a in run.health)
        churned = sum(1 for a in accounts if f.truth[a].churned)
        rows.append(
            [STORY_TITLES.get(story, story), str(len(accounts)), str(churned)]
            + [str(band.get(b, 0)) for b in BAND_ORDER]
        )
    out += _table(rows, right=range(1, 6))

    out.append(
        f"\nAlerts: {len(run.alerts)} in all, {len(f.counted)} counted (from "
        f"{f.counted_from:%Y-%m-%d}, after {run.onboarding_days} days of imported history)"
    )
    rows = [["rule", "alerts", "accounts", "precision", "recall", "late", "median lead (days)"]]
    for score in f.scores:
        rows.append(
            [
                score.rule if score.target == "churn" else f"{score.rule} (→ {score.target})",
                str(_alert_count(f, score)),
                str(score.alerted),
                _pct(score.precision),
                _pct(score.recall),
                str(score.late) if score.target == "churn" else "—",
                _days(score.median_lead_days),
            ]
        )
    out += _table(rows, right=range(1, 7))

    out.append("\nAlerts per person (as a recipient):")
    rules = [rule for rule, _ in run.rules]
    per_person = _per_person(f)
    rows = [["person", "role", "alerts", *rules]]
    for person, counts in per_person:
        rows.append(
            [
                _person_label(f, person),
                _role(run, person),
                str(sum(counts.values())),
                *(str(counts.get(r, 0)) for r in rules),
            ]
        )
    out += _table(rows, right=range(2, 3 + len(rules)))

    weeks, weekly = per_person_week(f)
    out.append("\nAlerts per person per week (weeks from Monday; mean and busiest week):")
    rows = [["person", "mean", "max", *(f"{w:%m-%d}" for w in weeks)]]
    for person, per_week in weekly:
        mean = f"{sum(per_week) / len(per_week):.1f}"
        rows.append([_person_label(f, person), mean, str(max(per_week)), *map(str, per_week)])
    out += _table(rows, right=range(1, 3 + len(weeks)))

    messages = first_slack_messages(run)
    out.append(
        f"\nSlack: {sum(1 for r in run.slack if r.get('delivered'))} messages delivered to the "
        f"sink; the first {len(messages)} exactly as received:"
    )
    for n, request in enumerate(messages, start=1):
        out.append(f"  [{n}] POST {request['path']}  channel {request.get('channel')}")
        out.append(json.dumps(request["body"], ensure_ascii=False))
    mail = chosen_email(run)
    out.append(f"\nEmail: {len(run.mail)} messages accepted by the SMTP sink; one of them")
    if mail is not None:
        head, text = text_part(mail.raw)
        out.append(f"  ({mail.file}: its headers exactly as received, then its text part)")
        out.append(head)
        out.append("")
        out.append(_shortened(text))
    t = run.timings
    if t:
        out.append(
            "\nTimings: "
            + ", ".join(
                f"{name.removesuffix('_seconds')} {value:.0f} s" for name, value in t.items()
            )
        )
    return "\n".join(out) + "\n"


def _alert_count(f: Figures, score: RuleScore) -> int:
    """Alerts counted for a rule (for "any risk alert": of every risk rule)."""
    if score.rule == ANY_RISK:
        return sum(1 for c in f.counted if c.alert.motion in RISK_MOTIONS)
    return sum(1 for c in f.counted if c.alert.rule == score.rule)


def _motion(run: RunData, rule: str) -> str:
    return next((m for r, m in run.rules if r == rule), "")


def _by_story(f: Figures) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for t in f.run.truth:
        grouped[t.story].append(t.account_id)
    order = list(STORY_TITLES)
    return dict(
        sorted(grouped.items(), key=lambda item: order.index(item[0]) if item[0] in order else 99)
    )


def _per_person(f: Figures) -> list[tuple[str, Counter[str]]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for c in f.counted:
        for recipient in c.alert.recipients or ["(nobody)"]:
            counts[recipient][c.alert.rule] += 1
    return sorted(counts.items(), key=lambda item: -sum(item[1].values()))


def per_person_week(f: Figures) -> tuple[list[date], list[tuple[str, list[int]]]]:
    """Counted alerts per recipient per week (weeks start on Monday, from the first counted
    alert's week to the last one's, empty weeks included), busiest person first."""
    if not f.counted:
        return [], []
    monday = [(c.at - timedelta(days=c.at.weekday())).date() for c in f.counted]
    first, last = min(monday), max(monday)
    weeks = [first + timedelta(weeks=i) for i in range((last - first).days // 7 + 1)]
    counts: dict[str, Counter[date]] = defaultdict(Counter)
    for c, week in zip(f.counted, monday, strict=True):
        for recipient in c.alert.recipients or ["(nobody)"]:
            counts[recipient][week] += 1
    rows = [(person, [weekly[w] for w in weeks]) for person, weekly in counts.items()]
    return weeks, sorted(rows, key=lambda row: (-sum(row[1]), row[0]))


def _person_label(f: Figures, person: str) -> str:
    name = f.person_name(person)
    return f"{name} ({person})" if name != person else person


def _role(run: RunData, person: str) -> str:
    for p in run.people:
        if p.person_id == person:
            return p.role.replace("_", " ")
    return "team" if "team" in person else ""


# ---------------------------------------------------------------------------------------------
# HTML

CSS = """
body{font:15px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
 color:#1f2328;background:#f6f7f9;margin:0}
main{max-width:1120px;margin:0 auto;padding:28px 28px 60px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 10px;padding-top:6px;
 border-top:1px solid #d8dee4}h3{font-size:15px;margin:18px 0 6px}
.sub{color:#57606a;margin:0 0 18px}.note{color:#57606a;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:22px}.card span{color:#57606a;font-size:13px}
table{border-collapse:collapse;background:#fff;border:1px solid #d8dee4;font-size:13.5px;
 margin:6px 0 4px}th,td{padding:5px 10px;border-bottom:1px solid #eaeef2;text-align:left;
 vertical-align:top}th{background:#f6f8fa;font-weight:600}td.n,th.n{text-align:right;
 font-variant-numeric:tabular-nums}
.band{display:inline-block;padding:0 7px;border-radius:9px;color:#fff;font-size:12px;
 font-weight:600}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:10px}
.chart{background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:8px 10px 4px}
.chart .t{font-size:13px;font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.chart .m{font-size:12px;color:#57606a}
svg text{font-family:inherit}
pre{background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:10px 12px;
 font-size:12px;overflow-x:auto;white-space:pre-wrap;word-break:break-word}
.slack{background:#fff;border:1px solid #d8dee4;border-left:4px solid #4a154b;border-radius:6px;
 padding:8px 12px;margin:8px 0;font-size:13.5px}
.slack .h{font-weight:700}.slack .c{color:#57606a;font-size:12px}
.legend span{display:inline-block;margin-right:14px;font-size:12.5px;color:#57606a}
.legend i{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:4px;
 vertical-align:-1px}
"""


def e(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_html(run: RunData) -> str:
    f = figures(run)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>churnwatch demo — {len(run.accounts)} accounts, {run.days} days</title>",
        f"<style>{CSS}</style></head><body><main>",
        _header(f),
        _portfolio(f),
        _at_risk(f),
        _rules_section(f),
        _timeline(f),
        _trajectories(f),
        _people(f),
        _messages(f),
        _method(f),
        "</main></body></html>",
    ]
    return "\n".join(parts)


def _header(f: Figures) -> str:
    run = f.run
    any_risk = f.scores[-1]
    slack = sum(1 for r in run.slack if r.get("delivered"))
    accepted = sum(
        v for k, v in run.ingest.get("accepted", {}).items() if k not in ("accounts", "people")
    )
    cards = [
        (f"{len(run.accounts)}", "accounts"),
        (f"{len(f.churners)}", "churned (ground truth)"),
        (f"{accepted:,}", "events ingested"),
        (f"{len(f.counted)}", "alerts counted"),
        (_pct(any_risk.recall), "churners warned in time"),
        (_days(any_risk.median_lead_days) + " days", "median warning ahead"),
        (f"{slack}", "Slack messages"),
        (f"{len(run.mail)}", "emails"),
    ]
    as_of = f"{run.collected_at:%Y-%m-%d %H:%M} UTC" if run.collected_at else "?"
    return (
        "<h1>churnwatch demo report</h1>"
        f"<p class='sub'>A simulated portfolio of {len(run.accounts)} accounts and "
        f"{len(run.people)} people, {run.days} days from {run.start} to "
        f"{run.end - timedelta(days=1)} (seed {run.seed}), played through the real pipeline — "
        f"ingest, Kafka, scoring, alerts — in {run.timings.get('drive_seconds', 0):.0f} s. "
        f"State as of {as_of}.</p>"
        "<div class='cards'>"
        + "".join(f"<div class='card'><b>{e(v)}</b><span>{e(k)}</span></div>" for v, k in cards)
        + "</div>"
        "<p class='note'>Every figure below comes from what the pipeline produced: scores and "
        "their history from scoring's API, alerts from the alerts API, messages from the Slack "
        "and SMTP sinks. Only the ground truth — which accounts churned and when — comes from "
        "the simulator, and the pipeline never saw it.</p>"
    )


def _band_pill(band: str) -> str:
    return (
        f"<span class='band' style='background:{BAND_COLOURS.get(band, '#888')}'>{e(band)}</span>"
    )


def _portfolio(f: Figures) -> str:
    run = f.run
    bands = f.final_bands()
    total = max(1, sum(bands.values()))
    bar = []
    x = 0.0
    for band in BAND_ORDER:
        width = 1000 * bands.get(band, 0) / total
        if width:
            bar.append(
                f"<rect x='{x:.1f}' y='0' width='{width:.1f}' height='26' "
                f"fill='{BAND_COLOURS[band]}'><title>{band}: {bands[band]}</title></rect>"
            )
            if width > 60:
                bar.append(
                    f"<text x='{x + 8:.1f}' y='18' fill='#fff' font-size='13' "
                    f"font-weight='600'>{band} {bands[band]}</text>"
                )
        x += width
    rows = []
    for story, accounts in _by_story(f).items():
        in_band = Counter(run.health[a].band for a in accounts if a in run.health)
        churned = sum(1 for a in accounts if f.truth[a].churned)
        warned = sum(
            1
            for a in accounts
            if (first := f.first_risk_alert(a)) is not None
            and (not f.truth[a].churned or first.at.date() < (f.truth[a].churn_date or date.max))
        )
        rows.append(
            f"<tr><td>{e(STORY_TITLES.get(story, story))}</td><td class='n'>{len(accounts)}</td>"
            f"<td class='n'>{churned or ''}</td>"
            + "".join(f"<td class='n'>{in_band.get(b, 0) or ''}</td>" for b in BAND_ORDER)
            + f"<td class='n'>{warned}</td></tr>"
        )
    return (
        "<h2 id='portfolio'>The portfolio at the end of the run</h2>"
        f"<svg viewBox='0 0 1000 26' width='100%' height='26' preserveAspectRatio='none' "
        f"role='img' aria-label='accounts per band'>{''.join(bar)}</svg>"
        "<table><tr><th>story (ground truth)</th><th class='n'>accounts</th>"
        "<th class='n'>churned</th><th class='n'>green</th><th class='n'>yellow</th>"
        "<th class='n'>red</th><th class='n'>warned</th></tr>"
        + "".join(rows)
        + "</table><p class='note'>Band: scoring's current health of each account. Warned: "
        "accounts with at least one risk alert (for churners: before the day they churned). "
        "Churned accounts stop all activity, so they end red; the question is whether their "
        "owners were warned before — see the rules below.</p>"
    )


def band_since(points: Sequence[Point], band: str) -> datetime | None:
    """When the account's current run of ``band`` began, from its recorded history."""
    since = None
    for point in reversed(points):
        if point.band != band:
            break
        since = point.as_of
    return since


def _at_risk(f: Figures) -> str:
    run = f.run
    at_risk = [(a, h) for a, h in run.health.items() if h.band != "green"]

    def arr(account_id: str) -> float:
        account = f.accounts.get(account_id)
        return account.arr or 0.0 if account else 0.0

    # red before yellow; the most revenue first
    at_risk.sort(key=lambda item: (-BAND_ORDER.index(item[1].band), -arr(item[0])))
    total = sum(arr(a) for a, _ in at_risk)
    rows = []
    for account_id, health in at_risk[:15]:
        account = f.accounts.get(account_id)
        truth = f.truth.get(account_id)
        outcome = (
            f"churned {truth.churn_date}"
            if truth and truth.churned
            else STORY_TITLES.get(truth.story, truth.story)
            if truth
            else ""
        )
        since = band_since(run.history.get(account_id, []), health.band)
        rows.append(
            f"<tr><td>{e(f.name(account_id))}</td><td>{_band_pill(health.band)} "
            f"{health.score:.0f}</td><td>{f'{since:%b %-d}' if since else '—'}</td>"
            f"<td>{e('; '.join(health.reasons[:2]))}</td>"
            f"<td>{e(f.person_name(account.csm) if account and account.csm else '—')}</td>"
            f"<td class='n'>{_money(account.arr if account else None)}</td>"
            f"<td>{e(outcome)}</td></tr>"
        )
    return (
        f"<h2 id='risk'>Accounts at risk now: {len(at_risk)} not green, "
        f"{total:,.0f} ARR</h2>"
        "<table><tr><th>account</th><th>health</th><th>since</th><th>why (scoring's reasons)</th>"
        "<th>CSM</th><th class='n'>ARR</th><th>what really happened</th></tr>"
        + "".join(rows)
        + "</table><p class='note'>The largest red accounts first, then yellow ones. By the "
        "end of the run most red accounts have long churned — the rules below say how early "
        "their owners heard.</p>"
    )


def _rules_section(f: Figures) -> str:
    rows = []
    for score in f.scores:
        alerts = _alert_count(f, score)
        target = "churn" if score.target == "churn" else f"{score.target} opportunity"
        rows.append(
            f"<tr><td>{'<b>' if score.rule == ANY_RISK else ''}{e(score.rule)}</td>"
            f"<td>{e(target)}</td><td class='n'>{alerts}</td><td class='n'>{score.alerted}</td>"
            f"<td class='n'>{_pct(score.precision)}</td><td class='n'>{_pct(score.recall)}</td>"
            f"<td class='n'>{score.caught}/{score.positives}</td>"
            f"<td class='n'>{score.late if score.target == 'churn' else '—'}</td>"
            f"<td class='n'>{_days(score.median_lead_days)}</td>"
            f"<td>{_lead_strip(score)}</td></tr>"
        )
    return (
        "<h2 id='rules'>How well each rule warned</h2>"
        "<table><tr><th>rule</th><th>judged against</th><th class='n'>alerts</th>"
        "<th class='n'>accounts</th><th class='n'>precision</th><th class='n'>recall</th>"
        "<th class='n'>in time</th><th class='n'>late</th><th class='n'>median lead (days)</th>"
        "<th>lead times (0–60 days ahead)</th></tr>" + "".join(rows) + "</table>"
        "<p class='note'><b>Precision</b>: of the accounts a rule alerted on, the share that "
        "really churned (or, for opportunity rules, that were that opportunity). "
        "<b>Recall</b>: of those accounts, the share alerted <i>before</i> the churn date "
        "(opportunities: at any time). <b>Late</b>: churners alerted only on or after the day "
        "they churned. <b>Lead time</b>: days from the rule's first alert on an account to its "
        "churn (or opportunity) date; negative when noticed after it.</p>"
    )


def _lead_strip(score: RuleScore) -> str:
    if not score.lead_days:
        return ""
    dots = []
    for lead in score.lead_days:
        x = 4 + max(0.0, min(60.0, lead)) / 60 * 152
        dots.append(f"<circle cx='{x:.1f}' cy='8' r='3' fill='#1f6feb' fill-opacity='0.45'/>")
    median = score.median_lead_days or 0
    mx = 4 + max(0.0, min(60.0, median)) / 60 * 152
    return (
        "<svg width='160' height='16' viewBox='0 0 160 16'>"
        "<line x1='4' y1='8' x2='156' y2='8' stroke='#d0d7de'/>"
        + "".join(dots)
        + f"<line x1='{mx:.1f}' y1='2' x2='{mx:.1f}' y2='14' stroke='#1f2328' stroke-width='2'/>"
        "</svg>"
    )


def _x(moment: datetime | date, start: date, days: int, left: float, width: float) -> float:
    if isinstance(moment, datetime):
        offset = (moment - datetime.combine(start, time(), UTC)).total_seconds() / 86_400
    else:
        offset = (moment - start).days
    return left + max(0.0, min(float(days), offset)) / days * width


def _month_ticks(start: date, days: int) -> list[date]:
    ticks = []
    day = start
    end = start + timedelta(days=days)
    while day <= end:
        if day.day == 1:
            ticks.append(day)
        day += timedelta(days=1)
    return ticks


def _timeline(f: Figures) -> str:
    run = f.run
    rules = [rule for rule, _ in run.rules]
    left, width, row_h, top = 130.0, 820.0, 26, 22
    height = top + row_h * len(rules) + 30
    parts = [
        f"<svg viewBox='0 0 980 {height}' width='100%' role='img' aria-label='alerts over time'>"
    ]
    ox = _x(f.counted_from, run.start, run.days, left, width)
    parts.append(
        f"<rect x='{left}' y='{top - 8}' width='{ox - left:.1f}' height='{row_h * len(rules) + 8}' "
        "fill='#eaeef2'><title>imported history: no alerts for the past</title></rect>"
    )
    for tick in _month_ticks(run.start, run.days):
        tx = _x(tick, run.start, run.days, left, width)
        parts.append(
            f"<line x1='{tx:.1f}' y1='{top - 8}' x2='{tx:.1f}' y2='{top + row_h * len(rules)}' "
            f"stroke='#d0d7de'/><text x='{tx:.1f}' y='{height - 10}' font-size='11' "
            f"text-anchor='middle' fill='#57606a'>{tick:%b %-d}</text>"
        )
    for n, rule in enumerate(rules):
        y = top + row_h * n + row_h / 2 - 4
        parts.append(
            f"<text x='{left - 8}' y='{y + 4}' font-size='12' text-anchor='end'>{e(rule)}</text>"
            f"<line x1='{left}' y1='{y}' x2='{left + width}' y2='{y}' stroke='#eaeef2'/>"
        )
        motion = _motion(run, rule)
        for c in f.counted:
            if c.alert.rule != rule:
                continue
            truth = f.truth.get(c.alert.account_id)
            colour = _alert_colour(motion, truth, c.at)
            cx = _x(c.at, run.start, run.days, left, width)
            parts.append(
                f"<circle cx='{cx:.1f}' cy='{y}' r='3.6' fill='{colour}' fill-opacity='0.7'>"
                f"<title>{e(f.name(c.alert.account_id))} · {c.at:%Y-%m-%d} · "
                f"{e(c.alert.severity)} · {e(c.alert.summary)}</title></circle>"
            )
    parts.append("</svg>")
    legend = (
        "<div class='legend'><span><i style='background:#d64545'></i>account churned later "
        "(warned in time)</span><span><i style='background:#8250df'></i>account had already "
        "churned</span><span><i style='background:#2e9d57'></i>real opportunity</span>"
        "<span><i style='background:#8c959f'></i>account did not churn</span>"
        "<span><i style='background:#eaeef2;border:1px solid #afb8c1;border-radius:0'></i>"
        "imported history</span></div>"
    )
    return "<h2 id='timeline'>Alerts over time</h2>" + "".join(parts) + legend


def _alert_colour(motion: str, truth: Truth | None, at: datetime) -> str:
    if truth is None:
        return "#8c959f"
    if motion in RISK_MOTIONS:
        if truth.churned and truth.churn_date is not None:
            return "#d64545" if at.date() < truth.churn_date else "#8250df"
        return "#8c959f"
    opportunity = {"expansion": "expansion", "advocacy": "advocate"}.get(motion)
    return "#2e9d57" if truth.story == opportunity else "#8c959f"


def _trajectories(f: Figures) -> str:
    run = f.run
    sections = [
        "<h2 id='trajectories'>Health trajectories</h2><p class='note'>Scoring's recorded "
        "history of each account (every published change and the first score of each day) on the "
        "model's bands; ▼ marks the alerts its owners received (colour: severity), the "
        "dark line the day it churned.</p>"
    ]
    for story in CHURN_STORIES:
        accounts = [t for t in run.truth if t.story == story]
        if not accounts:
            continue
        sections.append(
            f"<h3>{e(STORY_TITLES[story])} — {len(accounts)} churners</h3><div class='grid'>"
        )
        for truth in sorted(accounts, key=lambda t: t.churn_date or date.max):
            sections.append(_account_chart(f, truth))
        sections.append("</div>")
    sample = _healthy_sample(f)
    sections.append(
        f"<h3>A sample of accounts that did not churn — {len(sample)} of "
        f"{len(run.truth) - len(f.churners)}</h3><div class='grid'>"
    )
    sections += [_account_chart(f, t) for t in sample]
    sections.append("</div>")
    return "".join(sections)


def _healthy_sample(f: Figures) -> list[Truth]:
    """A few of each kind of account that did not churn (noise stories first), by id."""
    stories = [
        "holiday_dip",
        "one_off_urgent",
        "lukewarm_renews",
        "expansion",
        "advocate",
        "healthy",
    ]
    chosen: list[Truth] = []
    for story in stories:
        of_story = sorted((t for t in f.run.truth if t.story == story), key=lambda t: t.account_id)
        chosen += of_story[:2]
    return chosen[:HEALTHY_SAMPLE]


def _account_chart(f: Figures, truth: Truth) -> str:
    run = f.run
    points: list[Point] = run.history.get(truth.account_id, [])
    left, width, top, height = 26.0, 300.0, 14.0, 70.0
    w, h = 334, top + height + 16

    def y(score: float) -> float:
        return top + height - max(0.0, min(100.0, score)) / 100 * height

    parts = [f"<svg viewBox='0 0 {w} {h:.0f}' width='100%' role='img'>"]
    for name, lower, upper in run.bands:
        parts.append(
            f"<rect x='{left}' y='{y(upper):.1f}' width='{width}' "
            f"height='{y(lower) - y(upper):.1f}' "
            f"fill='{BAND_FILLS.get(name, '#fff')}'/>"
        )
    for tick in _month_ticks(run.start, run.days):
        tx = _x(tick, run.start, run.days, left, width)
        parts.append(
            f"<line x1='{tx:.1f}' y1='{top}' x2='{tx:.1f}' y2='{top + height}' stroke='#fff'/>"
            f"<text x='{tx:.1f}' y='{h - 3:.0f}' font-size='9' text-anchor='middle' "
            f"fill='#6e7781'>{tick:%b}</text>"
        )
    for value in (0, 50, 100):
        parts.append(
            f"<text x='{left - 4}' y='{y(value) + 3:.1f}' font-size='9' text-anchor='end' "
            f"fill='#6e7781'>{value}</text>"
        )
    if points:
        path = " ".join(
            f"{_x(p.as_of, run.start, run.days, left, width):.1f},{y(p.score):.1f}"
            for p in points
            if p.as_of.date() < run.end + timedelta(days=1)
        )
        parts.append(f"<polyline points='{path}' fill='none' stroke='#1f2328' stroke-width='1.4'/>")
    if truth.churn_date is not None:
        cx = _x(truth.churn_date, run.start, run.days, left, width)
        parts.append(
            f"<line x1='{cx:.1f}' y1='{top - 2}' x2='{cx:.1f}' y2='{top + height}' "
            f"stroke='#1f2328' stroke-width='2' stroke-dasharray='3 2'>"
            f"<title>churned {truth.churn_date}</title></line>"
        )
    for c in sorted(f.alerts_of(truth.account_id), key=lambda c: c.at):
        ax = _x(c.at, run.start, run.days, left, width)
        colour = SEVERITY_COLOURS.get(c.alert.severity, "#57606a")
        parts.append(
            f"<path d='M{ax - 4:.1f},{top - 10} L{ax + 4:.1f},{top - 10} L{ax:.1f},{top - 3} Z' "
            f"fill='{colour}'><title>{c.at:%Y-%m-%d} {e(c.alert.rule)} ({e(c.alert.severity)}): "
            f"{e(c.alert.summary)}</title></path>"
        )
    parts.append("</svg>")
    first = f.first_risk_alert(truth.account_id)
    if truth.churned and truth.churn_date is not None:
        if first is not None and first.at.date() < truth.churn_date:
            lead = f"first risk alert {(truth.churn_date - first.at.date()).days} days before"
        elif first is not None:
            lead = "alerted only after it churned"
        else:
            lead = "no risk alert"
        meta = f"churned {truth.churn_date:%b %-d} · {lead}"
    else:
        alerts = len(f.alerts_of(truth.account_id))
        meta = f"{STORY_TITLES.get(truth.story, truth.story)} · {alerts} alert{'s' * (alerts != 1)}"
    health = run.health.get(truth.account_id)
    now = f" · now {health.score:.0f}" if health else ""
    return (
        f"<div class='chart'><div class='t' title='{e(truth.account_id)}'>"
        f"{e(f.name(truth.account_id))}</div><div class='m'>{e(meta)}{e(now)}</div>"
        + "".join(parts)
        + "</div>"
    )


def _people(f: Figures) -> str:
    run = f.run
    rules = [rule for rule, _ in run.rules]
    rows = []
    for person, counts in _per_person(f):
        rows.append(
            f"<tr><td>{e(_person_label(f, person))}</td><td>{e(_role(run, person))}</td>"
            f"<td class='n'>{sum(counts.values())}</td>"
            + "".join(f"<td class='n'>{counts.get(r, 0) or ''}</td>" for r in rules)
            + "</tr>"
        )
    return (
        "<h2 id='people'>Who was told</h2><table><tr><th>recipient</th><th>role</th>"
        "<th class='n'>alerts</th>"
        + "".join(f"<th class='n'>{e(r)}</th>" for r in rules)
        + "</tr>"
        + "".join(rows)
        + "</table><p class='note'>Routed by motion: adoption risks to the CSM, renewal risks to "
        "the renewal owner and the CSM, expansion to the account executive; an inactive owner's "
        "alerts go to their manager, an account without a CSM to the team channel.</p>"
        + _people_weekly(f)
    )


def _people_weekly(f: Figures) -> str:
    weeks, weekly = per_person_week(f)
    rows = "".join(
        f"<tr><td>{e(_person_label(f, person))}</td>"
        f"<td class='n'>{sum(counts) / len(counts):.1f}</td><td class='n'>{max(counts)}</td>"
        + "".join(f"<td class='n'>{n or ''}</td>" for n in counts)
        + "</tr>"
        for person, counts in weekly
    )
    return (
        "<h3>Alerts per person per week</h3><table><tr><th>recipient</th>"
        "<th class='n'>mean</th><th class='n'>max</th>"
        + "".join(f"<th class='n'>{w:%b %d}</th>" for w in weeks)
        + f"</tr>{rows}</table><p class='note'>Counted alerts (as above) by the week they "
        "started, weeks from Monday. A person's daily budget of new risk alerts "
        "(<code>daily_alert_budget</code>) caps what reaches them directly; the rest goes to "
        "their digest.</p>"
    )


def _messages(f: Figures) -> str:
    run = f.run
    parts = ["<h2 id='messages'>What people received</h2>"]
    messages = first_slack_messages(run)
    parts.append(
        f"<h3>The first {len(messages)} Slack messages (of "
        f"{sum(1 for r in run.slack if r.get('delivered'))})</h3>"
    )
    for request in messages:
        body = request["body"]
        lines = []
        for block in body.get("blocks", []):
            text = block.get("text", {})
            if block.get("type") == "header":
                lines.append(f"<div class='h'>{e(text.get('text', ''))}</div>")
            elif block.get("type") == "section" and block.get("fields"):  # the facts
                lines.append(
                    "<div>"
                    + " · ".join(
                        _mrkdwn(str(field.get("text", "")).replace("\n", " "))
                        for field in block["fields"]
                    )
                    + "</div>"
                )
            elif block.get("type") == "section":
                lines.append(f"<div>{_mrkdwn(text.get('text', ''))}</div>")
            elif block.get("type") == "context":
                lines.append(
                    "<div class='c'>"
                    + " ".join(_mrkdwn(el.get("text", "")) for el in block.get("elements", []))
                    + "</div>"
                )
            elif block.get("type") == "actions":
                lines.append(
                    "<div class='c'>buttons: "
                    + " · ".join(
                        e(el.get("text", {}).get("text", "")) for el in block.get("elements", [])
                    )
                    + "</div>"
                )
        parts.append(
            f"<div class='slack'><div class='c'>to {e(request.get('channel'))}</div>"
            + "".join(lines)
            + "</div>"
        )
    if messages:
        parts.append(
            "<details><summary class='note'>the first one exactly as the sink received it "
            "(JSON)</summary><pre>"
            + e(json.dumps(messages[0]["body"], indent=2, ensure_ascii=False))
            + "</pre></details>"
        )
    mail = chosen_email(run)
    if mail is not None:
        head, text = text_part(mail.raw)
        parts.append(
            f"<h3>One email (of {len(run.mail)}): {e(mail.subject)}</h3>"
            f"<pre>{e(head)}\n\n{e(_shortened(text))}</pre>"
            f"<p class='note'>Headers exactly as the SMTP sink received them, then the text part "
            f"(the message also has an HTML part); the raw message is {e(mail.file)}.</p>"
        )
    return "".join(parts)


def _mrkdwn(text: str) -> str:
    """Enough of Slack's mrkdwn for the report: *bold*, `code`, line breaks."""
    out = e(text)
    for marker, tag in (("*", "b"), ("`", "code")):
        pieces = out.split(marker)
        if len(pieces) >= 3:
            rebuilt = pieces[0]
            for n, piece in enumerate(pieces[1:], start=1):
                rebuilt += (f"<{tag}>" if n % 2 else f"</{tag}>") + piece
            if len(pieces) % 2 == 0:
                rebuilt += f"</{tag}>"
            out = rebuilt
    return out.replace("\n", "<br>")


def _method(f: Figures) -> str:
    run = f.run
    ingest = run.ingest
    t = run.timings
    sent = ", ".join(f"{k} {v:,}" for k, v in sorted(ingest.get("sent", {}).items()))
    rejected = ingest.get("rejected", {})
    lines = [
        f"Seed {run.seed}, {run.days} simulated days at {run.speed:,.0f}× real time "
        f"(a day lasts {86_400 / run.speed:.1f} s), usage intensity {run.intensity:g}.",
        f"Sent to ingest: {sent}; rejected: "
        + (", ".join(f"{k} {v}" for k, v in rejected.items()) if rejected else "none")
        + f"; {ingest.get('requests', 0):,} requests.",
        f"The first {run.onboarding_days} days were imported as history (no alerts for the "
        f"past); alerts counted from {f.counted_from:%Y-%m-%d}.",
        "Timings: " + ", ".join(f"{k.removesuffix('_seconds')} {v:.0f} s" for k, v in t.items()),
    ]
    if f.scores:
        leads = [lead for s in f.scores if s.rule == ANY_RISK for lead in s.lead_days]
        if leads:
            lines.append(
                f"Any risk alert: lead times from {min(leads):.0f} to {max(leads):.0f} days "
                f"(mean {statistics.mean(leads):.1f})."
            )
    return "<h2 id='run'>About this run</h2>" + "".join(
        f"<p class='note'>{e(line)}</p>" for line in lines
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m churnwatch.report")
    parser.add_argument("run", type=Path, help="a saved run (reports/demo-run.json)")
    parser.add_argument("--out", type=Path, default=None, help="default: demo.html beside it")
    args = parser.parse_args(argv)
    run = load(args.run)
    out = args.out or args.run.with_name("demo.html")
    out.write_text(render_html(run), encoding="utf-8")
    print(summary(run))
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
