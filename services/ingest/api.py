"""The routes: gather (authenticate, rate-limit, read the body), decide (the pure core), apply
(:class:`~services.ingest.handler.Handler`), answer.

Every route reads its raw body once and decodes it with msgspec; nothing is parsed by FastAPI.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response

from services.ingest import native, openapi, zendesk
from services.ingest.decisions import Decision, Limits, RequestRefused
from services.ingest.handler import Applied, Handler
from services.ingest.http import JSON_TYPES, SEGMENT_TYPES, json_response, read_body
from services.ingest.memberships import Memberships
from services.ingest.openapi import EventsAnswer, SegmentAnswer, WebhookAnswer
from services.ingest.segment import Kind, SegmentTranslator, write_key_in_body
from shared import errors
from shared.auth import ApiKeys, Caller, authorize, presented_key, require
from shared.clock import Clock
from shared.events import Topics
from shared.ratelimit import RateLimiter


@dataclass(frozen=True)
class ZendeskConfig:
    signing_secrets: tuple[bytes, ...]  # current first, then previous ones still accepted
    organizations: Mapping[str, str]
    max_signature_age: timedelta


@dataclass(frozen=True)
class Intake:
    """Everything the routes need, wired in ``app``."""

    topics: Topics
    limits: Limits
    api_keys: ApiKeys
    rate_limiter: RateLimiter
    handler: Handler
    memberships: Memberships
    segment: SegmentTranslator
    zendesk: ZendeskConfig
    clock: Clock  # the wall clock (scaled in the demo)
    monotonic: Callable[[], float]

    def limit(self, caller: Caller) -> None:
        wait = self.rate_limiter.take(caller.name, self.monotonic())
        if wait is not None:
            raise RequestRefused(
                429,
                "rate_limited",
                f"too many requests for API key {caller.name!r}; retry in {wait} s",
                {"Retry-After": str(wait)},
            )


def _intake(request: Request) -> Intake:
    intake: Intake = request.app.state.intake
    return intake


Ctx = Annotated[Intake, Depends(_intake)]
EventsCaller = Annotated[Caller, Depends(require("events"))]
AccountsCaller = Annotated[Caller, Depends(require("accounts"))]
WebhooksCaller = Annotated[Caller, Depends(require("webhooks"))]

api = APIRouter()


def install(app: FastAPI, intake: Intake) -> None:
    """Serve the routes on ``app`` with ``intake``'s parts."""
    app.state.intake = intake
    app.state.api_keys = intake.api_keys
    app.include_router(api)


def events_answer(applied: Applied, status: int = 202) -> Response:
    return json_response(EventsAnswer(applied.accepted, applied.rejected), status)


# -- native events -----------------------------------------------------------------------


@api.post(
    "/v1/events",
    tags=["native"],
    summary="Publish usage, ticket and survey events (one object or an array)",
    description=(
        "Good items are published even when others are refused; each refused item is "
        "reported by its index and dead-lettered with its raw bytes. 202 only once Kafka "
        "acknowledged every accepted event."
    ),
    status_code=202,
    response_class=Response,
    openapi_extra={
        **openapi.body(openapi.one_or_many("EventIn"), openapi.EVENTS_EXAMPLES),
        "security": openapi.SECURITY_KEY,
    },
    responses=openapi.answers(
        202,
        "EventsAnswer",
        {
            "accepted": 2,
            "rejected": [
                {
                    "index": 1,
                    "code": "invalid_event",
                    "message": "Object missing required field `user_id`",
                }
            ],
        },
        errors=openapi.COMMON_ERRORS,
    ),
)
async def post_events(intake: Ctx, request: Request, caller: EventsCaller) -> Response:
    intake.limit(caller)
    body = await read_body(request, intake.limits, JSON_TYPES)
    decision = native.decide_events(
        body, now=intake.clock.now(), limits=intake.limits, topics=intake.topics
    )
    applied = await intake.handler.apply(
        decision, source="native", route="POST /v1/events", caller=caller.name
    )
    return events_answer(applied)


# -- accounts and people -----------------------------------------------------------------


def record_route(
    kind: str,
    decide: Callable[..., Decision],
    put_examples: dict[str, Any],
    bulk_examples: dict[str, Any],
    model: str,
) -> None:
    plural = "accounts" if kind == "account" else "people"
    id_name = f"{kind if kind == 'account' else 'person'}_id"

    @api.put(
        f"/v1/{plural}/{{{id_name}}}",
        tags=["accounts and people"],
        summary=f"Create or replace one {kind} record (compacted topic, latest wins)",
        response_class=Response,
        openapi_extra={
            **openapi.body(openapi.schema(model), put_examples),
            "security": openapi.SECURITY_KEY,
        },
        responses=openapi.answers(
            200,
            "EventsAnswer",
            {"accepted": 1, "rejected": []},
            errors=openapi.COMMON_ERRORS,
        ),
        name=f"put_{kind}",
    )
    async def put_one(intake: Ctx, request: Request, caller: AccountsCaller) -> Response:
        intake.limit(caller)
        body = await read_body(request, intake.limits, JSON_TYPES)
        path_id = str(request.path_params[id_name])
        decision = decide(
            body,
            now=intake.clock.now(),
            limits=intake.limits,
            topics=intake.topics,
            source=caller.name,
            path_id=path_id,
        )
        applied = await intake.handler.apply(
            decision, source=plural, route=f"PUT /v1/{plural}", caller=caller.name
        )
        if applied.rejected:
            refusal = applied.rejected[0]
            return errors.error_response(422, refusal.code, refusal.message)
        return events_answer(applied, 200)

    @api.post(
        f"/v1/{plural}",
        tags=["accounts and people"],
        summary=f"Create or replace many {kind} records (each names its {id_name})",
        status_code=202,
        response_class=Response,
        openapi_extra={
            **openapi.body(openapi.one_or_many(model), bulk_examples),
            "security": openapi.SECURITY_KEY,
        },
        responses=openapi.answers(
            202,
            "EventsAnswer",
            {"accepted": 1, "rejected": []},
            errors=openapi.COMMON_ERRORS,
        ),
        name=f"post_{plural}",
    )
    async def post_many(intake: Ctx, request: Request, caller: AccountsCaller) -> Response:
        intake.limit(caller)
        body = await read_body(request, intake.limits, JSON_TYPES)
        decision = decide(
            body,
            now=intake.clock.now(),
            limits=intake.limits,
            topics=intake.topics,
            source=caller.name,
        )
        applied = await intake.handler.apply(
            decision, source=plural, route=f"POST /v1/{plural}", caller=caller.name
        )
        return events_answer(applied)


record_route(
    "account",
    native.decide_accounts,
    openapi.ACCOUNT_PUT_EXAMPLES,
    openapi.ACCOUNT_BULK_EXAMPLES,
    "AccountIn",
)
record_route(
    "person",
    native.decide_people,
    openapi.PERSON_PUT_EXAMPLES,
    openapi.PERSON_BULK_EXAMPLES,
    "PersonIn",
)

# -- Segment -----------------------------------------------------------------------------


def segment_route(kind: Kind, model: str, summary: str) -> None:
    @api.post(
        f"/v1/{kind}",
        tags=["segment"],
        summary=summary,
        response_class=Response,
        openapi_extra={
            **openapi.body(
                openapi.schema(model), openapi.SEGMENT_EXAMPLES[kind], sorted(SEGMENT_TYPES)
            ),
            "security": openapi.SECURITY_SEGMENT,
        },
        responses=openapi.answers(
            200,
            "SegmentAnswer",
            {"success": True, "accepted": 3, "ignored": 1, "rejected": []},
            errors=openapi.COMMON_ERRORS,
        ),
        name=f"segment_{kind}",
    )
    async def segment_call(intake: Ctx, request: Request) -> Response:
        body: bytes | None = None
        key = _basic_user(request) or presented_key(request)
        if key is None:
            body = await read_body(request, intake.limits, SEGMENT_TYPES)
            key = write_key_in_body(body)
        caller = _authenticate(intake.api_keys, key)
        intake.limit(caller)
        if body is None:
            body = await read_body(request, intake.limits, SEGMENT_TYPES)
        decision = intake.segment.decide(
            body,
            kind,
            now=intake.clock.now(),
            limits=intake.limits,
            topics=intake.topics,
            memberships=intake.memberships.lookup,
        )
        applied = await intake.handler.apply(
            decision, source="segment", route=f"POST /v1/{kind}", caller=caller.name
        )
        return json_response(
            SegmentAnswer(True, applied.accepted, applied.ignored, applied.rejected)
        )


segment_route("batch", "SegmentBatch", "Segment: many calls in one request")
segment_route("track", "Track", "Segment: a track call → a usage event")
segment_route("page", "Page", "Segment: a page call → a usage event (page_view)")
segment_route("screen", "Screen", "Segment: a screen call → a usage event (screen_view)")
segment_route("group", "Group", "Segment: a group call → the user belongs to the account")
segment_route("identify", "Identify", "Segment: an identify call (acknowledged, ignored)")
segment_route("alias", "Alias", "Segment: an alias call (acknowledged, ignored)")

# -- Zendesk -----------------------------------------------------------------------------


@api.post(
    "/v1/webhooks/zendesk",
    tags=["webhooks"],
    summary="Zendesk event-subscribed ticket webhook → a ticket event",
    description=(
        "Signed by Zendesk: `X-Zendesk-Webhook-Signature` is base64(HMAC-SHA256(secret, "
        "timestamp + body)) with the `X-Zendesk-Webhook-Signature-Timestamp` header. "
        "Ticket created / status changed / priority changed become ticket events; other "
        "events are acknowledged and ignored. An organization that maps to no account is "
        "refused (422 `unmapped_organization`) and dead-lettered."
    ),
    status_code=202,
    response_class=Response,
    openapi_extra={
        **openapi.body(openapi.schema("ZendeskWebhook"), openapi.ZENDESK_EXAMPLES),
        "security": openapi.SECURITY_KEY,
        "parameters": [
            {
                "name": name,
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
                "description": description,
            }
            for name, description in (
                ("X-Zendesk-Webhook-Signature", "base64 HMAC-SHA256 of timestamp + body"),
                ("X-Zendesk-Webhook-Signature-Timestamp", "when Zendesk signed (ISO 8601)"),
            )
        ],
    },
    responses=openapi.answers(
        202,
        "WebhookAnswer",
        {"accepted": 1, "ignored": 0, "rejected": []},
        errors=(*openapi.COMMON_ERRORS, 404),
    ),
)
async def zendesk_webhook(intake: Ctx, request: Request, caller: WebhooksCaller) -> Response:
    config = intake.zendesk
    if not config.signing_secrets:
        raise RequestRefused(
            404, "not_configured", "Zendesk webhooks are not configured on this deployment"
        )
    intake.limit(caller)
    body = await read_body(request, intake.limits, JSON_TYPES)
    now = intake.clock.now()
    zendesk.verify(
        secrets=config.signing_secrets,
        signature_header=request.headers.get(zendesk.SIGNATURE_HEADER),
        timestamp_header=request.headers.get(zendesk.TIMESTAMP_HEADER),
        body=body,
        now=now,
        max_age=config.max_signature_age,
    )
    decision = zendesk.decide(
        body, now=now, topics=intake.topics, organizations=config.organizations
    )
    applied = await intake.handler.apply(
        decision, source="zendesk", route="POST /v1/webhooks/zendesk", caller=caller.name
    )
    if applied.rejected:
        refusal = applied.rejected[0]
        return errors.error_response(422, refusal.code, refusal.message)
    return json_response(WebhookAnswer(applied.accepted, applied.ignored, []), 202)


def _basic_user(request: Request) -> str | None:
    """The user of ``Authorization: Basic`` (Segment's write key; the password is empty)."""
    header = request.headers.get("authorization", "")
    if header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8
        return None
    user = decoded.split(":", 1)[0]
    return user or None


def _authenticate(api_keys: ApiKeys, key: str | None) -> Caller:
    caller = api_keys.lookup(key)
    if caller is None:
        raise RequestRefused(
            401,
            "unauthenticated",
            "missing or unknown write key / API key",
            {"WWW-Authenticate": 'Basic realm="segment"'},
        )
    authorize(caller, "events")
    return caller
