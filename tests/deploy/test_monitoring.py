"""Monitoring: the ServiceMonitor scrapes every service, and the PrometheusRule has the alerts
SREs were promised, each linked to its runbook entry, on metrics that exist."""

from __future__ import annotations

import json
import re

from prometheus_client import REGISTRY

import shared.kafka
import shared.ops
from tests.deploy.conftest import ROOT, Doc, Rendered

OPERATIONS = ROOT / "docs" / "operations.md"
ALERTS = {
    "ChurnwatchConsumerLagHigh",
    "ChurnwatchDeadLettersGrowing",
    "ChurnwatchDeliveryFailures",
    "ChurnwatchOutboxOldestAge",
    "ChurnwatchIngest5xxRate",
    "ChurnwatchReadinessFlapping",
}
# Expressions on a service's own metrics, to be checked once that service's metrics exist.
DRAFTS = {"ChurnwatchDeliveryFailures", "ChurnwatchOutboxOldestAge", "ChurnwatchIngest5xxRate"}


def alert_rules(overlay: Rendered) -> dict[str, Doc]:
    (rule,) = overlay.of_kind("PrometheusRule")
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for line in markdown.splitlines():
        heading = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if heading:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).lower())
            found.add(text.replace(" ", "-"))
    return found


def exported_metric_names() -> set[str]:
    """Every series name the process can export, whether or not it has a sample yet."""
    assert shared.kafka.LAG is not None  # importing the modules registers their metrics
    assert shared.ops.READY is not None
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("_sum", "_count"),
    }
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ())}
    return names


def test_the_promised_alerts_exist_each_with_a_severity_and_a_summary(overlay: Rendered) -> None:
    rules = alert_rules(overlay)
    assert set(rules) == ALERTS
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name


def test_every_alert_links_an_entry_of_the_operations_runbook(overlay: Rendered) -> None:
    existing = anchors(OPERATIONS.read_text())
    for name, rule in alert_rules(overlay).items():
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert path == "docs/operations.md", name
        assert anchor in existing, f"{name}: docs/operations.md has no heading #{anchor}"


def test_finished_alerts_use_only_metrics_the_code_exports(overlay: Rendered) -> None:
    exported = exported_metric_names()
    assert {"churnwatch_consumer_lag", "churnwatch_ready"} <= exported  # the shared ones
    rules = alert_rules(overlay)
    assert {name for name, rule in rules.items() if "draft" in rule["annotations"]} == DRAFTS
    for name, rule in rules.items():
        if name in DRAFTS:
            continue
        used = set(re.findall(r"\bchurnwatch_[a-z0-9_]+", rule["expr"]))
        assert used, name
        assert used <= exported, f"{name} uses unknown metrics {used - exported}"


def test_the_service_monitor_scrapes_every_service_on_its_metrics_port(overlay: Rendered) -> None:
    (monitor,) = overlay.of_kind("ServiceMonitor")
    selector = monitor["spec"]["selector"]
    scraped = []
    for service in overlay.of_kind("Service"):
        labels = service["metadata"]["labels"]
        if all(labels.get(k) == v for k, v in selector["matchLabels"].items()) and all(
            labels.get(e["key"]) in e["values"] for e in selector["matchExpressions"]
        ):
            scraped.append(service["metadata"]["name"])
            ports = {port["name"] for port in service["spec"]["ports"]}
            assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
    assert sorted(scraped) == sorted(overlay.names("Service"))
    assert [e["path"] for e in monitor["spec"]["endpoints"]] == ["/metrics"]


def test_the_dashboard_is_provisioned_and_charts_only_metrics_the_code_exports(
    overlay: Rendered,
) -> None:
    (configmap,) = [
        doc
        for doc in overlay.of_kind("ConfigMap")
        if doc["metadata"]["name"] == "churnwatch-dashboard"
    ]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(configmap["data"]["churnwatch.json"])
    assert dashboard["uid"] == "churnwatch-overview"
    exported = exported_metric_names()
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]
    assert exprs
    for expr in exprs:
        used = set(re.findall(r"\bchurnwatch_[a-z0-9_]+", expr))
        assert used, expr
        assert used <= exported, f"unknown metrics {used - exported}"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
