"""Every route of every service that is not public refuses a caller without a key (401
``unauthenticated``) and a caller whose key lacks the route's scope (403 ``forbidden``), and lets
exactly one scope through. The routes come from each service's own OpenAPI document, so a
route added later is checked without anyone remembering to list it."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from chaos.inputs import PUBLIC, REFUSED
from chaos.stack import Deployment
from shared.auth import SCOPES
from tests.integration.abuse.conftest import code_of


def operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]


def concrete(path: str) -> str:
    """A path with its parameters filled in (ids that exist nowhere)."""
    return re.sub(r"\{[^}]+\}", "1", path)


async def call(
    http: httpx.AsyncClient, base: str, method: str, path: str, key: str | None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body: dict[str, Any] | None = {} if method in ("post", "put", "patch") else None
    return await http.request(method, base + concrete(path), json=body, headers=headers)


@pytest.mark.parametrize("service", ["ingest", "scoring", "alerts"])
async def test_every_non_public_route_refuses_missing_and_wrong_scoped_keys(
    deployment: Deployment, http: httpx.AsyncClient, service: str
) -> None:
    base = deployment.service(service).url
    document = (await http.get(f"{base}/openapi.json")).json()
    routes = operations(document)
    guarded = [route for route in routes if route not in PUBLIC]
    assert guarded, f"{service} has no guarded route?"
    keys = deployment.secrets.keys
    problems: list[str] = []
    for method, path in guarded:
        label = f"{service} {method.upper()} {path}"
        anonymous = await call(http, base, method, path, None)
        if (anonymous.status_code, code_of(anonymous)) != (401, "unauthenticated"):
            problems.append(f"{label} without a key: {anonymous.status_code} {anonymous.text[:80]}")
        unknown = await call(http, base, method, path, "cw_not_a_configured_key")
        if (unknown.status_code, code_of(unknown)) != (401, "unauthenticated"):
            problems.append(f"{label} with an unknown key: {unknown.status_code}")
        scopeless = await call(http, base, method, path, keys["none"])
        if (scopeless.status_code, code_of(scopeless)) != (403, "forbidden"):
            problems.append(f"{label} with a key of no scope: {scopeless.status_code}")
        let_through = []
        for scope in SCOPES:
            answer = await call(http, base, method, path, keys[scope])
            if code_of(answer) not in REFUSED:
                let_through.append(scope)
            elif (answer.status_code, code_of(answer)) != (403, "forbidden"):
                problems.append(f"{label} with the {scope} key: {answer.status_code}")
        if len(let_through) != 1:
            problems.append(f"{label} lets these scopes through: {let_through}")
        everything = await call(http, base, method, path, keys["all"])
        if code_of(everything) in REFUSED or everything.status_code >= 500:
            problems.append(f"{label} with every scope: {everything.status_code}")
    assert problems == [], "\n".join(problems)


async def test_the_public_routes_are_exactly_the_operational_ones_and_the_links(
    deployment: Deployment, http: httpx.AsyncClient
) -> None:
    public_seen = set()
    for service in ("ingest", "scoring", "alerts"):
        base = deployment.service(service).url
        document = (await http.get(f"{base}/openapi.json")).json()
        for method, path in operations(document):
            answer = await call(http, base, method, path, None)
            if code_of(answer) not in REFUSED:
                public_seen.add((method, path))
    assert public_seen <= set(PUBLIC)
    assert {("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics")} <= public_seen


async def test_segment_routes_refuse_a_write_key_without_the_events_scope(
    deployment: Deployment, http: httpx.AsyncClient
) -> None:
    """Segment's own ways of presenting a key (HTTP Basic user, ``writeKey`` in the body) are
    held to the same scope as a bearer key."""
    base = deployment.service("ingest").url
    keys = deployment.secrets.keys
    for path in ("/v1/batch", "/v1/track", "/v1/identify"):
        basic = await http.post(base + path, json={}, auth=(keys["read"], ""))
        in_body = await http.post(base + path, json={"writeKey": keys["read"]})
        unknown = await http.post(base + path, json={"writeKey": "not-a-key"})
        assert (basic.status_code, code_of(basic)) == (403, "forbidden"), path
        assert (in_body.status_code, code_of(in_body)) == (403, "forbidden"), path
        assert (unknown.status_code, code_of(unknown)) == (401, "unauthenticated"), path
