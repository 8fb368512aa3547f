"""Previews of a rendered alert, for the docs: ``python -m devstack.alert_preview --out DIR``.

Builds one alert notification through the service's own code (``messages.alert_payload``,
``render``) and writes ``DIR/email.html`` (the email's HTML part as sent), ``DIR/slack.html``
(its Block Kit, drawn as Slack lays it out: header, sections, fields, context, buttons) and
``DIR/brief.html`` (the signed brief page). ``docs/alerts.md`` shows them as screenshots taken
with Chromium headless (``--screenshot``).
"""

from __future__ import annotations

import argparse
import html
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from services.alerts import briefs, links, messages, render
from services.alerts.decide import AccountState, Health
from services.alerts.lifecycle import Alert, Notification
from services.alerts.messages import AccountView, Content, Move
from services.alerts.routing import Person, Recipient, Route, Team

NOW = datetime(2026, 12, 3, 9, 42, tzinfo=UTC)
MARIA = Recipient("Maria Lopez", "p_maria", slack="U_MARIA", email="maria@example.com")
MOVES = (
    Move("activity", -20.0, ("weekly active users 12 → 4", "active days per week 5 → 2")),
    Move(
        "support",
        -9.5,
        (
            "high/urgent tickets opened per week 0 → 3",
            "3 high/urgent tickets open: #4512, #4519, #4533",
        ),
    ),
    Move("recency", -4.0, ("days since the last activity 1 → 6",)),
)
REASONS = (
    "weekly active users down 67% vs the 4-week baseline",
    "3 high/urgent tickets open",
    "no activity for 6 days",
)


def sample() -> tuple[dict[str, Any], AccountState, links.Link]:
    """An alert payload about Acme Corp, the account's state and a brief link, as the service
    builds them."""
    content = Content(
        signer=links.LinkSigner("preview-signing-secret-0123456789"),
        public_url="https://churnwatch.example.com",
        brief_url_template="",
        link_ttl=timedelta(days=7),
        message_id_domain="example.com",
    )
    route = Route(
        (MARIA,), ("renewal owner → p_maria (Maria Lopez)", "CSM → p_maria (Maria Lopez)")
    )
    alerts = [
        Alert(
            "acme",
            "renewal_at_risk",
            "renewal",
            "critical",
            "firing",
            "renews in 43 days while red",
            NOW,
            NOW,
            route,
            id=41,
        ),
        Alert(
            "acme",
            "band_worsened",
            "adoption",
            "critical",
            "firing",
            "health fell from green to red",
            NOW,
            NOW,
            route,
            id=42,
        ),
    ]
    view = AccountView(
        account_id="acme",
        name="Acme Corp",
        score=38.0,
        band="red",
        before_score=71.0,
        before_band="green",
        as_of=NOW,
        reasons=REASONS,
        moved_by=MOVES,
        tier="enterprise",
        arr=120_000.0,
        renewal_date=date(2027, 1, 15),
    )
    notification = Notification(
        "alert", "acme", MARIA, (41, 42), ("renewal_at_risk", "band_worsened"), "critical", NOW
    )
    payload = messages.alert_payload(notification, view, alerts, content, NOW)
    state = AccountState(
        account_id="acme",
        name="Acme Corp",
        team=Team(csm="p_maria", renewal_owner="p_maria"),
        renewal_date=date(2027, 1, 15),
        tier="enterprise",
        arr=120_000.0,
        health=Health(NOW, 38.0, "red", 71.0, "green", REASONS, moved_by=MOVES),
        alerts=alerts,
        people={"p_maria": Person("p_maria", "Maria Lopez")},
    )
    link = links.Link("brief", "acme", (), "p_maria", NOW + timedelta(days=7))
    return payload, state, link


# ---------------------------------------------------------------------------------------------
# Block Kit, drawn


def mrkdwn(text: str) -> str:
    """Slack's mrkdwn as HTML: <url|label>, *bold*, `code`, line breaks."""
    out = html.escape(text, quote=False)
    out = re.sub(r"&lt;(https?://[^|&]+)\|([^&]+)&gt;", r'<a href="\1">\2</a>', out)
    out = re.sub(r"&lt;@(\w+)&gt;", r'<span class="mention">@\1</span>', out)
    out = re.sub(r"\*([^*\n]+)\*", r"<b>\1</b>", out)
    out = re.sub(r"`([^`\n]+)`", r"<code>\1</code>", out)
    return out.replace("\n", "<br>")


def block_html(block: dict[str, Any]) -> str:
    kind = block["type"]
    if kind == "header":
        return f'<div class="header">{html.escape(block["text"]["text"])}</div>'
    if kind == "section" and "fields" in block:
        cells = "".join(f"<div>{mrkdwn(f['text'])}</div>" for f in block["fields"])
        return f'<div class="fields">{cells}</div>'
    if kind == "section":
        return f'<div class="section">{mrkdwn(block["text"]["text"])}</div>'
    if kind == "context":
        return "".join(f'<div class="context">{mrkdwn(e["text"])}</div>' for e in block["elements"])
    if kind == "actions":
        buttons = "".join(
            f'<span class="button {e.get("style", "")}">{html.escape(e["text"]["text"])}</span>'
            for e in block["elements"]
        )
        return f'<div class="actions">{buttons}</div>'
    return ""


SLACK_CSS = """
body { margin: 0; padding: 24px; background: #fff; font: 15px/1.46 -apple-system, "Segoe UI",
  Helvetica, Arial, sans-serif; color: #1d1c1d; }
.message { display: flex; gap: 10px; max-width: 720px; }
.avatar { width: 36px; height: 36px; border-radius: 6px; background: #c62828; color: #fff;
  font-weight: 700; display: flex; align-items: center; justify-content: center; flex: none; }
.who { font-weight: 900; } .app { font-size: 10px; background: #e8e8e8; border-radius: 2px;
  padding: 1px 3px; margin-left: 4px; color: #616061; } .time { color: #616061; font-size: 12px;
  margin-left: 6px; }
.header { font-size: 18px; font-weight: 900; margin: 6px 0 8px; }
.section { margin: 6px 0 10px; } .context { color: #616061; font-size: 13px; margin: 6px 0; }
.fields { display: grid; grid-template-columns: 1fr 1fr; gap: 8px 24px; margin: 6px 0 12px; }
code { font-size: 12px; background: #f6f6f6; border: 1px solid #e1e1e1; border-radius: 3px;
  padding: 1px 3px; color: #e01e5a; }
.mention { background: #e8f5fa; color: #1264a3; border-radius: 3px; padding: 0 2px; }
.actions { margin: 8px 0; display: flex; flex-wrap: wrap; gap: 8px; }
.button { border: 1px solid #c6c6c6; border-radius: 4px; padding: 4px 12px; font-size: 13px;
  font-weight: 700; } .button.primary { background: #007a5a; color: #fff; border-color: #007a5a; }
a { color: #1264a3; text-decoration: none; }
"""


def slack_html(message: dict[str, Any]) -> str:
    blocks = "\n".join(block_html(b) for b in message["blocks"])
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>Slack preview</title>'
        f"<style>{SLACK_CSS}</style></head><body>"
        '<div class="message"><div class="avatar">cw</div><div>'
        '<span class="who">churnwatch</span><span class="app">APP</span>'
        f'<span class="time">09:42</span>\n{blocks}</div></div></body></html>'
    )


def write(out: Path) -> list[Path]:
    payload, state, link = sample()
    out.mkdir(parents=True, exist_ok=True)
    _, email_html = render.email_bodies(payload)
    pages = {
        "email.html": email_html,
        "slack.html": slack_html(render.slack_message(payload, mention="U_MARIA")),
        "brief.html": render.page(
            "brief.html.j2", refused=False, **briefs.context(state, link, NOW)
        ),
    }
    written = []
    for name, text in pages.items():
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    for path in write(parser.parse_args(argv).out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
