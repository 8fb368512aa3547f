"""shared.errors: the one envelope, its handlers and its OpenAPI description."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, HTTPException, Query
from fastapi.testclient import TestClient

from shared import errors


class Away(Exception):
    pass


def app_counting(counted: list[str]) -> FastAPI:
    app = FastAPI()
    errors.install(
        app,
        count=counted.append,
        translate={Away: lambda exc: errors.refusal(503, "away", str(exc), {"Retry-After": "2"})},
    )
    errors.document(app)

    @app.get("/v1/things")
    async def things(limit: Annotated[int, Query(ge=1, le=10)] = 5) -> dict[str, int]:
        return {"limit": limit}

    @app.get("/v1/refused")
    async def refused() -> None:
        raise errors.refusal(409, "already_done", "it is done")

    @app.get("/v1/bare")
    async def bare() -> None:
        raise HTTPException(413, "too big")

    @app.get("/v1/away")
    async def away() -> None:
        raise Away("the broker is away")

    return app


def test_an_invalid_request_is_422_with_each_item_where_and_why() -> None:
    counted: list[str] = []
    answer = TestClient(app_counting(counted)).get("/v1/things?limit=11")
    assert answer.status_code == 422
    body = answer.json()
    assert body["code"] == "invalid_request"
    assert [item["where"] for item in body["errors"]] == ["query.limit"]
    assert "10" in body["errors"][0]["why"]
    assert body["message"].startswith("the request is not valid: query.limit: ")
    assert counted == ["invalid_request"]


def test_a_refusal_a_bare_http_error_and_a_translated_exception_share_the_envelope() -> None:
    counted: list[str] = []
    client = TestClient(app_counting(counted))
    refused, bare, away = (client.get(f"/v1/{p}") for p in ("refused", "bare", "away"))
    assert (refused.status_code, refused.json()) == (
        409,
        {"code": "already_done", "message": "it is done"},
    )
    assert (bare.status_code, bare.json()) == (
        413,
        {"code": "body_too_large", "message": "too big"},
    )
    assert (away.status_code, away.json()["code"]) == (503, "away")
    assert away.headers["retry-after"] == "2"
    assert counted == ["already_done", "body_too_large", "away"]


def test_the_openapi_document_describes_every_error_with_the_envelope() -> None:
    document = TestClient(app_counting([])).get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert schemas["ErrorBody"]["required"] == ["code", "message"]
    assert set(schemas["ErrorItem"]["properties"]) == {"where", "why"}
    answers = document["paths"]["/v1/things"]["get"]["responses"]
    for status in ("401", "404", "422"):
        schema = answers[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}, status
