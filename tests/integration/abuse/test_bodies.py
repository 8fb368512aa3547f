"""Hostile request bodies on every route that takes one, for every service: oversized, a gzip
bomb, malformed, deeply nested, of the wrong type, empty. Each is answered 4xx with a
machine-readable code — never a 5xx, never accepted. The routes come from the OpenAPI
documents, so a new route is covered without being listed."""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from chaos.stack import Deployment
from services.ingest import zendesk
from tests.integration.abuse.conftest import RawAnswer, code_of, raw_request

NESTED = b"[" * 100_000 + b"]" * 100_000  # 200 KB: under every body limit
NESTED_OBJECT = b'{"a":' * 60_000 + b"1" + b"}" * 60_000
BOMB = gzip.compress(b"[" + b" " * (64 * 1024 * 1024) + b"]")  # 64 MiB inflated, ~65 KB sent

BODIES: dict[str, tuple[bytes, dict[str, str]]] = {
    "malformed JSON": (b'{"event_type": "usage", ', {}),
    "not UTF-8": (b'{"a": "\xff\xfe"}', {}),
    "empty": (b"", {}),
    "arrays nested 100,000 deep": (NESTED, {}),
    "objects nested 60,000 deep": (NESTED_OBJECT, {}),
    "a 3 MB body": (b'{"a": "' + b"x" * 3_000_000 + b'"}', {}),
    "a gzip bomb (64 MiB inflated)": (BOMB, {"Content-Encoding": "gzip"}),
    "XML": (b"<events/>", {"Content-Type": "application/xml"}),
}


def refused(answer: RawAnswer) -> bool:
    """4xx with a code; or, for a batch, 2xx with every item refused (named by index)."""
    if 400 <= answer.status_code < 500:
        return code_of(answer) is not None
    if 200 <= answer.status_code < 300:
        body = answer.json()
        return body.get("accepted") == 0 and bool(body.get("rejected"))
    return False


def body_routes(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method, path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("post", "put", "patch")
        and ("requestBody" in operation or "/links/" not in path)
    ]


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def signed(deployment: Deployment, body: bytes) -> dict[str, str]:
    """Zendesk's headers for ``body``: the abuse must get past the signature to be read."""
    timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    secret = deployment.secrets.zendesk_signing_secret.encode()
    return {
        zendesk.SIGNATURE_HEADER: zendesk.signature(secret, timestamp, body),
        zendesk.TIMESTAMP_HEADER: timestamp,
    }


@pytest.mark.parametrize("service", ["ingest", "alerts"])
async def test_hostile_bodies_are_refused_with_a_code_and_never_a_server_error(
    deployment: Deployment, http: httpx.AsyncClient, service: str
) -> None:
    base = deployment.service(service).url
    routes = body_routes((await http.get(f"{base}/openapi.json")).json())
    assert routes, f"{service} takes no body?"
    key = deployment.secrets.keys["all"]
    problems: list[str] = []
    answered: dict[str, set[int]] = {}
    for method, path in routes:
        for name, (body, extra) in BODIES.items():
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            headers |= extra
            if "zendesk" in path:
                headers |= signed(deployment, body)
            try:
                answer = await raw_request(
                    base,
                    method,
                    concrete(path),
                    body,
                    headers,
                    # ingest refuses an oversized body on its declared length; alerts reads it
                    headers_only_above=1024 * 1024 if service == "ingest" else len(body),
                )
            except ConnectionError as exc:
                problems.append(f"{method.upper()} {path} with {name}: {exc}")
                continue
            answered.setdefault(name, set()).add(answer.status_code)
            if not refused(answer):
                problems.append(
                    f"{method.upper()} {path} with {name}: {answer.status_code} {answer.text[:120]}"
                )
    assert problems == [], "\n".join(problems)
    if service == "ingest":  # its documented limits (docs/ingest.md)
        assert answered["a 3 MB body"] == {413}
        assert answered["a gzip bomb (64 MiB inflated)"] == {413}
        assert answered["XML"] == {415}


async def test_a_3_mb_body_is_refused_before_it_is_read_whole(
    deployment: Deployment, http: httpx.AsyncClient
) -> None:
    """ingest refuses on the declared length: the body is never buffered."""
    base = deployment.service("ingest").url
    answer = await http.post(
        f"{base}/v1/events",
        content=b"[" + b" " * 3_000_000 + b"]",
        headers={
            "Authorization": f"Bearer {deployment.secrets.keys['events']}",
            "Content-Type": "application/json",
        },
    )
    assert (answer.status_code, code_of(answer)) == (413, "body_too_large")
