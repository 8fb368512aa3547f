"""One churnwatch with its console for the browser tests: ingest, scoring, alerts and the console
as real processes (``chaos.stack.Deployment``) on this session's Kafka and PostgreSQL, with the
Slack and SMTP sinks; two teams of people and accounts seeded through ingest, and urgent tickets
that open an alert on some of them."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from chaos.load import logins, urgent_tickets
from chaos.stack import Deployment, Service
from devstack.sinks import SmtpSink

T = TypeVar("T")

MARIA = "maria@example.com"
OMAR = "omar@example.com"
LEAD = "lead@example.com"
PEOPLE: list[dict[str, object]] = [
    {"person_id": "p_lead", "name": "Lee Lead", "email": LEAD},
    {"person_id": "p_other_lead", "name": "Olga Other", "email": "olga@example.com"},
    {"person_id": "p_maria", "name": "Maria Lopez", "email": MARIA, "manager_id": "p_lead"},
    {"person_id": "p_omar", "name": "Omar Haddad", "email": OMAR, "manager_id": "p_other_lead"},
]
# Maria's accounts (each gets an alert); globex is Omar's, on another team (an alert too).
ACCOUNTS: list[dict[str, object]] = [
    {"account_id": "acme", "name": "Acme Corp", "tier": "enterprise", "arr": 120000,
     "seats": 250, "renewal_date": "2027-01-15", "team": {"csm": "p_maria"}},
    {"account_id": "initech", "name": "Initech", "tier": "mid-market", "arr": 48000,
     "seats": 60, "team": {"csm": "p_maria"}},
    {"account_id": "hooli", "name": "Hooli", "tier": "smb", "arr": 9000, "seats": 12,
     "team": {"csm": "p_maria"}},
    {"account_id": "globex", "name": "Globex", "tier": "enterprise", "arr": 200000,
     "seats": 400, "team": {"csm": "p_omar"}},
]  # fmt: skip
ALERTED = ("acme", "initech", "hooli", "globex")
LINK = re.compile(r"https?://\S+/sign-in/[A-Za-z0-9._%\-]+")


async def until(check: Callable[[], Awaitable[T | None]], *, timeout_s: float, what: str) -> T:
    """``check``'s first truthy answer, polled until the deadline (then it fails, saying what)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what}")
        await asyncio.sleep(0.1)  # a poll interval, bounded by the deadline above


@dataclass
class Console:
    deployment: Deployment
    service: Service

    @property
    def url(self) -> str:
        return self.service.url

    @property
    def smtp(self) -> SmtpSink:
        assert self.deployment.smtp is not None
        return self.deployment.smtp

    def key(self, scope: str) -> str:
        return self.deployment.secrets.keys[scope]

    async def alerts_api(self, path: str, **params: Any) -> Any:
        async with httpx.AsyncClient(
            base_url=self.deployment.service("alerts").url,
            headers={"Authorization": f"Bearer {self.key('read')}"},
            timeout=10,
        ) as http:
            answer = await http.get(path, params=params)
            answer.raise_for_status()
            return answer.json()

    async def open_alert(self, account_id: str) -> dict[str, Any] | None:
        body = await self.alerts_api("/v1/alerts", account_id=account_id)
        firing = [a for a in body["alerts"] if a["state"] == "firing"]
        return firing[0] if firing else None

    async def link_mailed_to(self, email: str, after: int) -> str:
        """The sign-in link in the first mail to ``email`` among those received after the
        first ``after`` ones."""

        async def mailed() -> str | None:
            for mail in self.smtp.accepted()[after:]:
                if email in mail.rcpt_to:
                    body = mail.message.get_body(("plain",))
                    assert body is not None
                    found = LINK.search(body.get_content())
                    assert found, body.get_content()
                    return found.group(0)
            return None

        return await until(mailed, timeout_s=20, what=f"a sign-in email to {email}")


async def seed(deployment: Deployment) -> None:
    """People and accounts through ingest, then three urgent tickets on each alerted account
    and a little usage on every account (so each has a score)."""
    ingest = deployment.service("ingest").url
    now = datetime.now(UTC)
    async with httpx.AsyncClient(base_url=ingest, timeout=30) as http:
        auth = {"Authorization": f"Bearer {deployment.secrets.keys['accounts']}"}
        for path, body in (("/v1/people", PEOPLE), ("/v1/accounts", ACCOUNTS)):
            answer = await http.post(path, json=body, headers=auth)
            assert answer.status_code == 202, answer.text
            assert not answer.json().get("rejected"), answer.text
        events: list[dict[str, object]] = []
        for account in ACCOUNTS:
            account_id = str(account["account_id"])
            count = 4 + len(account_id) % 5  # at most 135 h old (the limit: 7 days)
            events += logins(account_id, now, count, every_hours=19, users=3)
            if account_id in ALERTED:
                events += urgent_tickets(
                    account_id, now, event_prefix="urgent", ticket_prefix=account_id
                )
        auth = {"Authorization": f"Bearer {deployment.secrets.keys['events']}"}
        answer = await http.post("/v1/events", json=events, headers=auth)
        assert answer.status_code == 202, answer.text
