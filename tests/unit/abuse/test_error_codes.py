"""scoring's and alerts' error answers all carry a machine-readable code, also the ones the
framework makes itself — an unknown route, a wrong method, a body it cannot parse (issue 9's
abuse tests found them answered with a bare sentence). No connection is opened: these are
answered before anything reaches the database."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.alerts.app import build_app as alerts_app
from services.alerts.settings import AlertsSettings
from services.scoring import model
from services.scoring.app import build_app as scoring_app
from services.scoring.settings import ScoringSettings
from shared.clock import SystemClock
from shared.ops import Draining


def apps() -> dict[str, FastAPI]:
    return {
        "alerts": alerts_app(AlertsSettings(), Draining()),
        "scoring": scoring_app(
            ScoringSettings(), model.load(model.DEFAULT_MODEL_FILE), SystemClock(), Draining()
        ),
    }


@pytest.mark.parametrize("service", ["alerts", "scoring"])
@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/no/such/route", 404, "not_found"),
        ("DELETE", "/healthz", 405, "method_not_allowed"),
    ],
)
def test_framework_errors_carry_a_code(
    service: str, method: str, path: str, status: int, code: str
) -> None:
    answer = TestClient(apps()[service]).request(method, path)
    assert answer.status_code == status
    assert answer.json()["detail"]["code"] == code


@pytest.mark.parametrize(
    "body",
    [b'{"a": "\xff\xfe"}', b"[" * 100_000 + b"]" * 100_000],
    ids=["not UTF-8", "nested 100,000 deep"],
)
def test_an_alerts_body_that_cannot_be_parsed_is_answered_400_with_a_code(body: bytes) -> None:
    answer = TestClient(apps()["alerts"]).post(
        "/v1/silences", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json()["detail"]["code"] == "invalid_body"
