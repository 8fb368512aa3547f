"""The OpenAPI description of the routes: request bodies (from the msgspec input models),
responses, examples and security schemes.

Routes read their bodies as raw bytes (decoded once, by msgspec), so FastAPI cannot infer the
request schemas; each route declares its body with :func:`body` and its answers with
:func:`answers`, and :func:`install` adds the msgspec models' schemas to the document.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from services.ingest import native, segment, zendesk
from services.ingest.handler import Rejected
from shared import events
from shared.errors import ErrorBody

REF = "#/components/schemas/{name}"


class EventsAnswer(msgspec.Struct):
    """Items accepted (durably in Kafka) and refused (each dead-lettered), by index."""

    accepted: int
    rejected: list[Rejected]


class SegmentAnswer(msgspec.Struct):
    """Segment's ``{"success": true}`` plus what became of each message."""

    success: bool
    accepted: int
    ignored: int
    rejected: list[Rejected]


class WebhookAnswer(msgspec.Struct):
    """A Zendesk delivery: published as a ticket event (accepted) or not relevant (ignored)."""

    accepted: int
    ignored: int
    rejected: list[Rejected]


_MODELS: dict[str, Any] = {
    "EventIn": native.EventIn,
    "AccountIn": native.AccountIn,
    "PersonIn": native.PersonIn,
    "SegmentBatch": segment.SegmentBatch,
    "SegmentMessage": segment.SegmentMessage,
    "Track": segment.Track,
    "Page": segment.Page,
    "Screen": segment.Screen,
    "Identify": segment.Identify,
    "Group": segment.Group,
    "Alias": segment.Alias,
    "ZendeskWebhook": zendesk.ZendeskWebhook,
    "EventsAnswer": EventsAnswer,
    "SegmentAnswer": SegmentAnswer,
    "WebhookAnswer": WebhookAnswer,
    "ErrorBody": ErrorBody,
}
_refs, _components = msgspec.json.schema_components(list(_MODELS.values()), ref_template=REF)
SCHEMAS: dict[str, dict[str, Any]] = dict(zip(_MODELS, _refs, strict=True))


def schema(name: str) -> dict[str, Any]:
    return copy.deepcopy(SCHEMAS[name])


def one_or_many(name: str) -> dict[str, Any]:
    return {"oneOf": [schema(name), {"type": "array", "items": schema(name)}]}


# ---------------------------------------------------------------------------------------------
# Examples (the contract's own examples where they fit)

_EXAMPLES = Path(events.__file__).parent / "examples"


def _contract_example(kind: str, *drop: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((_EXAMPLES / f"{kind}.json").read_text())
    for name in ("received_at", "source", *drop):
        document.pop(name, None)
    return document


USAGE = _contract_example("usage")
TICKET = _contract_example("ticket")
SURVEY = _contract_example("survey")
ACCOUNT = _contract_example("account")
PERSON = _contract_example("person")

EVENTS_EXAMPLES = {
    "one event": {"value": USAGE},
    "a batch": {"value": [USAGE, TICKET, SURVEY]},
    "without an event_id": {
        "summary": "event_id is derived from the item's bytes when absent",
        "value": [{key: value for key, value in USAGE.items() if key != "event_id"}],
    },
}
ACCOUNT_PUT_EXAMPLES = {
    "an account": {"value": {k: v for k, v in ACCOUNT.items() if k != "account_id"}}
}
ACCOUNT_BULK_EXAMPLES = {"accounts": {"value": [ACCOUNT]}}
PERSON_PUT_EXAMPLES = {"a person": {"value": {k: v for k, v in PERSON.items() if k != "person_id"}}}
PERSON_BULK_EXAMPLES = {"people": {"value": [PERSON]}}


def _segment(kind: str, message_id: str, **fields: Any) -> dict[str, Any]:
    """A Segment message from the examples' user, as the analytics libraries send it."""
    return {"type": kind, "messageId": message_id, "userId": "u_4821", **fields}


_TRACK = _segment(
    "track",
    "0c7a2a5e-0d07-4c4e-9b4a-3f1f1f0e6a11",
    event="Report Exported",
    properties={"format": "csv"},
    context={"groupId": "acme-corp"},
    timestamp="2026-11-20T14:03:12.000Z",
    sentAt="2026-11-20T14:03:13.000Z",
)
_PAGE = _segment(
    "page",
    "1f6d1c8e-4c2b-4a8f-8a55-6c1d0b7a9e22",
    name="Dashboard",
    properties={"path": "/dashboard", "account_id": "acme-corp"},
    timestamp="2026-11-20T14:04:00.000Z",
)
_GROUP = _segment(
    "group",
    "5b1e2d3c-7a8f-4e9d-b0c1-2d3e4f5a6b33",
    groupId="acme-corp",
    traits={"name": "Acme Corporation", "plan": "enterprise"},
    timestamp="2026-11-20T14:00:00.000Z",
)
_IDENTIFY = _segment(
    "identify", "9c8b7a6d-5e4f-4a3b-9c2d-1e0f9a8b7c44", traits={"email": "jo@acme.example"}
)
SEGMENT_EXAMPLES: dict[str, dict[str, Any]] = {
    "batch": {
        "batch": {
            "value": {
                "batch": [_GROUP, _TRACK, _PAGE, _IDENTIFY],
                "sentAt": "2026-11-20T14:05:00.000Z",
            }
        }
    },
    "track": {"track": {"value": _TRACK}},
    "page": {"page": {"value": _PAGE}},
    "screen": {"screen": {"value": {**_PAGE, "type": "screen", "name": "Settings"}}},
    "group": {"group": {"value": _GROUP}},
    "identify": {"identify": {"value": _IDENTIFY}},
    "alias": {"alias": {"value": {"type": "alias", "userId": "u_4821", "previousId": "anon-1"}}},
}
ZENDESK_EXAMPLES = {
    "status changed": {
        "value": {
            "type": "zen:event-type:ticket.status_changed",
            "account_id": 10973248,
            "id": "2b24ef10-19d4-4740-93cf-8f98ec4776c0",
            "time": "2026-11-20T09:15:00Z",
            "zendesk_event_version": "2022-11-06",
            "subject": "zen:ticket:88231",
            "detail": {
                "id": "88231",
                "organization_id": "3601",
                "priority": "URGENT",
                "status": "OPEN",
            },
            "event": {"previous": "SOLVED", "current": "OPEN"},
        }
    }
}


# ---------------------------------------------------------------------------------------------
# Route helpers


def body(
    schema_: dict[str, Any],
    examples: dict[str, Any],
    content_types: Iterable[str] = ("application/json",),
) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its body itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                media_type: {"schema": schema_, "examples": examples}
                for media_type in content_types
            },
        }
    }


_ERRORS = {
    400: ("invalid_json", "The body is not valid JSON"),
    401: ("unauthenticated", "Missing or unknown API key"),
    403: ("forbidden", "The API key lacks the scope"),
    404: ("not_configured", "The endpoint is not configured on this deployment"),
    413: ("body_too_large", "Body larger than the limit, or more items than allowed"),
    415: ("unsupported_media_type", "Wrong Content-Type (or Content-Encoding)"),
    422: ("invalid_body", "The body has the wrong shape"),
    429: ("rate_limited", "Too many requests for this key; see Retry-After"),
    503: ("kafka_unavailable", "Kafka did not acknowledge in time; nothing is claimed"),
}


COMMON_ERRORS = (400, 401, 403, 413, 415, 422, 429, 503)


def answers(
    status: int, answer: str, example: Any, *, errors: Iterable[int] = COMMON_ERRORS
) -> dict[int | str, Any]:
    """``responses=`` for a route: its success answer and the errors it can give."""
    documented: dict[int | str, Any] = {
        status: {
            "description": "Done",
            "content": {"application/json": {"schema": schema(answer), "example": example}},
        }
    }
    for code in errors:
        machine, description = _ERRORS[code]
        documented[code] = {
            "description": description,
            "content": {
                "application/json": {
                    "schema": schema("ErrorBody"),
                    "example": {"code": machine, "message": description},
                }
            },
        }
    return documented


SECURITY_KEY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
SECURITY_SEGMENT: list[dict[str, list[str]]] = [{"writeKey": []}, {"bearer": []}, {"apiKey": []}]


def install(app: FastAPI) -> None:
    """Serve the document with the msgspec models' schemas and the security schemes."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = document.setdefault("components", {})
            components.setdefault("schemas", {}).update(copy.deepcopy(_components))
            components["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API key"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "writeKey": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "Segment: the API key as the Basic user, empty password "
                    "(or `writeKey` in the body)",
                },
            }
            _describe_operations(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _describe_operations(document: dict[str, Any]) -> None:
    """Examples for the shared operational endpoints too."""
    examples = {
        "/healthz": (200, "application/json", {"status": "ok"}),
        "/readyz": (
            200,
            "application/json",
            {"ready": True, "checks": {"kafka": True, "memberships": True}, "shutting_down": False},
        ),
        "/metrics": (
            200,
            "text/plain",
            'churnwatch_ingest_items_accepted_total{source="native"} 42.0',
        ),
    }
    for path, (status, media_type, example) in examples.items():
        operation = document.get("paths", {}).get(path, {}).get("get")
        if operation is None:
            continue
        answer = operation.setdefault("responses", {}).setdefault(str(status), {})
        answer.setdefault("description", "OK")
        answer.setdefault("content", {}).setdefault(media_type, {})["example"] = example
    readyz = document.get("paths", {}).get("/readyz", {}).get("get")
    if readyz is not None:
        not_ready = readyz["responses"].setdefault("503", {"description": "Not ready"})
        not_ready.setdefault("content", {})["application/json"] = {
            "example": {
                "ready": False,
                "checks": {"kafka": False, "memberships": True},
                "shutting_down": False,
            }
        }
