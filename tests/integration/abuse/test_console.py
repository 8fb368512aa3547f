"""The console under abuse, on the running processes: every route from its own OpenAPI document
either serves, sends an anonymous person to the sign-in page (pages and actions alike: nothing
is done), or refuses with a machine code (``X-Error-Code``) — never a 5xx; every POST refuses
a signed-in person without the right CSRF token; hostile paths and forms are refused with a
code; and schemathesis finds no 5xx, and no refusal without a code, with or without a
session."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from chaos.stack import Deployment, Service
from services.console.signin import SESSION_COOKIE, Tokens
from tests.integration.abuse.test_auth import concrete, operations

PERSON = {"person_id": "p_abuse", "name": "Abe Use", "email": "abe@abuse.invalid"}
# Answered to anyone: the probes, the metrics and the sign-in pages (a link's token is checked).
OPEN = {"/healthz", "/readyz", "/metrics", "/sign-in", "/sign-in/{token}", "/openapi.json"}
COMPLETE = {"email": PERSON["email"], "days": "1", "verdict": "useful"}  # every form's fields
HOSTILE = ("x" * 5000, "..%2F..%2Fetc%2Fpasswd", "%00", "%F0%9F%92%A5" * 50, "a%20b%3Cscript%3E")


@pytest.fixture(scope="module")
async def console(deployment: Deployment) -> Service:
    key = deployment.secrets.keys["accounts"]
    async with httpx.AsyncClient(base_url=deployment.service("ingest").url, timeout=30) as http:
        seeded = await http.post(
            "/v1/people", json=[PERSON], headers={"Authorization": f"Bearer {key}"}
        )
    assert seeded.status_code == 202, seeded.text
    running = deployment.services.get("console") or [await deployment.add("console").start()]
    return running[0]


def session(deployment: Deployment) -> dict[str, str]:
    """A signed session cookie of the seeded person, as the sign-in would set it."""
    tokens = Tokens(deployment.secrets.console_secret_key, sign_in_ttl=900, session_ttl=3600)
    return {SESSION_COOKIE: tokens.session(PERSON["email"], PERSON["person_id"], PERSON["name"])}


def coded(answer: httpx.Response) -> bool:
    return bool(answer.headers.get("x-error-code"))


async def routes(console: Service) -> list[tuple[str, str]]:
    async with httpx.AsyncClient() as http:
        return operations((await http.get(f"{console.url}/openapi.json")).json())


async def test_every_route_serves_sends_to_sign_in_or_refuses_with_a_code(
    console: Service, deployment: Deployment
) -> None:
    problems: list[str] = []
    found = await routes(console)
    assert ("get", "/accounts/{account_id}") in found
    async with httpx.AsyncClient(base_url=console.url, timeout=30) as anonymous:
        for method, path in found:
            answer = await anonymous.request(method, concrete(path))
            label = f"anonymous {method.upper()} {path} → {answer.status_code}"
            if answer.status_code >= 500:
                problems.append(label)
            elif path in OPEN:
                if answer.status_code >= 400 and not coded(answer):
                    problems.append(f"{label} without a code")
            else:  # a page or an action: first sign in (an expired session lands there too)
                where = answer.headers.get("location", "")
                if answer.status_code != 303 or not where.startswith("/sign-in?next="):
                    problems.append(f"{label}, not sent to sign in ({where!r})")
    async with httpx.AsyncClient(
        base_url=console.url, cookies=session(deployment), timeout=30
    ) as signed_in:
        for method, path in found:
            answer = await signed_in.request(method, concrete(path))
            label = f"signed-in {method.upper()} {path} → {answer.status_code}"
            if answer.status_code >= 500 or (answer.status_code >= 400 and not coded(answer)):
                problems.append(label)
    assert problems == [], "\n".join(problems)


async def test_every_post_refuses_a_signed_in_person_without_the_right_csrf_token(
    console: Service, deployment: Deployment
) -> None:
    posts = [path for method, path in await routes(console) if method == "post"]
    assert "/alerts/{alert_id}/ack" in posts
    problems: list[str] = []
    async with httpx.AsyncClient(
        base_url=console.url, cookies=session(deployment), timeout=30
    ) as http:
        for path in posts:
            for form in ({}, {"csrf": "forged"}, {"csrf": "x" * 200}):
                answer = await http.post(concrete(path), data={**form, **COMPLETE})
                got = (answer.status_code, answer.headers.get("x-error-code"))
                if got != (403, "csrf_failed"):
                    problems.append(f"POST {path} {list(form)}: {got}")
    assert problems == [], "\n".join(problems)


async def test_hostile_paths_and_forms_are_refused_with_a_code(
    console: Service, deployment: Deployment
) -> None:
    problems: list[str] = []
    async with httpx.AsyncClient(
        base_url=console.url, cookies=session(deployment), timeout=30
    ) as http:
        for value in HOSTILE:
            for path in (f"/accounts/{value}", f"/accounts/{value}/brief", f"/sign-in/{value}"):
                answer = await http.get(path)
                if not (400 <= answer.status_code < 500 and coded(answer)):
                    problems.append(f"GET {path[:60]} → {answer.status_code}")
            answer = await http.post(f"/alerts/{value}/ack", data={"csrf": "x"})
            if not (400 <= answer.status_code < 500 and coded(answer)):
                problems.append(f"POST /alerts/{value[:40]}/ack → {answer.status_code}")
        for field, value in (("email", "x" * 100_000), ("next", "//evil.example/" * 100)):
            answer = await http.post("/sign-in", data={field: value, "csrf": "x"})
            if not (400 <= answer.status_code < 500 and coded(answer)):
                problems.append(f"POST /sign-in with a hostile {field} → {answer.status_code}")
        outside = await http.get("/sign-in", params={"next": "https://evil.example/"})
        assert "evil.example" not in outside.text  # never an open redirect
    assert problems == [], "\n".join(problems)


def _fuzz(operation: Any, mode: GenerationMode, base: str, cookies: dict[str, str]) -> list[str]:
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def call(case: Any) -> None:
        response = case.call(base_url=base, cookies=cookies, allow_redirects=False)
        code = response.headers.get("x-error-code")
        if response.status_code >= 500 or (response.status_code >= 400 and not code):
            if operation.path == "/readyz" and response.status_code == 503:
                return
            failures.append(f"{case.method} {case.formatted_path} → {response.status_code}")

    try:
        call()
    except Unsatisfiable:
        assert mode == GenerationMode.NEGATIVE, operation.path
    return failures


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
def test_schemathesis_finds_no_server_error_and_no_refusal_without_a_code(
    console: Service, deployment: Deployment, signed_in: bool
) -> None:
    schema = schemathesis.openapi.from_url(f"{console.url}/openapi.json")
    results = list(schema.get_all_operations())
    operations_ = [r.ok() for r in results if isinstance(r, Ok)]
    assert len(operations_) == len(results)
    cookies = session(deployment) if signed_in else {}
    failures: list[str] = []
    for operation in operations_:
        if re.search(r"/metrics$", operation.path):
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += _fuzz(operation, mode, console.url, cookies)
    assert failures == [], f"{len(failures)} failures:\n" + "\n".join(sorted(set(failures))[:25])
