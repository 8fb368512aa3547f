"""S7 — console pages: each page's p95 for a 200-account portfolio.

Ours: ingest, scoring, alerts and the console as real processes (``chaos.stack.Deployment``) on
the run's Kafka and PostgreSQL, a database of their own. One CSM (Maria) owns 200 accounts
(tier, ARR, renewal date), each with a week of usage events, one in ten with three urgent
tickets (an open alert); her manager (Lee) has her as a report. Once every account is scored
and the alerts are open, each page is asked by a client holding a signed session (as the
sign-in sets it) — sequential GETs on one keep-alive connection, after a warm-up: the portfolio
(200 rows with sparklines), an alerted account's page, its brief, Maria's alerts, and Lee's team
page (his report's 200 accounts). Every request of the console goes to scoring and alerts over
HTTP, as in production.

Baseline, same run, same client: each page's HTML as the console answered it, served as bytes
by a bare uvicorn app (``bench.baselines.static_pages``): no session, no backend call, no
template. The issue's target is absolute — p95 ≤ 150 ms per page — and is reported beside each
row; the ratio says what the console's work costs over serving the bytes.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, date, datetime, timedelta

import httpx

from bench import procs
from bench.context import Context
from bench.report import Row, Section
from bench.stats import percentile
from chaos.load import logins, urgent_tickets
from chaos.stack import Deployment, Endpoints, Tunings
from services.console.signin import SESSION_COOKIE, Tokens

ACCOUNTS = 200
ALERT_EVERY = 10
TARGET_MS = 150.0
MARIA = {"person_id": "p_maria", "name": "Maria Lopez", "email": "maria@example.com"}
LEAD = {"person_id": "p_lead", "name": "Lee Lead", "email": "lead@example.com"}


def accounts() -> list[dict[str, object]]:
    today = date.today()
    return [
        {
            "account_id": f"acct-{n:03d}",
            "name": f"Account {n:03d}",
            "tier": ("enterprise", "mid-market", "smb")[n % 3],
            "arr": 5_000 + 1_000 * (n % 97),
            "seats": 10 + n % 200,
            "renewal_date": (today + timedelta(days=10 + 3 * n)).isoformat(),
            "team": {"csm": "p_maria"},
        }
        for n in range(ACCOUNTS)
    ]


def events(now: datetime) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    for n in range(ACCOUNTS):
        account = f"acct-{n:03d}"
        found += logins(account, now, 1 + n % 8, every_hours=20, users=5, first_user=n)
        if n % ALERT_EVERY == 0:
            found += urgent_tickets(account, now, event_prefix="urgent", ticket_prefix=account)
    return found


async def seed(deployment: Deployment) -> None:
    keys = deployment.secrets.keys
    async with httpx.AsyncClient(base_url=deployment.service("ingest").url, timeout=60) as http:
        for path, body, scope in (
            ("/v1/people", [LEAD, {**MARIA, "manager_id": "p_lead"}], "accounts"),
            ("/v1/accounts", accounts(), "accounts"),
            ("/v1/events", events(datetime.now(UTC)), "events"),
        ):
            answer = await http.post(
                path, json=body, headers={"Authorization": f"Bearer {keys[scope]}"}
            )
            if answer.status_code != 202:
                raise RuntimeError(f"S7 seeding {path}: {answer.status_code} {answer.text[:300]}")


async def settled(deployment: Deployment, timeout_s: float = 300.0) -> None:
    """Until every account is scored and every alerted account has its alert open."""
    alerted = ACCOUNTS // ALERT_EVERY
    deadline = time.monotonic() + timeout_s
    headers = {"Authorization": f"Bearer {deployment.secrets.keys['read']}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        while True:
            scored = await http.get(
                f"{deployment.service('scoring').url}/v1/accounts",
                params={"member": "p_maria", "limit": ACCOUNTS},
            )
            rows = scored.json().get("accounts", []) if scored.status_code == 200 else []
            with_score = sum(1 for r in rows if _score(r) is not None)
            firing = await http.get(
                f"{deployment.service('alerts').url}/v1/alerts",
                params={"state": "firing", "limit": 500},
            )
            accounts_alerted = {a["account_id"] for a in firing.json().get("alerts", [])}
            if with_score >= ACCOUNTS and len(accounts_alerted) >= alerted:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"S7: after {timeout_s:.0f} s {with_score}/{ACCOUNTS} scored, "
                    f"{len(accounts_alerted)}/{alerted} alerted"
                )
            await _pause()


async def _pause() -> None:
    await asyncio.sleep(0.5)  # a poll interval, bounded by the deadline of ``settled``


def _score(row: dict[str, object]) -> object:
    health = row.get("health")
    return row.get("score", health.get("score") if isinstance(health, dict) else None)


def cookie(deployment: Deployment, person: dict[str, str]) -> dict[str, str]:
    tokens = Tokens(deployment.secrets.console_secret_key, sign_in_ttl=900, session_ttl=86_400)
    return {SESSION_COOKIE: tokens.session(person["email"], person["person_id"], person["name"])}


PAGES = (  # (name, path, who)
    ("portfolio", "/", MARIA),
    ("account", "/accounts/acct-000", MARIA),
    ("brief", "/accounts/acct-000/brief", MARIA),
    ("alerts", "/alerts", MARIA),
    ("team", "/team", LEAD),
)


async def timings(base: str, path: str, cookies: dict[str, str], n: int, warm: int) -> list[float]:
    """Milliseconds of ``n`` sequential GETs of ``path`` (after ``warm`` unmeasured ones)."""
    async with httpx.AsyncClient(base_url=base, cookies=cookies, timeout=30) as http:
        measured: list[float] = []
        for i in range(warm + n):
            started = time.perf_counter()
            answer = await http.get(path)
            elapsed = (time.perf_counter() - started) * 1000
            if answer.status_code != 200:
                raise RuntimeError(f"S7: {base}{path} answered {answer.status_code}")
            if i >= warm:
                measured.append(elapsed)
    return sorted(measured)


async def run(ctx: Context) -> Section:
    n = 200 if ctx.config.mode == "full" else 40
    warm = 20 if ctx.config.mode == "full" else 5
    home = ctx.logs / "s7"
    deployment = Deployment(
        Endpoints(ctx.infra.bootstrap_servers, ctx.infra.database_url),
        home,
        tunings=Tunings(log_level="WARNING"),
    )
    await deployment.prepare()
    rows: list[Row] = []
    details: list[str] = []
    try:
        await deployment.start()
        ctx.say(f"S7: seeding {ACCOUNTS} accounts for one CSM")
        await seed(deployment)
        await settled(deployment)
        console = await deployment.add("console").start()
        pages: dict[str, str] = {}
        async with httpx.AsyncClient(base_url=console.url, timeout=30) as http:
            for _, path, who in PAGES:
                answer = await http.get(path, cookies=cookie(deployment, who))
                if answer.status_code != 200:
                    raise RuntimeError(f"S7: {path} answered {answer.status_code}")
                pages[path] = answer.text
        portfolio_rows = pages["/"].count('<tr data-account-id="')
        if portfolio_rows != ACCOUNTS:
            raise RuntimeError(f"S7: the portfolio shows {portfolio_rows} accounts")
        pages_file = home / "pages.json"
        pages_file.write_text(json.dumps(pages), encoding="utf-8")
        bare_port = procs.free_port()
        bare = procs.server(
            "bare-pages",
            [procs.sys.executable, "-m", "bench.baselines.static_pages"],
            {"BARE_PORT": str(bare_port), "PAGES_FILE": str(pages_file)},
            home,
            port=bare_port,
        )
        with procs.started(bare.launch()):
            await bare.wait_ready()
            for name, path, who in PAGES:
                ours = await timings(console.url, path, cookie(deployment, who), n, warm)
                base = await timings(bare.url, path, {}, n, warm)
                p95, bare95 = percentile(ours, 95), percentile(base, 95)
                verdict = "met" if p95 <= TARGET_MS else "missed"
                rows.append(
                    Row(
                        f"S7 console {name} p95 (≤ {TARGET_MS:.0f} ms: {verdict})",
                        p95,
                        bare95,
                        "ms",
                        higher_is_better=False,
                        note=f"target ≤ {TARGET_MS:.0f} ms: {verdict}",
                    )
                )
                details.append(
                    f"{name} ({path}, {len(pages[path]) / 1024:.0f} KiB): p50 "
                    f"{percentile(ours, 50):.1f} ms, p95 {p95:.1f} ms, max {ours[-1]:.1f} ms; "
                    f"bare p50 {percentile(base, 50):.1f} ms, p95 {bare95:.1f} ms"
                )
                ctx.say(f"S7: {details[-1]}")
    finally:
        await deployment.stop()
    section = Section("S7 — console pages", rows=rows, how=__doc__ or "")
    section.details += [
        f"{ACCOUNTS} accounts, {ACCOUNTS // ALERT_EVERY} with an open alert; {n} measured GETs "
        f"per page after {warm} warm-up ones, sequential, one connection.",
        *details,
    ]
    return section
