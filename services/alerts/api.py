"""The HTTP API: list and filter alerts, acknowledge / snooze / resolve, manage silences, and
the one-click links.

Authenticated with API keys (``shared.auth``): ``read`` to list, ``admin`` to change. Errors
carry a machine-readable ``code``. Links need no key: the signed token is the authority, and
only ``POST`` acts (``GET`` shows a confirmation page).
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts import briefs, decide, feedback, links, messages, metrics, render, store
from services.alerts.accounts import apply, gather, refresh_messages
from services.alerts.decide import Config
from services.alerts.lifecycle import Alert, Matcher, Silence
from shared import errors
from shared.auth import ApiKeys, Caller, require
from shared.clock import Clock, utc_now

Severity = Literal["info", "warning", "critical"]
State = Literal["firing", "acknowledged", "snoozed", "resolved"]


def error(status: int, code: str, message: str) -> HTTPException:
    return errors.refusal(status, code, message)


# ---------------------------------------------------------------------------------------------
# Bodies


class MatcherBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Literal["account_id", "rule", "severity", "motion", "owner"]
    op: Literal["=", "!=", "=~", "!~"] = "="
    value: str = Field(max_length=512)

    @model_validator(mode="after")
    def _regex_compiles(self) -> "MatcherBody":
        if self.op in ("=~", "!~"):
            import re

            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return self


class SilenceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    matchers: list[MatcherBody] = Field(min_length=1, max_length=20)
    ends_at: datetime = Field(description="mandatory: when the silence expires")
    starts_at: datetime | None = None
    comment: str = Field("", max_length=2000)
    created_by: str | None = Field(None, max_length=256)


class SnoozeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float | None = Field(None, gt=0, le=90 * 86_400)
    until: datetime | None = None
    by: str | None = Field(None, max_length=256)

    @model_validator(mode="after")
    def _one_of(self) -> "SnoozeBody":
        if (self.seconds is None) == (self.until is None):
            raise ValueError("give exactly one of `seconds` or `until`")
        return self


class ActorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str | None = Field(None, max_length=256)


def alert_json(alert: Alert) -> dict[str, Any]:
    def ts(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": alert.id,
        "account_id": alert.account_id,
        "rule": alert.rule,
        "title": messages.rule_title(alert.rule),
        "motion": alert.motion,
        "severity": alert.severity,
        "state": alert.state,
        "summary": alert.summary,
        "delivery": alert.delivery,
        "started_at": ts(alert.started_at),
        "updated_at": ts(alert.updated_at),
        "notified_at": ts(alert.notified_at),
        "acknowledged_at": ts(alert.acknowledged_at),
        "acknowledged_by": alert.acknowledged_by,
        "snoozed_until": ts(alert.snoozed_until),
        "resolved_at": ts(alert.resolved_at),
        "resolved_by": alert.resolved_by,
        "resolves_at": ts(alert.resolves_at),
        "escalated_at": ts(alert.escalated_at),
        "muted": alert.muted,
        "route": alert.route.to_json(),
        "escalation_path": list(alert.escalation_path),
    }


# ---------------------------------------------------------------------------------------------
# Actions (shared by the API and the links)


class LinkUsed(Exception):
    """The one-click link already acted (a link acts once)."""


class Actions:
    def __init__(self, engine: AsyncEngine, config: Config, clock: Clock) -> None:
        self._engine = engine
        self._config = config
        self._clock = clock

    async def act(
        self,
        account_id: str,
        alert_ids: Sequence[int],
        action: decide.Action,
        by: str,
        *,
        snooze_for: timedelta | None = None,
        link: tuple[bytes, datetime] | None = None,
    ) -> list[Alert]:
        """Apply ``action`` to the alerts; returns them as they are afterwards. With ``link``
        (a token's digest and expiry) the link is used up in the same transaction, or
        :class:`LinkUsed` is raised when it already acted."""
        now = self._clock.now()
        async with self._engine.begin() as conn:
            if link is not None and not await store.use_link(conn, *link, now):
                raise LinkUsed
            await store.lock_accounts(conn, [account_id])
            states = await gather(conn, [account_id])
            silences = await store.active_silences(conn, now)
            decision = decide.on_action(
                states[account_id],
                alert_ids,
                action,
                by,
                silences,
                self._config,
                now,
                snooze_for=snooze_for,
            )
            await apply(conn, states, [decision], self._config, now=now, real_now=utc_now())
            domain = self._config.content.message_id_domain
            await refresh_messages(conn, account_id, alert_ids, domain, now=now, real_now=utc_now())
            return await store.load_alerts(conn, alert_ids)

    async def refresh(self, account_id: str, alert_ids: Sequence[int]) -> int:
        """Rewrite the Slack messages carrying the alerts with their current status."""
        now = self._clock.now()
        domain = self._config.content.message_id_domain
        async with self._engine.begin() as conn:
            await store.lock_accounts(conn, [account_id])  # rewrites of a message stay in order
            return await refresh_messages(
                conn, account_id, alert_ids, domain, now=now, real_now=utc_now()
            )

    async def feedback(
        self,
        alerts: Sequence[Alert],
        verdict: feedback.Verdict,
        by: str,
        source: feedback.Source,
        *,
        link: tuple[bytes, datetime] | None = None,
    ) -> int:
        """Record ``by``'s verdict on ``alerts`` (of one account) and rewrite the Slack messages
        that carry them; returns how many verdicts were written. With ``link`` as in
        :meth:`act`."""
        now = self._clock.now()
        written = feedback.rows(alerts, verdict, by, source, now)
        if not written:
            return 0
        async with self._engine.begin() as conn:
            if link is not None and not await store.use_link(conn, *link, now):
                raise LinkUsed
            await store.lock_accounts(conn, [alerts[0].account_id])
            await store.record_feedback(conn, written)
            domain = self._config.content.message_id_domain
            ids = [row.alert_id for row in written]
            account_id = alerts[0].account_id
            await refresh_messages(conn, account_id, ids, domain, now=now, real_now=utc_now())
        for row in written:
            metrics.FEEDBACK.labels(row.rule, verdict, source).inc()
        return len(written)

    async def account_of(self, alert_id: int) -> Alert:
        async with self._engine.connect() as conn:
            found = await store.load_alerts(conn, [alert_id])
        if not found:
            raise error(404, "not_found", f"no alert {alert_id}")
        return found[0]


# ---------------------------------------------------------------------------------------------
# Routes (module-level; what they need comes from the app, see ``install``)


@dataclass(frozen=True)
class Context:
    engine: AsyncEngine
    clock: Clock
    actions: Actions
    signer: links.LinkSigner
    silence_max: timedelta


def _context(request: Request) -> Context:
    context: Context = request.app.state.alerts
    return context


Ctx = Annotated[Context, Depends(_context)]
Admin = Annotated[Caller, Depends(require("admin"))]
READ = [Depends(require("read"))]

api = APIRouter()


def install(
    app: FastAPI,
    engine: AsyncEngine,
    config: Config,
    clock: Clock,
    api_keys: ApiKeys,
    signer: links.LinkSigner,
    silence_max: timedelta,
) -> None:
    """Serve the routes on ``app`` with these parts."""
    actions = Actions(engine, config, clock)
    app.state.alerts = Context(engine, clock, actions, signer, silence_max)
    app.state.api_keys = api_keys
    app.include_router(api)


@api.get("/v1/alerts", dependencies=READ, summary="List alerts, newest first")
async def list_alerts(
    ctx: Ctx,
    state: Annotated[list[State] | None, Query()] = None,
    account_id: Annotated[list[str] | None, Query(max_length=500)] = None,
    rule: str | None = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    motion: str | None = None,
    owner: str | None = None,
    open_only: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: int | None = None,
) -> dict[str, Any]:
    query = store.AlertQuery(
        state, account_id, rule, severity, motion, owner, open_only, limit, before_id
    )
    async with ctx.engine.connect() as conn:
        found = await store.list_alerts(conn, query)
    return {
        "alerts": [alert_json(a) for a in found],
        "next_before_id": found[-1].id if len(found) == limit else None,
    }


class TokenUseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    digest: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the token, hex")
    expires_at: datetime = Field(description="when the token expires (kept until then)")


@api.post(
    "/v1/used-tokens",
    status_code=201,
    summary="Use a single-use token (another service's: the console's sign-in links)",
    responses={409: {"description": "already used (`already_used`)"}},
)
async def use_token(ctx: Ctx, body: TokenUseBody, _caller: Admin) -> dict[str, Any]:
    """Record the token as used, once: 201 the first time, 409 ``already_used`` after. The
    same table and retention as the one-click links' (``used_links``)."""
    async with ctx.engine.begin() as conn:
        first = await store.use_link(
            conn, bytes.fromhex(body.digest), body.expires_at, ctx.clock.now()
        )
    if not first:
        raise error(409, "already_used", "this token was already used")
    return {"digest": body.digest, "used": True}


@api.get("/v1/alerts/{alert_id}", dependencies=READ, summary="One alert")
async def get_alert(ctx: Ctx, alert_id: int) -> dict[str, Any]:
    return alert_json(await ctx.actions.account_of(alert_id))


async def _act(
    ctx: Context,
    alert_id: int,
    action: decide.Action,
    by: str,
    snooze_for: timedelta | None = None,
) -> dict[str, Any]:
    alert = await ctx.actions.account_of(alert_id)
    if alert.state == "resolved":
        raise error(409, "already_resolved", f"alert {alert_id} is resolved")
    [after] = await ctx.actions.act(alert.account_id, [alert_id], action, by, snooze_for=snooze_for)
    return alert_json(after)


@api.post("/v1/alerts/{alert_id}/ack", summary="Acknowledge an alert")
async def ack(
    ctx: Ctx, alert_id: int, caller: Admin, body: ActorBody | None = None
) -> dict[str, Any]:
    return await _act(ctx, alert_id, "ack", (body and body.by) or caller.name)


@api.post("/v1/alerts/{alert_id}/snooze", summary="Snooze an alert")
async def snooze(ctx: Ctx, alert_id: int, body: SnoozeBody, caller: Admin) -> dict[str, Any]:
    now = ctx.clock.now()
    duration = (
        timedelta(seconds=body.seconds) if body.seconds is not None else body.until - now  # type: ignore[operator]
    )
    if duration <= timedelta(0):
        raise error(422, "invalid_request", "`until` must be in the future")
    return await _act(ctx, alert_id, "snooze", body.by or caller.name, duration)


@api.post("/v1/alerts/{alert_id}/resolve", summary="Resolve an alert by hand")
async def resolve(
    ctx: Ctx, alert_id: int, caller: Admin, body: ActorBody | None = None
) -> dict[str, Any]:
    return await _act(ctx, alert_id, "resolve", (body and body.by) or caller.name)


@api.get("/v1/silences", dependencies=READ, summary="Silences (active unless asked)")
async def list_silences(ctx: Ctx, include_expired: bool = False) -> dict[str, Any]:
    async with ctx.engine.connect() as conn:
        found = await store.list_silences(conn, ctx.clock.now(), include_expired=include_expired)
    return {"silences": [_silence_json(s) for s in found]}


@api.post("/v1/silences", status_code=201, summary="Create a silence (expiry required)")
async def create_silence(ctx: Ctx, body: SilenceBody, caller: Admin) -> dict[str, Any]:
    now = ctx.clock.now()
    starts = body.starts_at or now
    if body.ends_at.tzinfo is None or starts.tzinfo is None:
        raise error(422, "invalid_request", "times need a UTC offset")
    if body.ends_at <= max(now, starts):
        raise error(422, "invalid_request", "`ends_at` must be in the future, after start")
    if body.ends_at - starts > ctx.silence_max:
        raise error(
            422,
            "silence_too_long",
            f"a silence lasts at most {ctx.silence_max.total_seconds():.0f} seconds",
        )
    async with ctx.engine.begin() as conn:
        silence = await store.create_silence(
            conn,
            [Matcher(m.label, m.op, m.value) for m in body.matchers],
            starts_at=starts,
            ends_at=body.ends_at,
            created_by=body.created_by or caller.name,
            comment=body.comment,
            now=now,
        )
    return _silence_json(silence)


@api.delete("/v1/silences/{silence_id}", summary="Expire a silence now")
async def expire_silence(ctx: Ctx, silence_id: int, caller: Admin) -> dict[str, Any]:
    now = ctx.clock.now()
    async with ctx.engine.begin() as conn:
        silence = await store.expire_silence(conn, silence_id, now)
        if silence is None:
            raise error(404, "not_found", f"no active silence {silence_id}")
        await store.wake(conn, silence_id=silence_id, now=now)
    return _silence_json(silence)


# -- one-click links ---------------------------------------------------------------------------


def _link_page(
    heading: str, message: str | None, alerts: Sequence[Alert], action_label: str | None = None
) -> str:
    return render.page(
        "link.html.j2",
        heading=heading,
        message=message,
        alerts=[alert_json(a) for a in alerts],
        action_label=action_label,
    )


def _verify(ctx: Context, token: str) -> links.Link | HTMLResponse:
    try:
        return ctx.signer.verify(token, ctx.clock.now())
    except links.LinkError as exc:
        status = 410 if exc.code == "link_expired" else 403
        return HTMLResponse(
            _link_page("This link cannot be used", str(exc), []),
            status_code=status,
            headers={"X-Error-Code": exc.code},
        )


async def _load(ctx: Context, link: links.Link) -> list[Alert]:
    async with ctx.engine.connect() as conn:
        found = await store.load_alerts(conn, link.alert_ids)
    return [a for a in found if a.account_id == link.account_id]


@api.get("/brief/{token}", response_class=HTMLResponse, summary="An account's brief (signed link)")
async def brief_page(ctx: Ctx, token: str) -> HTMLResponse:
    return await briefs.serve(ctx.engine, ctx.signer, token, ctx.clock.now())


@api.get("/links/{token}", response_class=HTMLResponse, summary="Confirm a one-click link")
async def link_page(ctx: Ctx, token: str) -> HTMLResponse:
    link = _verify(ctx, token)
    if isinstance(link, HTMLResponse):
        return link
    alerts = await _load(ctx, link)
    label = links.ACTION_LABEL[link.action]
    open_alerts = [a for a in alerts if a.is_open or link.action in feedback.FEEDBACK_ACTIONS]
    return HTMLResponse(
        _link_page(
            f"{label}: {alerts[0].account_id if alerts else link.account_id}",
            None if open_alerts or link.action in links.READ_ONLY else "Already resolved.",
            alerts,
            label if open_alerts and link.action not in links.READ_ONLY else None,
        ),
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


DONE = {"ack": "Acknowledged", "snooze_1d": "Snoozed for a day", "snooze_1w": "Snoozed for a week"}


@api.post("/links/{token}", response_model=None, summary="Act on a one-click link")
async def link_act(ctx: Ctx, token: str, request: Request) -> HTMLResponse | JSONResponse:
    link = _verify(ctx, token)
    if isinstance(link, HTMLResponse):
        return link
    if link.action in links.READ_ONLY:
        raise error(405, "not_an_action", "a view link does not act")
    once = (hashlib.sha256(token.encode()).digest(), link.expires_at)
    if link.action in feedback.FEEDBACK_ACTIONS:
        return await _link_feedback(ctx, link, once, request)
    alerts = [a for a in await _load(ctx, link) if a.is_open]
    after: list[Alert] = []
    try:
        if alerts:
            after = await ctx.actions.act(
                link.account_id,
                [a.id for a in alerts if a.id],
                "ack" if link.action == "ack" else "snooze",
                f"link:{link.person or 'someone'}",
                snooze_for=None if link.action == "ack" else links.SNOOZE[link.action],
                link=once,
            )
    except LinkUsed:
        return HTMLResponse(
            _link_page(
                "This link was already used",
                "Each link acts once; the alert shows what was done.",
                alerts,
            ),
            status_code=409,
            headers={"X-Error-Code": "link_used", "Cache-Control": "no-store"},
        )
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"action": link.action, "alerts": [alert_json(a) for a in after]})
    return HTMLResponse(
        _link_page(
            DONE[link.action] if after else "Nothing to do",
            None if after else "These alerts are already resolved.",
            after,
        ),
        headers={"Cache-Control": "no-store"},
    )


async def _link_feedback(
    ctx: Context, link: links.Link, once: tuple[bytes, datetime], request: Request
) -> HTMLResponse | JSONResponse:
    """A feedback link (from an email): records the verdict, resolved alerts included."""
    alerts = await _load(ctx, link)
    verdict = feedback.FEEDBACK_ACTIONS[link.action]
    try:
        written = await ctx.actions.feedback(
            alerts, verdict, link.person or "link:someone", "email", link=once
        )
    except LinkUsed:
        return HTMLResponse(
            _link_page("This link was already used", "Your feedback was recorded.", alerts),
            status_code=409,
            headers={"X-Error-Code": "link_used", "Cache-Control": "no-store"},
        )
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"action": link.action, "feedback": written})
    return HTMLResponse(
        _link_page(
            "Thank you" if written else "Nothing to do",
            f"Recorded: {feedback.VERDICT_LABEL[verdict]}." if written else "No such alert.",
            alerts,
        ),
        headers={"Cache-Control": "no-store"},
    )


def _silence_json(silence: Silence) -> dict[str, Any]:
    return {
        "id": silence.id,
        "matchers": [store.matcher_json(m) for m in silence.matchers],
        "starts_at": silence.starts_at.isoformat(),
        "ends_at": silence.ends_at.isoformat(),
        "created_by": silence.created_by,
        "comment": silence.comment,
    }


def install_error_handlers(app: FastAPI) -> None:
    errors.install(app)  # the framework's own errors (unparsable body…) get a code too
    errors.document(app, html_errors=("/links/", "/brief/"))  # error answers, their real shape
