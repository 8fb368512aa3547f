"""Hostile inputs against the running deployment, and how each was answered: the abuse side
of issue 9 as figures of the run (the abuse tests under tests/integration/abuse assert the
same, and more, on every `make test`).

- keys: every route of every service's OpenAPI document that is not public, called without
  a key, with an unknown key, with a key of no scope and with each single scope;
- bodies: every route that takes a body, sent malformed, non-UTF-8, empty, deeply nested,
  oversized, gzip-bombed, as XML and of the wrong type;
- signatures: Zendesk deliveries forged, altered, stale and unsigned; one-click links forged,
  garbled and expired;
- a slow client: a body dribbled a byte a second, while others are served.

Paths are filled with ids that exist nowhere, so nothing the faults left behind is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from chaos.faults import FaultResult, Run
from chaos.stack import SERVICE_NAMES, Deployment
from services.alerts import links
from services.ingest import zendesk
from shared.auth import SCOPES
from shared.runner import REQUEST_BODY_TIMEOUT_SECONDS

# Routes that need no API key, and why (also the abuse suite's list: tests/integration/abuse).
PUBLIC = {
    ("get", "/healthz"): "liveness probe",
    ("get", "/readyz"): "readiness probe",
    ("get", "/metrics"): "Prometheus scrape (kept inside the cluster by the NetworkPolicies)",
    ("get", "/links/{token}"): "one-click link: the signed token is the authority",
    ("post", "/links/{token}"): "one-click link: the signed token is the authority",
    ("get", "/brief/{token}"): "read-only brief page: the signed, expiring token is the authority",
    ("post", "/v1/slack/interactions"): "Slack interactivity: Slack's request signature is the "
    "authority (401 slack_signature_invalid / slack_request_stale)",
}
REFUSED = frozenset({"unauthenticated", "forbidden"})
NOWHERE = "999999999"

BODIES: dict[str, tuple[bytes, dict[str, str]]] = {
    "malformed JSON": (b'{"event_type": "usage", ', {}),
    "not UTF-8": (b'{"a": "\xff\xfe"}', {}),
    "empty": (b"", {}),
    "arrays nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, {}),
    "objects nested 60,000 deep": (b'{"a":' * 60_000 + b"1" + b"}" * 60_000, {}),
    "a JSON string, not an object": (b'"hello"', {}),
    "a 3 MB body": (b'{"a": "' + b"x" * 3_000_000 + b'"}', {}),
    "a gzip bomb (64 MiB inflated)": (
        gzip.compress(b"[" + b" " * (64 * 1024 * 1024) + b"]"),
        {"Content-Encoding": "gzip"},
    ),
    "XML": (b"<events/>", {"Content-Type": "application/xml"}),
}


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", NOWHERE, path)


def _code(status: int, content: bytes, headers: Mapping[str, str]) -> str | None:
    if "x-error-code" in headers:
        return headers["x-error-code"]
    with contextlib.suppress(ValueError):
        body = json.loads(content)
        if isinstance(body, dict):
            if "code" in body:
                return str(body["code"])
            if 200 <= status < 300 and body.get("accepted") == 0 and body.get("rejected"):
                return "every item refused"
    return None


def _label(status: int, code: str | None) -> str:
    return f"{status} {code}" if code else str(status)


class Answers:
    """What each input got, by label: "401 unauthenticated ×12"."""

    def __init__(self) -> None:
        self.by_input: dict[str, Counter[str]] = {}
        self.server_errors: list[str] = []
        self.without_code: list[str] = []

    def add(self, name: str, where: str, status: int, code: str | None) -> None:
        self.by_input.setdefault(name, Counter())[_label(status, code)] += 1
        if status >= 500:
            self.server_errors.append(f"{where} with {name}: {status}")
        elif status >= 400 and not code:
            self.without_code.append(f"{where} with {name}: {status}")

    def figure(self, name: str) -> str:
        return ", ".join(f"{k} ×{v}" for k, v in sorted(self.by_input.get(name, {}).items()))


async def hostile_inputs(run: Run) -> FaultResult:
    result = FaultResult("inputs", "hostile inputs: keys, bodies, signatures, a slow client")
    started = time.monotonic()
    deployment = run.deployment
    answers = Answers()
    async with httpx.AsyncClient(timeout=30) as http:
        documents = {
            name: (await http.get(f"{deployment.service(name).url}/openapi.json")).json()
            for name in SERVICE_NAMES
        }
        await _keys(deployment, http, documents, answers, result)
        await _bodies(deployment, documents, answers, result)
        await _signatures(deployment, http, answers, result)
    await _slow_client(deployment, answers, result)
    for name in answers.by_input:
        result.figures[name] = answers.figure(name)
    total = sum(sum(c.values()) for c in answers.by_input.values())
    result.check(
        "no hostile input was answered with a 5xx",
        not answers.server_errors,
        f"{total} requests; 5xx: {'; '.join(answers.server_errors[:5]) or 'none'}",
    )
    result.check(
        "every refusal carries a machine-readable code",
        not answers.without_code,
        "; ".join(answers.without_code[:5]) or "all do",
    )
    result.seconds = time.monotonic() - started
    return result


# -- keys ---------------------------------------------------------------------------------------


async def _keys(
    deployment: Deployment,
    http: httpx.AsyncClient,
    documents: Mapping[str, dict[str, Any]],
    answers: Answers,
    result: FaultResult,
) -> None:
    keys = deployment.secrets.keys
    presented: dict[str, str | None] = {
        "no API key": None,
        "an unknown API key": "cw_not_a_configured_key",
        "an API key of no scope": keys["none"],
    }
    wrong: list[str] = []
    routes = 0
    for service, document in documents.items():
        base = deployment.service(service).url
        for method, path, _ in _operations(document):
            if (method, path) in PUBLIC:
                continue
            routes += 1
            where = f"{service} {method.upper()} {path}"
            for name, key in presented.items():
                answer = await _call(http, base, method, path, key)
                code = _code(answer.status_code, answer.content, answer.headers)
                answers.add(name, where, answer.status_code, code)
                want = "forbidden" if name.endswith("no scope") else "unauthenticated"
                if code != want:
                    wrong.append(f"{where} with {name}: {answer.status_code} {code}")
            through = []
            for scope in SCOPES:
                answer = await _call(http, base, method, path, keys[scope])
                code = _code(answer.status_code, answer.content, answer.headers)
                if code in REFUSED:
                    answers.add("an API key of another scope", where, answer.status_code, code)
                    if code != "forbidden":
                        wrong.append(f"{where} with the {scope} key: {code}")
                else:
                    through.append(scope)
            if len(through) != 1:
                wrong.append(f"{where} lets {through or 'no scope'} through")
    result.check(
        "every non-public route refuses a missing or unknown key (401) and a key without its "
        "scope (403), and lets exactly one scope through",
        not wrong,
        f"{routes} routes of {len(documents)} services (from their OpenAPI documents), each "
        f"with 3 bad keys and {len(SCOPES)} scopes; wrong: {'; '.join(wrong[:5]) or 'none'}",
    )


async def _call(
    http: httpx.AsyncClient, base: str, method: str, path: str, key: str | None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body: dict[str, Any] | None = {} if method in ("post", "put", "patch") else None
    return await http.request(method, base + _concrete(path), json=body, headers=headers)


# -- bodies -------------------------------------------------------------------------------------


async def _bodies(
    deployment: Deployment,
    documents: Mapping[str, dict[str, Any]],
    answers: Answers,
    result: FaultResult,
) -> None:
    key = deployment.secrets.keys["all"]
    accepted: list[str] = []
    routes = 0
    for service, document in documents.items():
        base = deployment.service(service).url
        for method, path, operation in _operations(document):
            if method not in ("post", "put", "patch") or "requestBody" not in operation:
                continue
            routes += 1
            for name, (body, extra) in BODIES.items():
                headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
                headers |= extra
                if "zendesk" in path:  # past the signature, so the body is read
                    headers |= _zendesk_headers(deployment.secrets.zendesk_signing_secret, body)
                where = f"{service} {method.upper()} {path}"
                try:
                    status, content, got = await raw_request(
                        base,
                        method,
                        _concrete(path),
                        body,
                        headers,
                        declare_only=len(body) > 1024 * 1024 and service == "ingest",
                    )
                except ConnectionError:
                    answers.add(name, where, 499, "closed without an answer")
                    accepted.append(f"{where} with {name}: no answer")
                    continue
                code = _code(status, content, got)
                answers.add(name, where, status, code)
                if status < 400 and code != "every item refused":
                    accepted.append(f"{where} with {name}: {status}")
    result.check(
        "every hostile body is refused (4xx with a code, or 202 naming every item refused)",
        not accepted,
        f"{len(BODIES)} bodies on {routes} routes that take one; "
        f"not refused: {'; '.join(accepted[:5]) or 'none'}",
    )


async def raw_request(
    base_url: str,
    method: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    declare_only: bool,
    timeout_s: float = 30.0,
) -> tuple[int, bytes, dict[str, str]]:
    """One request on a connection of its own (an oversized body is only declared: ingest
    refuses it on its Content-Length, and a client still writing would see a reset)."""
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    lines = [
        f"{method.upper()} {path} HTTP/1.1",
        f"Host: {url.netloc}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    try:
        writer.write(head if declare_only else head + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout_s)
    finally:
        writer.close()
    head_part, _, content = raw.partition(b"\r\n\r\n")
    if not head_part:
        raise ConnectionError(f"{method} {path}: closed without an answer")
    status_line, *header_lines = head_part.decode(errors="replace").split("\r\n")
    got = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in header_lines)
    }
    return int(status_line.split(" ", 2)[1]), content, got


# -- signatures ---------------------------------------------------------------------------------


def _zendesk_headers(secret: str, body: bytes, *, at: datetime | None = None) -> dict[str, str]:
    timestamp = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        zendesk.SIGNATURE_HEADER: zendesk.signature(secret.encode(), timestamp, body),
        zendesk.TIMESTAMP_HEADER: timestamp,
    }


async def _signatures(
    deployment: Deployment, http: httpx.AsyncClient, answers: Answers, result: FaultResult
) -> None:
    secrets = deployment.secrets
    now = datetime.now(UTC)
    body = json.dumps(
        {
            "type": "zen:event-type:ticket.created",
            "id": f"forged-{uuid.uuid4()}",
            "time": now.isoformat(),
            "subject": "zen:ticket:77",
            "detail": {"id": "77", "organization_id": "9001", "priority": "HIGH", "status": "NEW"},
        }
    ).encode()
    secret = secrets.zendesk_signing_secret
    auth = {"Authorization": f"Bearer {secrets.keys['webhooks']}"}
    deliveries = {
        "Zendesk: signed with another secret": (body, _zendesk_headers("not-the-secret", body)),
        "Zendesk: altered after signing": (
            body.replace(b"HIGH", b"LOW"),
            _zendesk_headers(secret, body),
        ),
        "Zendesk: replayed 10 minutes later": (
            body,
            _zendesk_headers(secret, body, at=now - timedelta(minutes=10)),
        ),
        "Zendesk: unsigned": (body, {}),
    }
    wrong: list[str] = []
    url = deployment.service("ingest").url + "/v1/webhooks/zendesk"
    for name, (content, signature) in deliveries.items():
        answer = await http.post(
            url, content=content, headers=auth | signature | {"Content-Type": "application/json"}
        )
        code = _code(answer.status_code, answer.content, answer.headers)
        answers.add(name, "ingest POST /v1/webhooks/zendesk", answer.status_code, code)
        if answer.status_code != 401:
            wrong.append(f"{name}: {answer.status_code}")
    signer = links.LinkSigner(secrets.link_signing_secret)
    real = signer.sign(
        links.Link("ack", "acct-000", (int(NOWHERE),), None, now + timedelta(days=1))
    )
    payload, mac = real.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

    def last_flipped(bit: int) -> str:
        return f"{payload}.{mac[:-1]}{alphabet[alphabet.index(mac[-1]) ^ bit]}"

    tokens = {
        "link: a flipped signature": last_flipped(32),  # a different MAC
        "link: a valid one spelled differently": last_flipped(1),  # same bytes, unused bits
        "link: signed with another key": links.LinkSigner("a-secret-never-configured").sign(
            links.Link("ack", "acct-000", (1,), None, now + timedelta(days=1))
        ),
        "link: garbage": "not-a-token",
        "link: expired": signer.sign(
            links.Link("ack", "acct-000", (1,), None, now - timedelta(minutes=1))
        ),
    }
    base = deployment.service("alerts").url
    for name, token in tokens.items():
        for method in ("GET", "POST"):
            answer = await http.request(method, f"{base}/links/{token}")
            code = _code(answer.status_code, answer.content, answer.headers)
            answers.add(name, f"alerts {method} /links/…", answer.status_code, code)
            if answer.status_code not in (403, 410):
                wrong.append(f"{name} ({method}): {answer.status_code}")
    result.check(
        "forged, altered, stale and unsigned signatures are refused",
        not wrong,
        f"{len(deliveries)} Zendesk deliveries, {len(tokens)} links × GET/POST; "
        f"let through: {'; '.join(wrong) or 'none'}",
    )


# -- a slow client ------------------------------------------------------------------------------


async def _slow_client(deployment: Deployment, answers: Answers, result: FaultResult) -> None:
    """One body dribbled a byte a second; meanwhile ingest answers others as usual."""
    base = deployment.service("ingest").url
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    started = time.monotonic()
    writer.write(
        (
            f"POST /v1/events HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json"
            f"\r\nAuthorization: Bearer {deployment.secrets.keys['events']}\r\n"
            "Content-Length: 1000\r\n\r\n["
        ).encode()
    )
    await writer.drain()

    async def trickle() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            for _ in range(60):
                await asyncio.sleep(1.0)
                writer.write(b" ")
                await writer.drain()

    trickling = asyncio.create_task(trickle())
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(20):
            t = time.monotonic()
            await http.get(f"{base}/healthz")
            latencies.append(time.monotonic() - t)
            await asyncio.sleep(0.2)
    reset = False
    try:
        raw = await asyncio.wait_for(reader.read(), REQUEST_BODY_TIMEOUT_SECONDS + 30)
    except ConnectionResetError:  # a byte that arrived after the server's last read: TCP reset
        raw, reset = b"", True
    except (ConnectionError, TimeoutError):
        raw = b""
    finally:
        trickling.cancel()
        writer.close()
    waited = time.monotonic() - started
    head = raw.split(b"\r\n", 1)[0].decode(errors="replace")
    status = int(head.split(" ")[1]) if head.startswith("HTTP/") else 0
    _, _, content = raw.partition(b"\r\n\r\n")
    code = _code(status, content, {}) if status else ("reset" if reset else "no answer")
    answers.add("a body dribbled a byte a second", "ingest POST /v1/events", status, code)
    in_time = REQUEST_BODY_TIMEOUT_SECONDS - 1 <= waited <= REQUEST_BODY_TIMEOUT_SECONDS + 10
    result.check(
        "a body that does not arrive in time is cut off (408) while others are served",
        in_time and (reset or (status == 408 and code == "request_timeout")),
        f"answered {status or ''} {code} after {waited:.1f} s (limit "
        f"{REQUEST_BODY_TIMEOUT_SECONDS:g} s; a reset instead of the 408 is TCP's, for a client "
        f"still writing); 20 other requests meanwhile, the slowest "
        f"{max(latencies) * 1000:.0f} ms",
    )
