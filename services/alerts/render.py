"""Rendering a stored payload for a channel: Slack Block Kit, email (HTML + text), and the
small pages one-click links show.

Slack's limits are enforced here, never by rejection: message ``text`` ≤ 4,000 characters,
≤ 50 blocks, section text ≤ 3,000, header ≤ 150, button text ≤ 75. Content past a limit is
cut with "…" and a link to the full view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEXT_LIMIT = 4000
MAX_BLOCKS = 50
SECTION_LIMIT = 3000
HEADER_LIMIT = 150
BUTTON_LIMIT = 75

SEVERITY_ICON = {"critical": "🔴", "warning": "🟠", "info": "🔵"}
BAND_ICON = {"red": "🔴", "yellow": "🟡", "green": "🟢"}
TITLE = {
    "alert": "{icon} {name}: {count}",
    "escalation": "⏫ Escalated — {name}: {count}",
    "resolved": "✅ Resolved — {name}: {count}",
}


def fit(text: str, limit: int, more_url: str | None = None) -> str:
    """``text`` cut to ``limit`` characters, ending with "…" and a Slack link when cut."""
    if len(text) <= limit:
        return text
    suffix = f"… <{more_url}|more>" if more_url else "…"
    if len(suffix) >= limit:
        suffix = "…"
    return text[: limit - len(suffix)].rstrip() + suffix


def _count(alerts: Sequence[Mapping[str, Any]]) -> str:
    if len(alerts) == 1:
        return str(alerts[0]["rule"]).replace("_", " ")
    return f"{len(alerts)} alerts"


def title(payload: Mapping[str, Any]) -> str:
    if payload["kind"] == "digest":
        return f"Your churnwatch digest for {payload['date']}"
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


# ---------------------------------------------------------------------------------------------
# Slack


def slack_message(payload: Mapping[str, Any], *, mention: str | None = None) -> dict[str, Any]:
    """``{"text": ..., "blocks": [...]}`` within Slack's limits."""
    if payload["kind"] == "digest":
        return _slack_digest(payload, mention)
    links: Mapping[str, str] = payload["links"]
    view = links.get("view")
    head = title(payload)
    who = f"<@{mention}> " if mention else ""
    owner = payload.get("owner") or {}
    facts = [
        f"*Account:* {payload['account']['name']} (`{payload['account']['id']}`)",
        f"*Owner:* {owner.get('name', 'nobody')}",
        f"*Health:* {health_line(payload['health'])}",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": fit(head, HEADER_LIMIT)}},
        _section(who + "  ·  ".join(facts), view),
    ]
    lines = [
        f"{SEVERITY_ICON.get(a['severity'], '')} *{a['rule']}* ({a['severity']})"
        + (f" — {a['summary']}" if a.get("summary") else "")
        for a in payload["alerts"]
    ]
    reasons = [f"• {r}" for r in payload.get("reasons", [])]
    tail_blocks = 3  # reasons, context, actions
    budget = MAX_BLOCKS - len(blocks) - tail_blocks
    chunks = _chunks(lines, SECTION_LIMIT, view)
    for i, chunk in enumerate(chunks):
        if i == budget - 1 and i < len(chunks) - 1:
            rest = sum(len(c) for c in chunks[i:])
            blocks.append(_section(f"… and {rest} more — <{view}|see all>", view))
            break
        blocks.append(_section("\n".join(chunk), view))
    if reasons and payload["kind"] != "resolved":
        blocks.append(_section("*Why:*\n" + "\n".join(reasons), view))
    notes = []
    if payload.get("escalation_path"):
        notes.append("Not acknowledged in time: " + "; ".join(payload["escalation_path"]))
    if payload.get("route_path"):
        notes.append("Routed: " + "; ".join(payload["route_path"]))
    if notes:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": fit(" · ".join(notes), SECTION_LIMIT)}],
            }
        )
    buttons = [
        (label, links[key])
        for key, label in (
            ("ack", "Acknowledge"),
            ("snooze_1d", "Snooze 1 day"),
            ("snooze_1w", "Snooze 1 week"),
            ("brief", "Open brief"),
        )
        if key in links
    ]
    if buttons:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": fit(label, BUTTON_LIMIT)},
                        "url": url,
                        **({"style": "primary"} if label == "Acknowledge" else {}),
                    }
                    for label, url in buttons
                ],
            }
        )
    summary = f"{who}{head} — {health_line(payload['health'])}. " + "; ".join(
        f"{a['rule']}: {a.get('summary') or a['severity']}" for a in payload["alerts"]
    )
    return {"text": fit(summary, TEXT_LIMIT, view), "blocks": blocks[:MAX_BLOCKS]}


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


def _slack_digest(payload: Mapping[str, Any], mention: str | None) -> dict[str, Any]:
    text = render_text("digest.txt.j2", payload)
    head = title(payload)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": fit(head, HEADER_LIMIT)}}
    ]
    sections = [s.strip() for s in text.split("\n\n") if s.strip()]
    for section in sections[: MAX_BLOCKS - 1]:
        blocks.append(_section(section, None))
    who = f"<@{mention}> " if mention else ""
    return {"text": fit(who + head, TEXT_LIMIT), "blocks": blocks}


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
    env.globals["SEVERITY_ICON"] = SEVERITY_ICON
    env.globals["BAND_ICON"] = BAND_ICON
    return env


def render_text(template: str, payload: Mapping[str, Any], **extra: Any) -> str:
    return _environment().get_template(template).render(p=payload, title=title(payload), **extra)


def email_subject(payload: Mapping[str, Any]) -> str:
    """Stable per account, so mail clients that thread by subject keep one thread."""
    if payload["kind"] == "digest":
        return f"[churnwatch] Your portfolio on {payload['date']}"
    return f"[churnwatch] {payload['account']['name']}"


def email_bodies(payload: Mapping[str, Any]) -> tuple[str, str]:
    """(plain text, HTML)."""
    name = "digest" if payload["kind"] == "digest" else "alert"
    return render_text(f"{name}.txt.j2", payload), render_text(f"{name}.html.j2", payload)


def page(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)
