"""Every service's error answers are one envelope, ``{"code", "message", "errors"?}`` at the top
level (``shared.errors``), with a machine-readable code also for the ones the framework makes
itself — an unknown route, a wrong method, a body it cannot parse (issue 9's abuse tests found
them answered with a bare sentence). No connection is opened: these are answered before
anything reaches the database or Kafka."""

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
from tests.unit.ingest.fakes import RecordingPublisher, bearer
from tests.unit.ingest.fakes import app as ingest_app


def apps() -> dict[str, FastAPI]:
    return {
        "alerts": alerts_app(AlertsSettings(), Draining()),
        "scoring": scoring_app(
            ScoringSettings(), model.load(model.DEFAULT_MODEL_FILE), SystemClock(), Draining()
        ),
        "ingest": ingest_app(RecordingPublisher()),
    }


def envelope(body: object) -> dict[str, object]:
    """The body, checked to be the envelope and nothing else."""
    assert isinstance(body, dict)
    assert {"code", "message"} <= set(body) <= {"code", "message", "errors"}, body
    assert isinstance(body["code"], str)
    assert isinstance(body["message"], str)
    return body


@pytest.mark.parametrize("service", ["alerts", "scoring", "ingest"])
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
    assert envelope(answer.json())["code"] == code


@pytest.mark.parametrize(
    ("service", "path", "code"),
    [
        ("alerts", "/v1/alerts", "unauthenticated"),
        ("scoring", "/v1/accounts/a/health", "unauthenticated"),
        ("ingest", "/v1/events", "unauthenticated"),
    ],
)
def test_a_refusal_is_the_same_envelope_in_every_service(
    service: str, path: str, code: str
) -> None:
    method = "POST" if service == "ingest" else "GET"
    answer = TestClient(apps()[service]).request(method, path)
    assert answer.status_code == 401
    assert envelope(answer.json())["code"] == code


def test_ingest_s_own_refusals_are_the_envelope_too() -> None:
    answer = TestClient(apps()["ingest"]).post(
        "/v1/events", content=b"{}", headers={"content-type": "text/csv", **bearer("events")}
    )
    assert answer.status_code == 415
    assert envelope(answer.json())["code"] == "unsupported_media_type"
