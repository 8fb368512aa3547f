"""The signed brief page: a read-only account view for a person in a browser, with no login.

Messages link to ``/brief/<token>``, a :mod:`~services.alerts.links` token of action ``brief``
naming the account and the person the message went to, expiring with every other link
(``ALERTS_LINK_TTL_SECONDS``). It shows what this service knows of the account: score and band,
the reasons, what moved the score (with the evidence), the record facts (tier, ARR, seats,
renewal and days left, who owns it) and the open alerts. It never acts: ``POST`` is not served.
A forged or altered token answers 403 (``link_invalid``), an expired one 410 (``link_expired``),
an account the service does not know 404 (``unknown_account``) — each a readable HTML page.
Until the console exists this is "the link to the account".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts import links, messages, metrics, render
from services.alerts.accounts import gather
from services.alerts.decide import AccountState
from services.alerts.lifecycle import Alert

HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}


def refusal(status: int, code: str, heading: str, message: str) -> HTMLResponse:
    metrics.BRIEF_PAGES.labels(code).inc()
    return HTMLResponse(
        render.page("brief.html.j2", refused=True, heading=heading, message=message),
        status_code=status,
        headers={**HEADERS, "X-Error-Code": code},
    )


async def serve(
    engine: AsyncEngine, signer: links.LinkSigner, token: str, now: datetime
) -> HTMLResponse:
    """The page for ``token`` (or the page saying why not)."""
    try:
        link = signer.verify(token, now)
    except links.LinkError as exc:
        status = 410 if exc.code == "link_expired" else 403
        return refusal(status, exc.code, "This link cannot be used", str(exc))
    if link.action not in links.READ_ONLY:
        return refusal(403, "link_invalid", "This link cannot be used", "not a brief link")
    async with engine.connect() as conn:
        state = (await gather(conn, [link.account_id]))[link.account_id]
    if state.name is None and state.health is None:
        return refusal(
            404,
            "unknown_account",
            "Unknown account",
            f"churnwatch knows no account {link.account_id!r} (any more).",
        )
    metrics.BRIEF_PAGES.labels("served").inc()
    return HTMLResponse(
        render.page("brief.html.j2", refused=False, **context(state, link, now)),
        headers=HEADERS,
    )


def context(state: AccountState, link: links.Link, now: datetime) -> dict[str, Any]:
    """What the page shows (pure)."""
    view = state.view()
    health = state.health
    people = state.people

    def who(person_id: str | None) -> str:
        if person_id is None:
            return "nobody"
        person = people.get(person_id)
        return person.name if person else person_id

    team = state.team
    account = messages.account_json(view, now)
    facts = [
        ("ARR", render.money(view.arr) or "unknown"),
        ("Tier", view.tier or "unknown"),
        ("Renewal", render.renewal_line(account) or "unknown"),
        ("CSM", who(team.csm)),
        ("Account executive", who(team.account_executive)),
        ("Renewal owner", who(team.renewal_owner)),
    ]
    return {
        "heading": view.name,
        "account": account,
        "health": {
            "score": view.score,
            "band": view.band,
            "before_score": view.before_score,
            "before_band": view.before_band,
        },
        "as_of": health.as_of.strftime("%Y-%m-%d %H:%M UTC") if health else None,
        "facts": facts,
        "reasons": list(view.reasons),
        "moves": [render.move_line(m) for m in messages.moves_json(view.moved_by, limit=8)],
        "alerts": [_alert(a) for a in sorted(state.alerts, key=_severity_order)],
        "expires": link.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
        "person": who(link.person) if link.person else None,
    }


def _severity_order(alert: Alert) -> tuple[int, str]:
    return ({"critical": 0, "warning": 1, "info": 2}.get(alert.severity, 3), alert.rule)


def _alert(alert: Alert) -> dict[str, Any]:
    state: str = alert.state
    if alert.state == "acknowledged" and alert.acknowledged_by:
        state = f"acknowledged by {alert.acknowledged_by}"
    if alert.state == "snoozed" and alert.snoozed_until:
        state = f"snoozed until {alert.snoozed_until:%Y-%m-%d %H:%M} UTC"
    return {
        "title": messages.rule_title(alert.rule),
        "severity": alert.severity,
        "icon": render.SEVERITY_ICON.get(alert.severity, ""),
        "summary": alert.summary,
        "state": state,
        "since": alert.started_at.strftime("%Y-%m-%d"),
    }
