import json
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from shared import errors
from shared.auth import ApiKeys, Caller, digest, main, new_key

KEY = "cw_test_key_events_only"
ADMIN = "cw_test_key_admin"


@pytest.fixture
def client() -> TestClient:
    keys = ApiKeys.from_json(
        json.dumps(
            [
                {"name": "billing", "sha256": digest(KEY), "scopes": ["events"]},
                {"name": "ops", "sha256": digest(ADMIN), "scopes": ["admin", "read"]},
            ]
        )
    )
    app = FastAPI()
    errors.install(app)

    @app.post("/events")
    async def post(caller: Annotated[Caller, Depends(keys.require("events"))]) -> dict[str, str]:
        return {"caller": caller.name}

    return TestClient(app)


def test_bearer_key_with_the_scope_is_let_in(client: TestClient) -> None:
    answer = client.post("/events", headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 200
    assert answer.json() == {"caller": "billing"}


def test_x_api_key_header_works_too(client: TestClient) -> None:
    assert client.post("/events", headers={"X-API-Key": KEY}).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"X-API-Key": ""}, {"Authorization": "Basic Zm9vOg=="}],
)
def test_missing_or_unknown_key_is_401(client: TestClient, headers: dict[str, str]) -> None:
    answer = client.post("/events", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["code"] == "unauthenticated"
    assert answer.headers["www-authenticate"] == "Bearer"


def test_key_without_the_scope_is_403(client: TestClient) -> None:
    answer = client.post("/events", headers={"Authorization": f"Bearer {ADMIN}"})
    assert answer.status_code == 403
    assert answer.json()["code"] == "forbidden"


def test_bad_configuration_names_the_problem_but_not_the_value() -> None:
    secret_looking = "f" * 63
    with pytest.raises(ValueError, match="API_KEYS") as error:
        ApiKeys.from_json(json.dumps([{"name": "x", "sha256": secret_looking, "scopes": []}]))
    assert secret_looking not in str(error.value)


def test_unknown_scope_in_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="API_KEYS"):
        ApiKeys.from_json(json.dumps([{"name": "x", "sha256": digest("k"), "scopes": ["root"]}]))


def test_new_keys_are_long_and_distinct() -> None:
    keys = {new_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(len(key) >= 40 for key in keys)


def test_new_key_command_prints_a_usable_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "--name", "crm", "--scopes", "accounts,events"]) == 0
    out = capsys.readouterr().out
    key = out.split("it is not stored): ")[1].split()[0]
    entry = json.loads(out.split("API_KEYS entry: ")[1])
    caller = ApiKeys.from_json(json.dumps([entry])).lookup(key)
    assert caller == Caller("crm", frozenset({"accounts", "events"}))
