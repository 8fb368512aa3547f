"""ingest answers a body it cannot decode with ``400 invalid_json`` — also when the JSON is
nested deeper than the decoder can recurse, or a Segment call's strings are not UTF-8 (both
were answered 500, found by issue 9's abuse tests). Nothing of such a request is published."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.unit.ingest.fakes import RecordingPublisher, app, bearer

DEEP_ARRAYS = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECTS = b'{"a":' * 60_000 + b"1" + b"}" * 60_000
NOT_UTF8 = b'{"type": "track", "userId": "\xff\xfe", "event": "x"}'
ROUTES = [
    ("POST", "/v1/events", "events"),
    ("POST", "/v1/accounts", "accounts"),
    ("PUT", "/v1/accounts/acme", "accounts"),
    ("POST", "/v1/people", "accounts"),
    ("PUT", "/v1/people/p1", "accounts"),
    *(("POST", f"/v1/{kind}", "events") for kind in ("batch", "track", "page", "group")),
]


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def client(publisher: RecordingPublisher) -> Iterator[TestClient]:
    with TestClient(app(publisher), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES)
@pytest.mark.parametrize("body", [DEEP_ARRAYS, DEEP_OBJECTS], ids=["arrays", "objects"])
def test_json_nested_too_deeply_is_refused_as_invalid_not_a_server_error(
    client: TestClient,
    publisher: RecordingPublisher,
    method: str,
    path: str,
    scope: str,
    body: bytes,
) -> None:
    answer = client.request(
        method, path, content=body, headers={"content-type": "application/json", **bearer(scope)}
    )
    # 400 when the decoder had to descend into it; 422 when its shape was wrong first
    assert (answer.status_code, answer.json()["code"]) in {
        (400, "invalid_json"),
        (422, "invalid_body"),
    }, answer.text
    assert publisher.calls == []


@pytest.mark.parametrize("kind", ["track", "page", "screen", "identify", "group", "alias"])
def test_a_segment_call_whose_strings_are_not_utf8_is_answered_400_invalid_json(
    client: TestClient, publisher: RecordingPublisher, kind: str
) -> None:
    answer = client.post(
        f"/v1/{kind}",
        content=NOT_UTF8,
        headers={"content-type": "application/json", **bearer("events")},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid_json"
    assert publisher.calls == []
