"""Slack interactivity and feedback over HTTP.

- ``POST /v1/slack/interactions`` — Slack's interactivity requests (form-encoded ``payload``).
  The request must carry Slack's signature (``X-Slack-Signature``, HMAC-SHA256 of
  ``v0:<timestamp>:<body>`` under the app's signing secret, checked by ``slack_sdk``'s
  :class:`~slack_sdk.signature.SignatureVerifier`) and be at most five minutes old (the
  service's clock): a forged one answers 401 ``slack_signature_invalid``, a stale one 401
  ``slack_request_stale``. Buttons (``action_id`` → what it does, ``value`` = the message's
  alert ids, comma-separated): ``ack``, ``snooze_1d``, ``snooze_1w``, ``feedback_useful``,
  ``feedback_not_useful``, ``feedback_known``; other actions (the "Open brief" URL button) are
  ignored. The clicking Slack user is mapped to a person by the ``slack_user_id`` of the people
  records; the alerts' Slack messages are then rewritten in place (``feedback.updates``).
- ``POST /v1/alerts/{id}/feedback`` (``admin``) — ``{"verdict": "useful" | "not_useful" |
  "known", "by"?}``.
- ``GET /v1/rules/feedback?days=`` (``read``) — per-rule precision from feedback.
- ``GET /v1/feedback?since=&limit=`` (``read``) — the verdicts themselves (``churnwatch
  feedback export``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from slack_sdk.signature import Clock as SlackClock
from slack_sdk.signature import SignatureVerifier

from services.alerts import api, feedback, metrics, store
from shared.auth import Caller, require
from shared.clock import Clock

log = logging.getLogger(__name__)

MAX_REQUEST_AGE_SECONDS = 300  # Slack's advice: refuse older requests (replays)
MAX_BODY_BYTES = 1_000_000  # an interaction payload carries the whole message (≤ 50 blocks)
DRAIN_BYTES = 16 * MAX_BODY_BYTES  # read (and drop) this much of a longer body before 413
MAX_ALERTS_PER_BUTTON = 50
MAX_FEEDBACK_ROWS = 50_000


# ---------------------------------------------------------------------------------------------
# Verifying and reading Slack's request


class _ServiceClock(SlackClock):
    """The service's (injectable) clock, as the SDK's verifier reads time."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock.now().timestamp()


def verifier(signing_secret: str, clock: Clock) -> SignatureVerifier:
    return SignatureVerifier(signing_secret, clock=_ServiceClock(clock))


def refusal(
    verify: SignatureVerifier, clock: Clock, body: bytes, headers: Mapping[str, str]
) -> tuple[str, str] | None:
    """Why the request must be refused (code, message), or None when Slack signed it and it is
    fresh."""
    stamp = headers.get("x-slack-request-timestamp", "")
    signature = headers.get("x-slack-signature", "")
    if not stamp.isdigit() or not signature:
        return "slack_signature_invalid", "the request is not signed by Slack"
    if abs(clock.now().timestamp() - int(stamp)) > MAX_REQUEST_AGE_SECONDS:
        return "slack_request_stale", f"the request is over {MAX_REQUEST_AGE_SECONDS} seconds old"
    if not verify.is_valid(body, stamp, signature):
        return "slack_signature_invalid", "the request's signature does not match"
    return None


@dataclass(frozen=True)
class Click:
    action: str  # ack, snooze_1d, snooze_1w, feedback_*
    alert_ids: tuple[int, ...]


@dataclass(frozen=True)
class Interaction:
    kind: str  # block_actions, …
    user_id: str
    clicks: tuple[Click, ...]
    ignored: int  # actions that are not ours (URL buttons)


KNOWN_ACTIONS = frozenset({*feedback.ALERT_ACTIONS, *feedback.FEEDBACK_ACTIONS})


def _invalid(where: str, why: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("body", *where.split(".")), "msg": why, "type": "value_error"}]
    )


def _alert_ids(value: Any, where: str) -> tuple[int, ...]:
    parts = str(value or "").split(",")
    if not all(p.strip().isdigit() for p in parts):
        raise _invalid(where, "expected alert ids, comma-separated (e.g. '12,13')")
    ids = tuple(dict.fromkeys(int(p) for p in parts))
    if len(ids) > MAX_ALERTS_PER_BUTTON:
        raise _invalid(where, f"at most {MAX_ALERTS_PER_BUTTON} alert ids")
    return ids


def parse(body: bytes) -> Interaction:
    """Slack's form-encoded ``payload``; raises a 422 naming the field and why."""
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise _invalid("payload", "the body is not UTF-8") from None
    raw = form.get("payload", [""])[0]
    if not raw:
        raise _invalid("payload", "missing: Slack sends a form field `payload`")
    try:
        payload = json.loads(raw)
    except ValueError:
        raise _invalid("payload", "not JSON") from None
    if not isinstance(payload, dict):
        raise _invalid("payload", "not a JSON object")
    kind = str(payload.get("type") or "")
    user = payload.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    if kind != "block_actions":
        return Interaction(kind, str(user_id or ""), (), 0)
    if not isinstance(user_id, str) or not user_id:
        raise _invalid("payload.user.id", "missing")
    actions = payload.get("actions")
    if not isinstance(actions, list):
        raise _invalid("payload.actions", "expected a list")
    clicks, ignored = [], 0
    for i, action in enumerate(actions):
        action_id = action.get("action_id") if isinstance(action, dict) else None
        if action_id not in KNOWN_ACTIONS:
            ignored += 1
            continue
        assert isinstance(action, dict)
        assert isinstance(action_id, str)
        clicks.append(
            Click(action_id, _alert_ids(action.get("value"), f"payload.actions.{i}.value"))
        )
    return Interaction(kind, user_id, tuple(clicks), ignored)


# ---------------------------------------------------------------------------------------------
# Routes


@dataclass(frozen=True)
class Slack:
    """What the interactivity route needs (``verify`` is None: interactivity is off)."""

    verify: SignatureVerifier | None
    clock: Clock


def _slack(request: Request) -> Slack:
    slack: Slack = request.app.state.slack
    return slack


Ctx = Annotated[api.Context, Depends(api._context)]
SlackCtx = Annotated[Slack, Depends(_slack)]
Admin = Annotated[Caller, Depends(require("admin"))]
READ = [Depends(require("read"))]

router = APIRouter()


def install(app: FastAPI, signing_secret: str | None, clock: Clock) -> None:
    """Serve the interactivity and feedback routes (after :func:`api.install`)."""
    app.state.slack = Slack(verifier(signing_secret, clock) if signing_secret else None, clock)
    app.include_router(router)


@router.post(
    "/v1/slack/interactions",
    summary="Slack's interactivity requests (signed by Slack)",
    status_code=200,
    response_class=Response,
)
async def slack_interactions(request: Request, ctx: Ctx, slack: SlackCtx) -> Response:
    body = await _body(request)  # read first: an answer before the body resets the connection
    if slack.verify is None:
        raise api.error(404, "slack_interactivity_off", "ALERTS_SLACK_SIGNING_SECRET is not set")
    refused = refusal(slack.verify, slack.clock, body, request.headers)
    if refused is not None:
        stale = refused[0] == "slack_request_stale"
        metrics.SLACK_INTERACTIONS.labels(
            "none", "refused_stale" if stale else "refused_forged"
        ).inc()
        log.warning("refused a Slack interactivity request", extra={"code": refused[0]})
        raise api.error(401, *refused)
    try:
        interaction = parse(body)
    except RequestValidationError:
        metrics.SLACK_INTERACTIONS.labels("none", "invalid").inc()
        raise
    if interaction.ignored:
        metrics.SLACK_INTERACTIONS.labels("other", "ignored").inc(interaction.ignored)
    if interaction.clicks:
        person = None
        async with ctx.engine.connect() as conn:
            person = await store.person_by_slack_id(conn, interaction.user_id)
        for click in interaction.clicks:
            outcome = await _click(ctx, click, person.person_id if person else None, interaction)
            metrics.SLACK_INTERACTIONS.labels(click.action, outcome).inc()
            log.info(
                "slack interaction",
                extra={
                    "action": click.action,
                    "alert_ids": list(click.alert_ids),
                    "slack_user": interaction.user_id,
                    "person_id": person.person_id if person else None,
                    "outcome": outcome,
                },
            )
    return Response(status_code=200)


async def _body(request: Request) -> bytes:
    """The body, kept up to ``MAX_BODY_BYTES``; a longer one is refused (413) once read to its
    end, so the client gets the answer, or past ``DRAIN_BYTES`` by closing the connection."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > DRAIN_BYTES:
            break
        if size <= MAX_BODY_BYTES:
            chunks.append(chunk)
    if size > MAX_BODY_BYTES:
        raise api.error(413, "body_too_large", f"at most {MAX_BODY_BYTES} bytes")
    return b"".join(chunks)


async def _click(
    ctx: api.Context, click: Click, person_id: str | None, interaction: Interaction
) -> str:
    """Carry out one button; returns the outcome for the metrics."""
    async with ctx.engine.connect() as conn:
        found = await store.load_alerts(conn, click.alert_ids)
    if not found:
        return "not_found"
    account_id = found[0].account_id
    alerts = [a for a in found if a.account_id == account_id]  # one message, one account
    verdict = feedback.FEEDBACK_ACTIONS.get(click.action)
    if verdict is not None:
        by = person_id or f"slack:{interaction.user_id}"
        await ctx.actions.feedback(alerts, verdict, by, "slack")
        return "done"
    open_ids = [a.id for a in alerts if a.is_open and a.id is not None]
    by = f"slack:{person_id or interaction.user_id}"
    if open_ids:
        await ctx.actions.act(
            account_id,
            open_ids,
            "ack" if click.action == "ack" else "snooze",
            by,
            snooze_for=feedback.SNOOZES.get(click.action),
        )
        return "done"
    await ctx.actions.refresh(account_id, [a.id for a in alerts if a.id is not None])
    return "already_resolved"


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: feedback.Verdict
    by: str | None = Field(None, min_length=1, max_length=256)


@router.post("/v1/alerts/{alert_id}/feedback", summary="Mark an alert useful, not useful or known")
async def give_feedback(
    ctx: Ctx, alert_id: int, body: FeedbackBody, caller: Admin
) -> dict[str, Any]:
    alert = await ctx.actions.account_of(alert_id)
    by = body.by or f"api:{caller.name}"
    await ctx.actions.feedback([alert], body.verdict, by, "api")
    async with ctx.engine.connect() as conn:
        given = await store.feedback_for(conn, [alert_id])
    return {"alert": api.alert_json(alert), "feedback": [_feedback_json(f) for f in given]}


@router.get("/v1/rules/feedback", dependencies=READ, summary="Per-rule precision from feedback")
async def rules_feedback(
    ctx: Ctx, days: Annotated[float, Query(gt=0, le=3650)] = feedback.WINDOW.days
) -> dict[str, Any]:
    since = ctx.clock.now() - timedelta(days=days)
    async with ctx.engine.connect() as conn:
        figures = await store.rule_feedback(conn, since)
    return {"since": since.isoformat(), "rules": [feedback.rule_json(f) for f in figures]}


@router.get("/v1/feedback", dependencies=READ, summary="The verdicts given, oldest first")
async def list_feedback(
    ctx: Ctx,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_FEEDBACK_ROWS)] = 1000,
) -> dict[str, Any]:
    if since is not None and since.tzinfo is None:
        raise _invalid_query("since", "needs a UTC offset")
    async with ctx.engine.connect() as conn:
        found = await store.list_feedback(conn, since, limit + 1)
    return {
        "feedback": [_feedback_json(f) for f in found[:limit]],
        "truncated": len(found) > limit,
    }


def _invalid_query(where: str, why: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", where), "msg": why, "type": "value_error"}])


def _feedback_json(row: store.FeedbackRow) -> dict[str, Any]:
    return {
        "alert_id": row.alert_id,
        "account_id": row.account_id,
        "rule": row.rule,
        "verdict": row.verdict,
        "given_by": row.given_by,
        "source": row.source,
        "given_at": row.given_at.isoformat(),
    }
