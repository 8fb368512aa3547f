"""The read API: an account's health and history, a portfolio by owner, the pre-call brief.

Every route needs an API key with the ``read`` scope (``shared.auth``). Errors are in
``shared.errors``' envelope, ``{"code", "message"}``: ``unauthenticated`` (401), ``forbidden``
(403), ``unknown_account`` / ``unknown_owner`` / ``not_scored`` (404), ``invalid_request`` (422).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from services.scoring import brief
from services.scoring.store import directory, read
from shared import errors
from shared.auth import ApiKeys, require
from shared.clock import Clock
from shared.events import ComponentMove, HealthSnapshot

_snapshot = msgspec.json.Decoder(HealthSnapshot)
_moves = msgspec.json.Decoder(list[ComponentMove])
_encoder = msgspec.json.Encoder()
BAND_RISK = {"red": 0, "yellow": 1, "green": 2}
HISTORY_DEFAULT_DAYS = 90
HISTORY_MAX_POINTS = 5000
SUMMARY_MAX_ACCOUNTS = 5000
SUMMARY_MAX_IDS = 500
SUMMARY_LINE_DAYS = 30


class MsgspecJSON(JSONResponse):
    """JSON through msgspec: dates and datetimes as RFC 3339, structs as objects."""

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)


def _not_found(code: str, message: str) -> HTTPException:
    return errors.refusal(404, code, message)


def install_error_handlers(app: FastAPI) -> None:
    errors.install(app)  # the framework's own errors (unknown route…) get a code too
    errors.document(app)  # every operation's error answers, in their real shape


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


Pool = Annotated[asyncpg.Pool, Depends(_pool)]


def _clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


Now = Annotated[Clock, Depends(_clock)]

api = APIRouter(prefix="/v1", tags=["health"], dependencies=[Depends(require("read"))])


def install(app: FastAPI, keys: ApiKeys, clock: Clock) -> None:
    """Serve the ``/v1`` routes on ``app``; they use the pool it keeps in ``app.state.pool``."""
    app.state.api_keys = keys
    app.state.clock = clock
    app.include_router(api)


async def _known(conn: asyncpg.Connection, account_id: str) -> None:
    if not await read.account_exists(conn, account_id):
        raise _not_found("unknown_account", f"no account {account_id!r}")


@api.get("/accounts/{account_id}/health", summary="Current health, explained")
async def get_health(pool: Pool, account_id: str) -> Response:
    async with pool.acquire() as conn:
        row = await read.current_health(conn, account_id)
        if row is None:
            await _known(conn, account_id)
            raise _not_found("not_scored", f"account {account_id!r} has no score yet")
    snapshot = _snapshot.decode(row["snapshot"].encode())
    body = {
        "account_id": account_id,
        "name": row["name"],
        "as_of": row["as_of"],
        "model_version": row["model_version"],
        "profile": row["profile"],
        "band_since": row["band_since"],
        **msgspec.structs.asdict(snapshot),
    }
    return MsgspecJSON(body)


@api.get("/accounts/{account_id}/health/history", summary="Score history in a time range")
async def get_history(
    pool: Pool,
    clock: Now,
    account_id: str,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
) -> Response:
    end = _aware(end) or clock.now()
    start = _aware(start) or end - timedelta(days=HISTORY_DEFAULT_DAYS)
    if start > end:
        raise errors.refusal(422, "invalid_range", "'from' is after 'to'")
    async with pool.acquire() as conn:
        await _known(conn, account_id)
        rows = await read.history(conn, account_id, start, end)
    points = [
        {
            "as_of": r["as_of"],
            "score": r["score"],
            "band": r["band"],
            "model_version": r["model_version"],
            "triggers": list(r["triggers"]),
            "change_id": r["change_id"],
            "reasons": _snapshot.decode(r["snapshot"].encode()).reasons,
            "moved_by": _moves.decode(r["moved_by"].encode()) if r["moved_by"] else [],
        }
        for r in rows[-HISTORY_MAX_POINTS:]
    ]
    return MsgspecJSON({"account_id": account_id, "from": start, "to": end, "points": points})


@api.get("/portfolio", summary="An owner's accounts, riskiest first")
async def get_portfolio(
    pool: Pool, clock: Now, owner: Annotated[str, Query(min_length=1, max_length=256)]
) -> Response:
    now = clock.now()
    async with pool.acquire() as conn:
        person = await read.person(conn, owner)
        rows = await read.portfolio(conn, owner, now - timedelta(days=7))
    if person is None and not rows:
        raise _not_found("unknown_owner", f"no person {owner!r} and no account owned by it")
    accounts = sorted((_portfolio_entry(r) for r in rows), key=_risk)
    return MsgspecJSON(
        {
            "owner": {
                "person_id": owner,
                "name": person["name"] if person else None,
                "active": person["active"] if person else None,
            },
            "as_of": now,
            "accounts": accounts,
        }
    )


@api.get(
    "/accounts/{account_id}/brief",
    summary="Pre-call brief (JSON, or text with ?format=text or Accept: text/plain)",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def get_brief(
    pool: Pool,
    clock: Now,
    request: Request,
    account_id: str,
    format: Literal["json", "text"] | None = None,
) -> Response:
    now = clock.now()
    async with pool.acquire() as conn:
        await _known(conn, account_id)
        record = await read.account_record(conn, account_id)
        current = await read.current_health(conn, account_id)
        changes = await read.history(conn, account_id, now - timedelta(days=30), now)
        past = await read.history(
            conn, account_id, now - timedelta(days=60), now - timedelta(days=30)
        )
        weeks = await read.weekly_usage(conn, account_id, now.date(), brief.WEEKS_OF_USAGE)
        tickets = await read.open_tickets(conn, account_id)
    composed = _compose(account_id, now, record, current, changes, past, weeks, tickets)
    if _wants_text(format, request.headers.get("accept", "")):
        return PlainTextResponse(brief.render_text(composed))
    return MsgspecJSON(composed)


def _aware(moment: datetime | None) -> datetime | None:
    """A time given without an offset is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _wants_text(format: str | None, accept: str) -> bool:
    if format is not None:
        return format == "text"
    return "text/plain" in accept and "application/json" not in accept


def _portfolio_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    score = row["score"]
    before = row["score_before"]
    trend = round(score - before, 1) if score is not None and before is not None else None
    return {
        "account_id": row["account_id"],
        "name": row["name"],
        "roles": list(row["roles"]),
        "score": score,
        "band": row["band"],
        "band_since": row["band_since"],
        "trend_7d": trend,
        "trend": _trend_word(trend),
        "top_reason": row["top_reason"],
        "partial": row["partial"],
        "stale": row["stale"],
        "renewal_date": row["renewal_date"],
        "arr": row["arr"],
    }


def _trend_word(delta: float | None) -> str:
    if delta is None:
        return "unknown"
    if delta <= -2:
        return "down"
    if delta >= 2:
        return "up"
    return "flat"


def _risk(entry: Mapping[str, Any]) -> tuple[int, float, str]:
    band = entry["band"]
    score = entry["score"]
    return (
        BAND_RISK.get(band, 3) if band else 3,
        score if score is not None else 101.0,
        entry["account_id"],
    )


def _person(person_id: str | None, name: str | None) -> brief.Person | None:
    return brief.Person(person_id=person_id, name=name) if person_id else None


def _compose(
    account_id: str,
    now: datetime,
    record: Mapping[str, Any] | None,
    current: Mapping[str, Any] | None,
    changes: list[asyncpg.Record],
    past: list[asyncpg.Record],
    weeks: list[tuple[Any, int, int]],
    tickets: list[asyncpg.Record],
) -> brief.Brief:
    r: Mapping[str, Any] = record or {}
    health = None
    if current is not None:
        snapshot = _snapshot.decode(current["snapshot"].encode())
        health = brief.Health(
            score=snapshot.score,
            band=snapshot.band,
            band_since=current["band_since"],
            as_of=current["as_of"],
            model_version=current["model_version"],
            partial=snapshot.partial,
            stale=snapshot.stale,
            missing=snapshot.missing,
            stale_inputs=snapshot.stale_inputs,
            reasons=snapshot.reasons,
        )
    usage_weeks = [brief.Week(week_start=w, usage_events=e, active_days=d) for w, e, d in weeks]
    return brief.Brief(
        account_id=account_id,
        name=r.get("name"),
        tier=r.get("tier"),
        lifecycle_stage=r.get("lifecycle_stage"),
        seats=r.get("seats"),
        arr=r.get("arr"),
        renewal_date=r.get("renewal_date"),
        days_to_renewal=brief.days_to(r.get("renewal_date"), now),
        team=brief.Team(
            csm=_person(r.get("csm"), r.get("csm_name")),
            account_executive=_person(r.get("account_executive"), r.get("account_executive_name")),
            renewal_owner=_person(r.get("renewal_owner"), r.get("renewal_owner_name")),
        ),
        as_of=now,
        health=health,
        score_30d_ago=past[-1]["score"] if past else None,
        changes_30d=[
            brief.Change(
                as_of=c["as_of"],
                score=c["score"],
                band=c["band"],
                triggers=list(c["triggers"]),
                reasons=_snapshot.decode(c["snapshot"].encode()).reasons,
                moved_by=_moves.decode(c["moved_by"].encode()) if c["moved_by"] else [],
            )
            for c in changes
            if c["triggers"]
        ],
        usage=brief.Usage(weeks=usage_weeks, trend=brief.usage_trend(usage_weeks)),
        open_tickets=[
            brief.Ticket(
                ticket_id=t["ticket_id"],
                priority=t["priority"],
                status=t["status"],
                last_action=t["last_action"],
                updated_at=t["updated_at"],
            )
            for t in tickets
        ],
    )


def _person_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("person_id", "name", "email", "manager_id", "active")}


@api.get("/people", summary="People by email (sign-in: who is this address)")
async def get_people(
    pool: Pool, email: Annotated[str, Query(min_length=3, max_length=320)]
) -> Response:
    async with pool.acquire() as conn:
        rows = await directory.people_by_email(conn, email)
    return MsgspecJSON({"people": [_person_json(r) for r in rows]})


@api.get("/people/{person_id}/reports", summary="Everyone under a manager, direct or not")
async def get_reports(pool: Pool, person_id: str) -> Response:
    async with pool.acquire() as conn:
        person = await read.person(conn, person_id)
        if person is None:
            raise _not_found("unknown_person", f"no person {person_id!r}")
        rows = await directory.reports(conn, person_id)
    reports = [{**_person_json(r), "depth": r["depth"]} for r in rows]
    return MsgspecJSON({"person_id": person_id, "reports": reports})


@api.get("/accounts", summary="Account summaries: team, health, a 30-day daily score line")
async def get_accounts(
    pool: Pool,
    clock: Now,
    member: Annotated[list[str] | None, Query(max_length=SUMMARY_MAX_IDS)] = None,
    account_id: Annotated[list[str] | None, Query(max_length=SUMMARY_MAX_IDS)] = None,
    limit: Annotated[int, Query(ge=1, le=SUMMARY_MAX_ACCOUNTS)] = 1000,
) -> Response:
    """``member`` (repeatable): accounts with one of them on the team; none: every account.
    ``account_id`` (repeatable): only these. Riskiest first (band, then score), ``limit`` at
    most — a cut keeps the riskiest."""
    since = clock.now() - timedelta(days=SUMMARY_LINE_DAYS)
    async with pool.acquire() as conn:
        rows = await directory.account_summaries(conn, member, account_id, since, limit)
    return MsgspecJSON({"accounts": [_summary(r) for r in rows], "limit": limit})


def _summary(row: Mapping[str, Any]) -> dict[str, Any]:
    line = msgspec.json.decode(row["line"]) if row["line"] else []
    return {
        **{k: v for k, v in row.items() if k != "line"},
        "line": [{"day": d, "score": s} for d, s in line],
    }
