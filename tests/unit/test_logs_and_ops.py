import json
import logging

from fastapi import FastAPI
from fastapi.testclient import TestClient

from shared.logs import JsonFormatter, request_id
from shared.ops import Draining, ops_router
from shared.runner import RejectWhileDraining


def test_log_lines_are_json_with_extras_and_the_request_id() -> None:
    record = logging.makeLogRecord(
        {"name": "t", "levelname": "WARNING", "msg": "batch %s", "args": ("done",), "records": 12}
    )
    token = request_id.set("req-1")
    try:
        line = json.loads(JsonFormatter("scoring").format(record))
    finally:
        request_id.reset(token)
    assert line["msg"] == "batch done"
    assert line["level"] == "warning"
    assert line["service"] == "scoring"
    assert line["records"] == 12
    assert line["request_id"] == "req-1"


def test_exceptions_are_logged_with_their_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.makeLogRecord({"msg": "failed", "exc_info": sys.exc_info()})
    line = json.loads(JsonFormatter("x").format(record))
    assert "ValueError: boom" in line["exc"]


def _app(ready: bool) -> TestClient:
    async def kafka() -> bool:
        return True

    async def database() -> bool:
        if not ready:
            raise ConnectionError("refused")
        return True

    app = FastAPI()
    app.include_router(ops_router({"kafka": kafka, "database": database}))
    return TestClient(app)


def test_readyz_is_503_naming_the_failing_dependency() -> None:
    answer = _app(ready=False).get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {
        "ready": False,
        "checks": {"kafka": True, "database": False},
        "shutting_down": False,
    }


def test_readyz_healthz_and_metrics_when_all_is_well() -> None:
    client = _app(ready=True)
    assert client.get("/readyz").json()["ready"] is True
    assert client.get("/healthz").json() == {"status": "ok"}
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "churnwatch_ready 1.0" in metrics.text


def test_while_draining_new_requests_get_503_but_health_and_metrics_answer() -> None:
    draining = Draining()
    app = FastAPI()

    @app.post("/v1/things")
    async def things() -> dict[str, bool]:
        return {"ok": True}

    app.include_router(ops_router({}, draining))
    app.add_middleware(RejectWhileDraining, draining=draining)
    client = TestClient(app)
    assert client.post("/v1/things").status_code == 200
    assert client.get("/readyz").status_code == 200

    draining.begin()
    refused = client.post("/v1/things")
    assert refused.status_code == 503
    assert refused.json()["code"] == "shutting_down"
    assert refused.headers["retry-after"] == "5"
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["shutting_down"] is True
