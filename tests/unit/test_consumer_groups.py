"""The consumer services name their Kafka consumer groups the same way: ``<TOPIC_PREFIX><service>``
by default, ``<SERVICE>_CONSUMER_GROUP`` to choose another. The KEDA ScaledObjects and the lag
alert in deploy/k8s name the same groups (tests/deploy checks them against these settings)."""

from __future__ import annotations

import pytest

from services.alerts.settings import AlertsSettings
from services.scoring.settings import ScoringSettings

CONSUMERS = {"scoring": ScoringSettings, "alerts": AlertsSettings}


@pytest.mark.parametrize("service", sorted(CONSUMERS))
def test_a_consumer_group_defaults_to_the_topic_prefix_and_the_service_name(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(f"{service.upper()}_CONSUMER_GROUP", raising=False)
    monkeypatch.delenv("TOPIC_PREFIX", raising=False)
    assert CONSUMERS[service]().group == f"churnwatch.{service}"

    monkeypatch.setenv("TOPIC_PREFIX", "staging.cw.")
    assert CONSUMERS[service]().group == f"staging.cw.{service}"


@pytest.mark.parametrize("service", sorted(CONSUMERS))
def test_a_consumer_group_is_set_by_its_services_own_variable(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOPIC_PREFIX", "staging.cw.")
    monkeypatch.setenv(f"{service.upper()}_CONSUMER_GROUP", "legacy-group")
    assert CONSUMERS[service]().group == "legacy-group"
    other = next(name for name in CONSUMERS if name != service)
    assert CONSUMERS[other]().group == f"staging.cw.{other}"  # only its own service's
