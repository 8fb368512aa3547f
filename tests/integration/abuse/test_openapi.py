"""schemathesis against every service's OpenAPI document, on the running services: whatever
it sends — valid or not, with a key that may call the operation — no answer is a 5xx, and
every answer conforms to the document (a documented status, content type, headers and
schema). ingest's no-5xx run with more examples is tests/integration/ingest/test_openapi_fuzz.py.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import load_all_checks, not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chaos.stack import Deployment

EXAMPLES = 12
# uvicorn's own answer to bytes that are not a valid HTTP request (negative fuzzing can build
# one, e.g. a raw control character in the request line): the application never receives it.
NOT_HTTP = "Invalid HTTP request received."
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def fuzz(operation: Any, mode: GenerationMode, base_url: str, key: str) -> tuple[int, list[str]]:
    calls = 0
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Any) -> None:
        nonlocal calls
        response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {key}"})
        calls += 1
        if operation.path == "/readyz" and response.status_code == 503:
            return  # "not ready" is a documented answer of the readiness probe, not a fault
        if (response.status_code, response.text) == (400, NOT_HTTP):
            return  # refused by the server's HTTP parser: no operation saw it (still not a 5xx)
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, FailureGroup) as exc:
            first = str(exc).strip().splitlines()
            failures.append(
                f"{case.method} {operation.path} ({mode.value}) → {response.status_code}: "
                + " / ".join(first[:3])[:300]
                # what came back, so a finding of a random run can be read without a re-run
                + f" [{response.headers.get('content-type')}: {response.text[:120]!r}]"
            )

    try:
        call()
    except Unsatisfiable:
        assert mode == GenerationMode.NEGATIVE, operation.path  # nothing to break
    return calls, failures


@pytest.mark.parametrize("service", ["ingest", "scoring", "alerts"])
def test_no_operation_answers_a_server_error_and_every_answer_conforms(
    deployment: Deployment, service: str
) -> None:
    load_all_checks()
    base = deployment.service(service).url
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    results = list(schema.get_all_operations())
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert len(operations) == len(results)
    key = deployment.secrets.keys["all"]
    failures: list[str] = []
    calls: Counter[str] = Counter()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            made, found = fuzz(operation, mode, base, key)
            calls[mode.value] += made
            failures += found
    assert failures == [], f"{len(failures)} failures:\n" + "\n".join(sorted(set(failures))[:25])
    assert calls["positive"] >= len(operations)
