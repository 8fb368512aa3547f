"""The app is wired from settings alone (no connection is opened until it starts)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.alerts.app import build_app
from services.alerts.settings import AlertsSettings
from shared.ops import Draining


def test_the_app_serves_the_api_links_and_operational_endpoints() -> None:
    app = build_app(AlertsSettings(), Draining())
    paths = set(app.openapi()["paths"])
    assert {
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/alerts",
        "/v1/alerts/{alert_id}/ack",
        "/v1/alerts/{alert_id}/snooze",
        "/v1/alerts/{alert_id}/resolve",
        "/v1/silences",
        "/v1/silences/{silence_id}",
        "/links/{token}",
    } <= paths


def test_settings_read_the_alerts_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTS_GROUP_WAIT_SECONDS", "0")
    monkeypatch.setenv("ALERTS_PORT", "9102")
    settings = AlertsSettings()
    assert (settings.group_wait_seconds, settings.port) == (0, 9102)
    assert AlertsSettings.model_fields["port"].default == 8002


def test_a_lease_shorter_than_a_send_timeout_is_refused() -> None:
    with pytest.raises(ValidationError, match="LEASE"):
        AlertsSettings(delivery_lease_seconds=5, slack_timeout_seconds=10)


def test_an_invalid_rules_file_stops_the_start(tmp_path: Path) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text('version = 1\n[[rule]]\nname = "x"\nkind = "band_worsened"\n')
    with pytest.raises(ValueError, match="invalid rules"):
        build_app(AlertsSettings(rules_file=bad), Draining())


def test_a_score_history_purged_before_the_rules_read_it_stops_the_start() -> None:
    default = AlertsSettings()  # the bundled rules read 14 days of history
    build_app(AlertsSettings(retain_history_days=14), Draining())
    with pytest.raises(ValueError, match="ALERTS_RETAIN_HISTORY_DAYS=13"):
        build_app(AlertsSettings(retain_history_days=13), Draining())
    assert default.retain_history_days >= 14


def test_slack_interactivity_is_on_only_with_a_signing_secret() -> None:
    from pydantic import SecretStr

    from services.alerts.app import signing_secret

    assert signing_secret(AlertsSettings()) is None
    assert signing_secret(AlertsSettings(slack_signing_secret=SecretStr("  "))) is None
    assert signing_secret(AlertsSettings(slack_signing_secret=SecretStr("s3cret"))) == "s3cret"
    paths = set(build_app(AlertsSettings(), Draining()).openapi()["paths"])
    assert {
        "/v1/slack/interactions",
        "/v1/alerts/{alert_id}/feedback",
        "/v1/rules/feedback",
        "/v1/feedback",
    } <= paths
