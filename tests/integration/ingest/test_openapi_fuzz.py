"""A bounded schemathesis run over ingest's OpenAPI, against a running ingest and the real
broker: whatever it sends — valid or not — the answer is never a 5xx."""

from __future__ import annotations

from collections import Counter
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from tests.integration.ingest.support import KEYS
from tests.support import ServiceProcess

EXAMPLES_PER_OPERATION_AND_MODE = 25


def key_for(path: str) -> str:
    """The key whose scope the operation wants, so its body is actually read."""
    if "zendesk" in path:
        return KEYS["webhooks"]
    if path.startswith(("/v1/accounts", "/v1/people")):
        return KEYS["accounts"]
    return KEYS["events"]


def fuzz(
    operation: Any, mode: GenerationMode, base_url: str, server_errors: list[str]
) -> Counter[int]:
    """Run one operation's examples in one generation mode; returns the statuses answered."""
    headers = {"Authorization": f"Bearer {key_for(operation.path)}"}
    statuses: Counter[int] = Counter()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Any) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            server_errors.append(
                f"{case.method} {case.formatted_path} ({mode}) → {response.status_code}: "
                f"{response.text[:300]}"
            )

    try:
        call()
    except Unsatisfiable:
        # Nothing can break the schema of an operation without inputs (GET /healthz).
        assert mode == GenerationMode.NEGATIVE, operation.path
    return statuses


def test_no_operation_answers_a_server_error(ingest: ServiceProcess) -> None:
    schema = schemathesis.openapi.from_url(f"{ingest.url}/openapi.json")
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results) == 16  # 13 intake operations + the 3 operational
    server_errors: list[str] = []
    statuses: Counter[int] = Counter()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            statuses += fuzz(operation, mode, ingest.url, server_errors)
    assert server_errors == [], "\n".join(server_errors[:10])
    assert statuses.total() > 300
    assert statuses[200] + statuses[202] > 50  # valid bodies went all the way to Kafka
