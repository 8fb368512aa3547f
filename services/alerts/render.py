"""Rendering a stored payload for a channel: Slack Block Kit, email (HTML + text), and the
small pages one-click links show.

Slack's limits are enforced here, never by rejection: message ``text`` ≤ 4,000 characters,
≤ 50 blocks, section text ≤ 3,000, header ≤ 150, button text ≤ 75. Content past a limit is
cut with "…" and a link to the full view.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.alerts import messages

TEXT_LIMIT = 4000
MAX_BLOCKS = 50
SECTION_LIMIT = 3000
HEADER_LIMIT = 150
BUTTON_LIMIT = 75
FIELD_LIMIT = 2000  # one of a section's fields

SEVERITY_ICON = {"critical": "🔴", "warning": "🟠", "info": "🔵"}
SEVERITY_WORD = {"critical": "Critical", "warning": "Warning", "info": "Info"}
BAND_ICON = {"red": "🔴", "yellow": "🟡", "green": "🟢"}
TITLE = {
    "alert": "{icon} {name}: {count}",
    "escalation": "⏫ Escalated — {name}: {count}",
    "resolved": "✅ Resolved — {name}: {count}",
}
CURRENCY = "$"  # ARR is shown in this currency (the account record's ``arr`` carries none)


def fit(text: str, limit: int, more_url: str | None = None) -> str:
    """``text`` cut to ``limit`` characters, ending with "…" and a Slack link when cut."""
    if len(text) <= limit:
        return text
    suffix = f"… <{more_url}|more>" if more_url else "…"
    if len(suffix) >= limit:
        suffix = "…"
    return text[: limit - len(suffix)].rstrip() + suffix


def alert_title(alert: Mapping[str, Any]) -> str:
    """The rule's name in words (payloads written before titles existed: from the rule)."""
    return str(alert.get("title") or messages.rule_title(str(alert["rule"])))


def _count(alerts: Sequence[Mapping[str, Any]]) -> str:
    if not alerts:
        return "no alerts"
    if len(alerts) == 1:
        return alert_title(alerts[0])
    return f"{alert_title(alerts[0])} and {len(alerts) - 1} more"


def title(payload: Mapping[str, Any]) -> str:
    if payload["kind"] == "digest":
        return f"Your churnwatch digest for {payload['date']}"
    if payload["kind"] == "rollout":
        return str(payload["title"])
    alerts = payload["alerts"]
    return TITLE[payload["kind"]].format(
        icon=SEVERITY_ICON.get(payload["severity"], ""),
        name=payload["account"]["name"],
        count=_count(alerts),
    )


def health_line(health: Mapping[str, Any]) -> str:
    score, band = health.get("score"), health.get("band")
    if score is None:
        return "no health score yet"
    now = f"{score:.0f} ({band})"
    before, before_band = health.get("before_score"), health.get("before_band")
    if before is None:
        return now
    return f"{before:.0f} ({before_band}) → {now}"


def money(amount: float | None) -> str | None:
    """ARR, short: $950, $12.5k, $120k, $1.2M."""
    if amount is None:
        return None
    if amount >= 1_000_000:
        return f"{CURRENCY}{amount / 1_000_000:.1f}M".replace(".0M", "M")
    if amount >= 10_000:
        return f"{CURRENCY}{amount / 1000:.0f}k"
    if amount >= 1000:
        return f"{CURRENCY}{amount / 1000:.1f}k".replace(".0k", "k")
    return f"{CURRENCY}{amount:.0f}"


def renewal_line(account: Mapping[str, Any]) -> str | None:
    """ "2027-03-31 (in 118 days)"; "2026-11-30 (3 days ago)"; None when unknown."""
    day, left = account.get("renewal_date"), account.get("days_to_renewal")
    if not day:
        return None
    if left is None:
        return str(day)
    when = (
        "today"
        if left == 0
        else f"in {left} day{'s' if left != 1 else ''}"
        if left > 0
        else f"{-left} day{'s' if left != -1 else ''} ago"
    )
    return f"{day} ({when})"


def account_facts(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) of what the decision needs about the account, in order; unknown facts
    say so rather than vanish (a missing renewal date is itself worth knowing)."""
    account = payload["account"]
    owner = payload.get("owner") or {}
    return [
        ("Health", health_line(payload["health"])),
        ("ARR", money(account.get("arr")) or "unknown"),
        ("Tier", account.get("tier") or "unknown"),
        ("Renewal", renewal_line(account) or "unknown"),
        ("Owner", owner.get("name") or "nobody"),
    ]


def move_line(move: Mapping[str, Any]) -> str:
    """ "Activity −20 points: weekly active users 51 → 19; active days per week 5 → 2"."""
    points = float(move["delta_points"])
    label = move.get("label") or messages.component_label(str(move["name"]))
    sign = "−" if points < 0 else "+"
    head = f"{label} {sign}{abs(points):.1f} points"
    evidence = move.get("evidence") or []
    return f"{head}: {'; '.join(evidence)}" if evidence else head


def moves(payload: Mapping[str, Any]) -> list[str]:
    return [move_line(m) for m in payload.get("moved_by") or []]


# ---------------------------------------------------------------------------------------------
# Slack


def slack_message(
    payload: Mapping[str, Any], *, mention: str | None = None, interactive: bool = False
) -> dict[str, Any]:
    """``{"text": ..., "blocks": [...]}`` within Slack's limits. ``interactive`` (the bot-token
    Web API with an interactivity endpoint): real buttons carrying ``action_id`` and the alert
    ids as ``value``; otherwise URL buttons to signed links."""
    if payload["kind"] == "digest":
        return _slack_digest(payload, mention)
    if payload["kind"] == "rollout":
        return _slack_lines(payload, mention)
    links: Mapping[str, str] = payload["links"]
    view = links.get("view")
    head = title(payload)
    who = f"<@{mention}> " if mention else ""
    account = payload["account"]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": fit(head, HEADER_LIMIT)}},
        _section(f"{who}*{account['name']}* (`{account['id']}`)", view),
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": fit(f"*{label}*\n{value}", FIELD_LIMIT)}
                for label, value in account_facts(payload)
            ],
        },
    ]
    lines = [
        f"{SEVERITY_ICON.get(a['severity'], '')} *{alert_title(a)}* ({a['severity']})"
        + (f" — {a['summary']}" if a.get("summary") else "")
        for a in payload["alerts"]
    ]
    tail: list[dict[str, Any]] = []
    moved = moves(payload)
    if moved and payload["kind"] != "resolved":
        tail.append(
            _section("*What moved the score:*\n" + "\n".join(f"• {m}" for m in moved), view)
        )
    reasons = [f"• {r}" for r in payload.get("reasons", [])]
    if reasons and payload["kind"] != "resolved":
        tail.append(_section("*Why:*\n" + "\n".join(reasons), view))
    notes = []
    if payload.get("escalation_path"):
        notes.append("Not acknowledged in time: " + "; ".join(payload["escalation_path"]))
    if payload.get("route_path"):
        notes.append("Routed: " + "; ".join(payload["route_path"]))
    if notes:
        tail.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": fit(" · ".join(notes), SECTION_LIMIT)}],
            }
        )
    tail += _slack_actions(payload, interactive)
    budget = MAX_BLOCKS - len(blocks) - len(tail)
    chunks = _chunks(lines, SECTION_LIMIT, view)
    for i, chunk in enumerate(chunks):
        if i == budget - 1 and i < len(chunks) - 1:
            rest = sum(len(c) for c in chunks[i:])
            blocks.append(_section(f"… and {rest} more — <{view}|see all>", view))
            break
        blocks.append(_section("\n".join(chunk), view))
    blocks += tail
    facts = "; ".join(f"{label} {value}" for label, value in account_facts(payload)[1:4])
    summary = f"{who}{head} — {health_line(payload['health'])}; {facts}. " + "; ".join(
        f"{alert_title(a)}: {a.get('summary') or a['severity']}" for a in payload["alerts"]
    )
    return {"text": fit(summary, TEXT_LIMIT, view), "blocks": blocks[:MAX_BLOCKS]}


ACTION_BUTTONS = (
    ("ack", "Acknowledge"),
    ("snooze_1d", "Snooze 1 day"),
    ("snooze_1w", "Snooze 1 week"),
)
FEEDBACK_BUTTONS = (
    ("feedback_useful", "👍 Useful"),
    ("feedback_not_useful", "👎 Not useful"),
    ("feedback_known", "Already knew"),
)


def _button(label: str, **rest: Any) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": fit(label, BUTTON_LIMIT)},
        **rest,
        **({"style": "primary"} if label == "Acknowledge" else {}),
    }


def _slack_actions(payload: Mapping[str, Any], interactive: bool) -> list[dict[str, Any]]:
    """The buttons: block "actions" (acknowledge, snooze, the brief) and block "feedback".

    Interactive: ``action_id`` = the action, ``value`` = the message's alert ids, comma-separated
    (the interactivity endpoint acts on them). Otherwise each button opens its signed link."""
    links: Mapping[str, str] = payload["links"]
    ids = ",".join(str(a["id"]) for a in payload["alerts"] if a.get("id") is not None)

    def button(action: str, label: str) -> dict[str, Any] | None:
        if action not in links:
            return None
        if interactive and ids:
            return _button(label, action_id=action, value=ids)
        return _button(label, action_id=action, url=links[action])

    actions = [b for a, label in ACTION_BUTTONS if (b := button(a, label))]
    if "brief" in links:
        actions.append(_button("Open brief", action_id="open_brief", url=links["brief"]))
    feedback = [b for a, label in FEEDBACK_BUTTONS if (b := button(a, label))]
    return [
        {"type": "actions", "block_id": block_id, "elements": elements}
        for block_id, elements in (("actions", actions), ("feedback", feedback))
        if elements
    ]


def _section(text: str, more_url: str | None) -> dict[str, Any]:
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": fit(text, SECTION_LIMIT, more_url)},
    }


def _chunks(lines: Sequence[str], limit: int, more_url: str | None) -> list[list[str]]:
    chunks: list[list[str]] = []
    size = 0
    for line in lines:
        line = fit(line, limit, more_url)
        if chunks and size + len(line) + 1 <= limit:
            chunks[-1].append(line)
            size += len(line) + 1
        else:
            chunks.append([line])
            size = len(line)
    return chunks


_DIGEST_LINKS = (
    (re.compile(r"Brief: (https?://\S+)"), r"<\1|Open brief>"),
    (re.compile(r"acknowledge: (https?://\S+)"), r"<\1|acknowledge>"),
    (re.compile(r"— (https?://\S+)"), r"— <\1|open brief>"),
)


def _slack_digest(payload: Mapping[str, Any], mention: str | None) -> dict[str, Any]:
    """The digest's text, one section per part, its links as Slack links."""
    text = render_text("digest.txt.j2", payload)
    for pattern, link in _DIGEST_LINKS:
        text = pattern.sub(link, text)
    head = title(payload)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": fit(head, HEADER_LIMIT)}}
    ]
    sections = [s.strip() for s in text.split("\n\n") if s.strip()]
    for section in sections[: MAX_BLOCKS - 1]:
        blocks.append(_section(section, None))
    who = f"<@{mention}> " if mention else ""
    return {"text": fit(who + head, TEXT_LIMIT), "blocks": blocks}


def _slack_lines(payload: Mapping[str, Any], mention: str | None) -> dict[str, Any]:
    """A notice that is a title and lines (the model rollout summary to CS ops)."""
    head = title(payload)
    who = f"<@{mention}> " if mention else ""
    lines = [str(line) for line in payload.get("lines", [])]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": fit(head, HEADER_LIMIT)}}
    ]
    for chunk in _chunks(lines, SECTION_LIMIT, None)[: MAX_BLOCKS - 1]:
        blocks.append(_section("\n".join(chunk), None))
    return {"text": fit(who + head + ". " + " ".join(lines), TEXT_LIMIT), "blocks": blocks}


# ---------------------------------------------------------------------------------------------
# Email and pages

TEMPLATES = Path(__file__).resolve().parent / "templates"


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "html.j2"], default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["health"] = health_line
    env.filters["money"] = money
    env.filters["move"] = move_line
    env.filters["renewal"] = renewal_line
    env.globals["SEVERITY_ICON"] = SEVERITY_ICON
    env.globals["SEVERITY_WORD"] = SEVERITY_WORD
    env.globals["BAND_ICON"] = BAND_ICON
    env.globals["alert_title"] = alert_title
    env.globals["account_facts"] = account_facts
    env.globals["moves"] = moves
    return env


def render_text(template: str, payload: Mapping[str, Any], **extra: Any) -> str:
    return _environment().get_template(template).render(p=payload, title=title(payload), **extra)


def email_subject(payload: Mapping[str, Any]) -> str:
    """Severity first, then the account and what happened: "[churnwatch] Critical: Acme —
    Renewal at risk". Messages about one account still thread (``In-Reply-To`` /
    ``References`` to the account's thread root)."""
    kind = payload["kind"]
    if kind == "digest":
        return f"[churnwatch] Your portfolio on {payload['date']}"
    if kind == "rollout":
        return f"[churnwatch] {payload['title']}"
    what = f"{payload['account']['name']} — {_count(payload['alerts'])}"
    if kind == "resolved":
        return f"[churnwatch] Resolved: {what}"
    severity = SEVERITY_WORD.get(payload["severity"], str(payload["severity"]).capitalize())
    if kind == "escalation":
        return f"[churnwatch] {severity}, escalated: {what}"
    return f"[churnwatch] {severity}: {what}"


def email_bodies(payload: Mapping[str, Any]) -> tuple[str, str]:
    """(plain text, HTML)."""
    name = {"digest": "digest", "rollout": "lines"}.get(payload["kind"], "alert")
    return render_text(f"{name}.txt.j2", payload), render_text(f"{name}.html.j2", payload)


def page(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)
