import json
import logging

from fastapi import FastAPI
from fastapi.testclient import TestClient

from shared.logs import JsonFormatter, request_id
from shared.ops import ops_router


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
    assert answer.json() == {"ready": False, "checks": {"kafka": True, "database": False}}


def test_readyz_healthz_and_metrics_when_all_is_well() -> None:
    client = _app(ready=True)
    assert client.get("/readyz").json()["ready"] is True
    assert client.get("/healthz").json() == {"status": "ok"}
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "churnwatch_ready 1.0" in metrics.text
