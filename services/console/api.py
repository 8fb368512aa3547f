"""The console's routes: sign-in and sign-out, the pages (portfolio, account, brief, alerts,
team) and the alert actions (acknowledge, snooze, feedback) — module-level functions; what they
need is in ``app.state.console`` (:func:`install`).

Pages answer HTML. A page asked for without a session redirects (303) to the sign-in page and
back after it. Every refusal is a page saying why, with its machine code in the page and in the
``X-Error-Code`` header; a client asking for JSON gets the usual envelope (``shared.errors``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

import aiosmtplib
from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.console import charts, limits, metrics, permissions, signin, views
from services.console.backends import BackendDown, BackendError, Backends
from services.console.identity import Directory, person_of, viewer_of
from services.console.permissions import Person, Viewer
from services.console.settings import ConsoleSettings
from shared import errors, mail
from shared.clock import Clock

TEMPLATES = Path(__file__).resolve().parent / "templates"
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
SNOOZE_DAYS = (1, 7)
HISTORY_DAYS = 90
Verdict = Literal["useful", "not_useful", "known"]
log = logging.getLogger(__name__)


class SignInRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


@dataclass(frozen=True)
class Context:
    settings: ConsoleSettings
    backends: Backends
    directory: Directory
    tokens: signin.Tokens
    clock: Clock
    env: Environment
    limits: limits.SignInLimits


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = views.money
    env.filters["days_to"] = views.days_to
    env.filters["when"] = lambda v: (views.parse_time(v) or "—") if v else "—"
    return env


def _context(request: Request) -> Context:
    context: Context = request.app.state.console
    return context


Ctx = Annotated[Context, Depends(_context)]


async def _viewer(request: Request, ctx: Ctx) -> Viewer:
    viewer = await viewer_of(request, ctx.directory)
    if viewer is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(signin.safe_next(path) if request.method == "GET" else "/")
    return viewer


Me = Annotated[Viewer, Depends(_viewer)]
router = APIRouter()


def install(app: FastAPI, context: Context) -> None:
    app.state.console = context
    app.include_router(router)
    app.add_exception_handler(SignInRequired, _to_sign_in)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _refused)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _refused)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(BackendDown, _backend_down)  # type: ignore[arg-type]
    app.add_exception_handler(BackendError, _backend_error)  # type: ignore[arg-type]
    errors.document(app, html_errors=("/",))


# ---------------------------------------------------------------------------------------------
# Answers


def page(
    ctx: Context, request: Request, template: str, status: int = 200, **values: Any
) -> HTMLResponse:
    body = ctx.env.get_template(template).render(request=request, **values)
    return HTMLResponse(body, status_code=status)


def refusal(status: int, code: str, message: str) -> HTTPException:
    return errors.refusal(status, code, message)


def error_page(request: Request, status: int, code: str, message: str) -> Response:
    metrics.REFUSALS.labels(code).inc()
    route = getattr(request.scope.get("route"), "path", "unmatched")  # never the raw path:
    log.info("refused", extra={"code": code, "status": status, "route": route})  # tokens
    accept = request.headers.get("accept", "")
    headers = {"X-Error-Code": code}
    if "application/json" in accept and "text/html" not in accept:
        return errors.error_response(status, code, message, headers)
    ctx: Context = request.app.state.console
    viewer = getattr(request.state, "viewer", None)
    body = ctx.env.get_template("error.html.j2").render(
        request=request, status=status, code=code, message=message, viewer=viewer
    )
    return HTMLResponse(body, status_code=status, headers=headers)


async def _refused(request: Request, exc: StarletteHTTPException) -> Response:
    detail: Any = exc.detail
    if isinstance(detail, dict) and "code" in detail:
        code, message = str(detail["code"]), str(detail["message"])
    else:
        code, message = errors.CODES.get(exc.status_code, f"http_{exc.status_code}"), str(detail)
    return error_page(request, exc.status_code, code, message)


async def _invalid(request: Request, exc: RequestValidationError) -> Response:
    items = errors.invalid_items(exc)
    where = f": {items[0].where}: {items[0].why}" if items else ""
    return error_page(request, 422, "invalid_request", f"the request is not valid{where}")


async def _backend_down(request: Request, exc: BackendDown) -> Response:
    message = f"the {exc.service} service does not answer; try again in a minute"
    return error_page(request, 503, "backend_unavailable", message)


async def _backend_error(request: Request, exc: BackendError) -> Response:
    if exc.status == 409:
        return error_page(request, 409, exc.code, exc.message)
    if exc.status in (404, 422):  # an id the service does not know or cannot use: not found
        return error_page(request, 404, "not_found", "no such page among yours")
    return error_page(request, 502, "backend_error", f"{exc.service} answered {exc.code}")


async def _to_sign_in(request: Request, exc: SignInRequired) -> Response:
    return RedirectResponse(f"/sign-in?next={quote(exc.next_path, safe='')}", status_code=303)


def _check_csrf(viewer: Viewer, given: str | None) -> None:
    if not signin.csrf_ok(viewer.csrf, given):
        raise refusal(403, "csrf_failed", "the form's security token is missing or wrong")


def _set_cookie(ctx: Context, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        secure=not ctx.settings.local_dev,
        samesite="lax",
        path="/",
    )


# ---------------------------------------------------------------------------------------------
# Sign-in


def _form_page(
    ctx: Context, request: Request, template: str, status: int = 200, **values: Any
) -> HTMLResponse:
    """A page with a form posted before there is a session: a double-submit CSRF cookie."""
    token = request.cookies.get(signin.FORM_COOKIE) or secrets.token_urlsafe(24)
    response = page(ctx, request, template, status, form_csrf=token, viewer=None, **values)
    _set_cookie(ctx, response, signin.FORM_COOKIE, token, 3600)
    return response


def _check_form_csrf(request: Request, given: str) -> None:
    if not signin.csrf_ok(request.cookies.get(signin.FORM_COOKIE, ""), given):
        raise refusal(403, "csrf_failed", "the form's security token is missing or wrong")


@router.get("/sign-in", response_class=HTMLResponse, summary="The sign-in page")
async def sign_in_page(ctx: Ctx, request: Request, next: str | None = None) -> HTMLResponse:
    return _form_page(ctx, request, "sign_in.html.j2", next=signin.safe_next(next))


@router.post(
    "/sign-in",
    response_class=HTMLResponse,
    summary="Email a sign-in link",
    responses={
        429: {
            "description": "`too_many_sign_in_requests`: past the limit per address or per"
            " client (a page; `Retry-After` says how many seconds to wait)",
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
    },
)
async def ask_for_link(
    ctx: Ctx,
    request: Request,
    email: Annotated[str, Form(max_length=320)],
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=signin.MAX_NEXT)] = "/",
) -> Response:
    _check_form_csrf(request, csrf)
    now = ctx.clock.now().timestamp()
    client = limits.client_address(request, ctx.directory.proxies)
    email = email.strip().lower()
    limited = ctx.limits.client(client, now)
    if limited is None and not EMAIL.match(email):
        raise refusal(422, "invalid_email", "this is not an email address")
    limited = limited or ctx.limits.email(email, now)
    if limited is not None:
        return _too_many(request, limited, email, client)
    known = email in ctx.directory.admins or await person_of(ctx.directory, email) is not None
    link, outcome = None, "unknown_email"
    if known:
        link = signin.link_url(ctx.settings.public_url, ctx.tokens.sign_in(email, next))
        outcome = await _send_link(ctx.settings, email, link)
    metrics.SIGN_INS.labels(outcome).inc()
    log.info("sign-in link asked", extra={"outcome": outcome})  # neither the address nor link
    shown = link if ctx.settings.local_dev and not ctx.settings.smtp_host else None
    return page(ctx, request, "sign_in_sent.html.j2", email=email, link=shown, viewer=None)


def _too_many(request: Request, limited: limits.Limited, email: str, client: str) -> Response:
    metrics.SIGN_IN_LIMITED.labels(limited.scope).inc()
    log.warning(
        "sign-in requests limited",
        extra={
            "scope": limited.scope,
            "email_sha256": limits.email_tag(email),  # never the address itself
            "client": client,
            "retry_after": limited.retry_after,
        },
    )
    minutes = max(1, round(limited.retry_after / 60))
    answer = error_page(
        request,
        429,
        "too_many_sign_in_requests",
        f"too many sign-in links were asked for: try again in about {minutes} minute"
        + ("s" if minutes != 1 else ""),
    )
    answer.headers["Retry-After"] = str(limited.retry_after)
    return answer


async def _send_link(settings: ConsoleSettings, email: str, link: str) -> str:
    server = settings.smtp_server()
    if server is None:
        return "no_smtp"
    message = signin.mail(settings.email_from, email, link, settings.sign_in_ttl_seconds)
    try:
        await mail.send(server, message)
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        log.warning("sign-in link not sent", extra={"error": f"{type(exc).__name__}: {exc}"[:200]})
        return "mail_failed"
    return "link_sent"


def _read_link(ctx: Context, token: str) -> signin.SignIn:
    try:
        return ctx.tokens.read_sign_in(token)
    except signin.LinkExpired:
        metrics.SIGN_INS.labels("expired").inc()
        raise refusal(
            410, "link_expired", "this sign-in link has expired: ask for a new one"
        ) from None
    except signin.LinkInvalid:
        metrics.SIGN_INS.labels("invalid").inc()
        raise refusal(400, "link_invalid", "this is not a valid sign-in link") from None


@router.get("/sign-in/{token}", response_class=HTMLResponse, summary="Confirm a sign-in link")
async def confirm_link(ctx: Ctx, request: Request, token: str) -> HTMLResponse:
    link = _read_link(ctx, token)
    return _form_page(ctx, request, "sign_in_continue.html.j2", email=link.email, token=token)


@router.post("/sign-in/{token}", response_class=HTMLResponse, summary="Sign in with a link")
async def use_link(
    ctx: Ctx, request: Request, token: str, csrf: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    _check_form_csrf(request, csrf)
    link = _read_link(ctx, token)
    if not await ctx.backends.use_token(link.digest, link.expires_at):
        metrics.SIGN_INS.labels("used").inc()
        raise refusal(410, "link_used", "this sign-in link was already used: ask for a new one")
    person = await person_of(ctx.directory, link.email)
    if person is None and link.email not in ctx.directory.admins:
        metrics.SIGN_INS.labels("unknown_email").inc()
        raise refusal(403, "unknown_person", "this address is no longer in the directory")
    person_id = person["person_id"] if person else None
    name = person["name"] if person else link.email
    response = RedirectResponse(link.next, status_code=303)
    cookie = ctx.tokens.session(link.email, person_id, name)
    _set_cookie(ctx, response, signin.SESSION_COOKIE, cookie, int(ctx.tokens.session_ttl))
    response.delete_cookie(signin.FORM_COOKIE, path="/")
    metrics.SIGN_INS.labels("signed_in").inc()
    log.info("signed in", extra={"person_id": person_id, "admin": person_id is None})
    return response


@router.post("/sign-out", summary="Sign out")
async def sign_out(
    ctx: Ctx, viewer: Me, csrf: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    _check_csrf(viewer, csrf)
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(signin.SESSION_COOKIE, path="/")
    metrics.SIGN_INS.labels("signed_out").inc()
    return response


# ---------------------------------------------------------------------------------------------
# Pages


def _today(ctx: Context) -> date:
    return ctx.clock.now().date()


async def _mine(ctx: Context, viewer: Viewer, **kw: Any) -> list[dict[str, Any]]:
    scope = permissions.scope(viewer)
    accounts = await ctx.backends.accounts(scope, limit=ctx.settings.max_accounts, **kw)
    return [a for a in accounts if permissions.may_see(viewer, a)]


async def _account(ctx: Context, viewer: Viewer, account_id: str) -> dict[str, Any]:
    """The account if the viewer may see it; otherwise 404, as for an unknown account."""
    found = await _mine(ctx, viewer, account_ids=[account_id])
    if not found:
        raise refusal(404, "not_found", f"no account {account_id!r} among yours")
    return found[0]


@router.get("/", response_class=HTMLResponse, summary="My portfolio")
async def portfolio_page(
    ctx: Ctx,
    request: Request,
    viewer: Me,
    band: Annotated[list[Literal["red", "yellow", "green", "none"]] | None, Query()] = None,
    tier: Annotated[str | None, Query(max_length=64)] = None,
    renewal: Annotated[int | None, Query(ge=1, le=366)] = None,
) -> HTMLResponse:
    filters = views.Filters(frozenset(band or ()), tier or None, renewal)
    accounts = await _mine(ctx, viewer)
    alerts = await ctx.backends.alerts([a["account_id"] for a in accounts]) if accounts else []
    shown = views.portfolio(accounts, alerts, filters, _today(ctx))
    return page(
        ctx,
        request,
        "portfolio.html.j2",
        viewer=viewer,
        p=shown,
        filters=filters,
        windows=views.RENEWAL_WINDOWS,
    )


@router.get("/accounts/{account_id}", response_class=HTMLResponse, summary="An account")
async def account_page(ctx: Ctx, request: Request, viewer: Me, account_id: str) -> HTMLResponse:
    account = await _account(ctx, viewer, account_id)
    now = ctx.clock.now()
    health, points, brief, alerts = await asyncio.gather(
        ctx.backends.health(account_id),
        ctx.backends.history(account_id, now, HISTORY_DAYS),
        ctx.backends.brief(account_id),
        ctx.backends.alerts([account_id], open_only=False, limit=100),
    )
    start = now - timedelta(days=HISTORY_DAYS)
    line = [(t, float(p["score"])) for p in points if (t := views.parse_time(p["as_of"]))]
    markers = [
        charts.Marker(t, a["severity"], a["rule"])
        for a in alerts
        if (t := views.parse_time(a["started_at"])) and t >= start
    ]
    weeks = [
        (w["week_start"], int(w["usage_events"]))
        for w in (brief or {}).get("usage", {}).get("weeks", [])
    ]
    live, snoozed = views.split_alerts(alerts)
    return page(
        ctx,
        request,
        "account.html.j2",
        viewer=viewer,
        account=account,
        row=views.row(account, alerts, now.date()),
        health=health,
        brief=brief or {},
        history_svg=charts.history(line, markers, start, now),
        usage_svg=charts.usage_bars(weeks),
        alerts=live + snoozed,
        resolved=[a for a in alerts if a["state"] == "resolved"][:10],
        snooze_days=SNOOZE_DAYS,
    )


@router.get("/accounts/{account_id}/brief", response_class=HTMLResponse, summary="Pre-call brief")
async def brief_page(ctx: Ctx, request: Request, viewer: Me, account_id: str) -> HTMLResponse:
    account = await _account(ctx, viewer, account_id)
    brief = await ctx.backends.brief(account_id)
    if brief is None:
        raise refusal(404, "not_found", f"no brief for account {account_id!r}")
    weeks = views.usage_weeks(brief)
    return page(
        ctx,
        request,
        "brief.html.j2",
        viewer=viewer,
        account=account,
        brief=brief,
        usage_svg=charts.usage_bars(weeks),
    )


@router.get("/alerts", response_class=HTMLResponse, summary="My alerts: open and snoozed")
async def alerts_page(ctx: Ctx, request: Request, viewer: Me) -> HTMLResponse:
    accounts = await _mine(ctx, viewer)
    names = {a["account_id"]: a.get("name") or a["account_id"] for a in accounts}
    alerts = await ctx.backends.alerts(list(names)) if names else []
    live, snoozed = views.split_alerts(alerts)
    return page(
        ctx,
        request,
        "alerts.html.j2",
        viewer=viewer,
        live=live,
        snoozed=snoozed,
        names=names,
        snooze_days=SNOOZE_DAYS,
    )


@router.get("/team", response_class=HTMLResponse, summary="A manager's team")
async def team_page(ctx: Ctx, request: Request, viewer: Me) -> HTMLResponse:
    if not permissions.may_see_team_page(viewer):
        raise refusal(404, "not_found", "the team page is for managers")
    accounts = await _mine(ctx, viewer)
    alerts = await ctx.backends.alerts([a["account_id"] for a in accounts]) if accounts else []
    people = list(viewer.reports)
    if viewer.admin:
        known = {p.person_id for p in people}
        people += [
            Person(str(a["csm"]), a.get("csm_name") or str(a["csm"]))
            for a in {a["csm"]: a for a in accounts if a.get("csm")}.values()
            if a["csm"] not in known
        ]
    if viewer.person_id:
        people.append(Person(viewer.person_id, viewer.name))
    rows = views.team(people, accounts, alerts)
    return page(ctx, request, "team.html.j2", viewer=viewer, rows=rows)


# ---------------------------------------------------------------------------------------------
# Actions on alerts (as the signed-in person, through alerts' API)


async def _visible_alert(ctx: Context, viewer: Viewer, alert_id: int) -> Mapping[str, Any]:
    alert = await ctx.backends.alert(alert_id)
    if alert is None:
        raise refusal(404, "not_found", f"no alert {alert_id} among yours")
    await _account(ctx, viewer, str(alert["account_id"]))
    return alert


@router.post("/alerts/{alert_id}/ack", summary="Acknowledge an alert")
async def ack(
    ctx: Ctx,
    viewer: Me,
    alert_id: int,
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=signin.MAX_NEXT)] = "/alerts",
) -> Response:
    _check_csrf(viewer, csrf)
    await _visible_alert(ctx, viewer, alert_id)
    await ctx.backends.act(alert_id, "ack", viewer.acts_as)
    metrics.ACTIONS.labels("ack", "done").inc()
    return RedirectResponse(signin.safe_next(next), status_code=303)


@router.post("/alerts/{alert_id}/snooze", summary="Snooze an alert")
async def snooze(
    ctx: Ctx,
    viewer: Me,
    alert_id: int,
    days: Annotated[int, Form(ge=1, le=7)],
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=signin.MAX_NEXT)] = "/alerts",
) -> Response:
    _check_csrf(viewer, csrf)
    if days not in SNOOZE_DAYS:
        raise refusal(422, "invalid_request", f"snooze for one of {SNOOZE_DAYS} days")
    await _visible_alert(ctx, viewer, alert_id)
    await ctx.backends.act(alert_id, "snooze", viewer.acts_as, days * 86_400.0)
    metrics.ACTIONS.labels("snooze", "done").inc()
    return RedirectResponse(signin.safe_next(next), status_code=303)


@router.post("/alerts/{alert_id}/feedback", summary="Say whether an alert was useful")
async def feedback(
    ctx: Ctx,
    viewer: Me,
    alert_id: int,
    verdict: Annotated[Verdict, Form()],
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=signin.MAX_NEXT)] = "/alerts",
) -> Response:
    _check_csrf(viewer, csrf)
    await _visible_alert(ctx, viewer, alert_id)
    await ctx.backends.feedback(alert_id, verdict, viewer.acts_as)
    metrics.ACTIONS.labels(f"feedback_{verdict}", "done").inc()
    return RedirectResponse(signin.safe_next(next), status_code=303)
