"""Monitoring: the ServiceMonitor scrapes every service, the PrometheusRule has the alerts SREs
were promised, each linked to its runbook entry, and the alerts and the Grafana dashboard read
only metrics the code exports, with labels those metrics carry."""

from __future__ import annotations

import json
import re
import subprocess

from prometheus_client import REGISTRY

import services.alerts.metrics
import services.ingest.metrics
import services.scoring.metrics
import shared.kafka
import shared.ops
from tests.deploy.conftest import ROOT, Doc, Rendered

OPERATIONS = ROOT / "docs" / "operations.md"
ALERTS = {
    "ChurnwatchConsumerLagHigh",
    "ChurnwatchConsumerStalled",
    "ChurnwatchDeadLettersGrowing",
    "ChurnwatchDeliveryFailures",
    "ChurnwatchOutboxOldestAge",
    "ChurnwatchIngest5xxRate",
    "ChurnwatchReadinessFlapping",
}
# Labels Prometheus adds to every series it scrapes through the ServiceMonitor.
TARGET_LABELS = {"namespace", "pod", "job", "instance", "service", "container", "endpoint"}
# The dashboard's rows, each with metrics it must chart (the list of what to show).
THEMES = {
    "Throughput": {
        "churnwatch_ingest_items_accepted_total",
        "churnwatch_consumer_records_total",
        "churnwatch_scoring_events_consumed_total",
    },
    "Errors": {
        "churnwatch_ingest_requests_total",
        "churnwatch_dead_letters_total",
        "churnwatch_consumer_handler_failures_total",
    },
    "Latencies": {
        "churnwatch_ingest_request_seconds_bucket",
        "churnwatch_consumer_batch_seconds_bucket",
        "churnwatch_alerts_send_seconds_bucket",
    },
    "Lag and backlogs": {"churnwatch_consumer_lag", "churnwatch_alerts_outbox_oldest_age_seconds"},
    "Accounts per band": {"churnwatch_scoring_accounts"},
    "Deliveries": {"churnwatch_alerts_deliveries_total"},
}

SELECTOR = re.compile(r"\b(churnwatch_[a-z0-9_]+)\b(?:\s*\{([^}]*)\})?")
MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


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


def exported_metrics() -> dict[str, set[str]]:
    """Every series name the code can export (with or without a sample yet) → its labels."""
    modules = (services.ingest.metrics, services.scoring.metrics, services.alerts.metrics)
    assert all(modules)  # importing the modules registered their metrics
    assert shared.kafka.LAG is not None
    assert shared.ops.READY is not None
    found = {}
    for name, collector in REGISTRY._names_to_collectors.items():
        if name.startswith("churnwatch_"):
            labels = set(getattr(collector, "_labelnames", ()))
            found[name] = labels | ({"le"} if name.endswith("_bucket") else set())
    return found


def unknown_metrics_and_labels(expr: str, exported: dict[str, set[str]]) -> list[str]:
    """What ``expr`` reads that the code does not export: metric names, matcher labels of a
    metric, and grouping labels none of the expression's metrics carry."""
    problems = []
    seen: set[str] = set()
    for metric, matchers in SELECTOR.findall(expr):
        if metric not in exported:
            problems.append(f"unknown metric {metric}")
            continue
        seen |= exported[metric]
        for label in MATCHER.findall(matchers):
            if label not in exported[metric] | TARGET_LABELS:
                problems.append(f"{metric} has no label {label!r}")
    for grouping in GROUPING.findall(expr):
        for label in filter(None, (part.strip() for part in grouping.split(","))):
            if label not in seen | TARGET_LABELS:
                problems.append(f"no metric of the expression has the label {label!r}")
    return problems


def metrics_of(expr: str) -> set[str]:
    return {metric for metric, _ in SELECTOR.findall(expr)}


def dashboard(overlay: Rendered) -> Doc:
    (configmap,) = [
        doc
        for doc in overlay.of_kind("ConfigMap")
        if doc["metadata"]["name"] == "churnwatch-dashboard"
    ]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    found: Doc = json.loads(configmap["data"]["churnwatch.json"])
    return found


def charted(panels: list[Doc]) -> list[str]:
    return [
        target["expr"] for panel in panels if panel["type"] != "row" for target in panel["targets"]
    ]


def parse_errors(tools: dict[str, list[str]], exprs: list[str]) -> list[dict[str, str]]:
    """What the PromQL parser (deploy/tools/promql_check.py) says about each expression."""
    done = subprocess.run(
        tools["promql_check"], input=json.dumps(exprs), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    errors: list[dict[str, str]] = json.loads(done.stdout)
    return errors


def grafana_free(expr: str) -> str:
    """The expression as Grafana sends it: its variables replaced by values."""
    return expr.replace("$__rate_interval", "2m").replace("$namespace", "churnwatch")


def test_the_checker_catches_unknown_metrics_and_labels() -> None:
    exported = exported_metrics()
    good = (
        'sum by (namespace, channel) (rate(churnwatch_alerts_deliveries_total{outcome="sent"}[5m]))'
    )
    assert unknown_metrics_and_labels(good, exported) == []
    assert unknown_metrics_and_labels("rate(churnwatch_alerts_delivered_total[5m])", exported)
    assert unknown_metrics_and_labels(
        'rate(churnwatch_alerts_deliveries_total{chanel="slack"}[5m])', exported
    )
    assert unknown_metrics_and_labels(
        "sum by (chanel) (rate(churnwatch_alerts_deliveries_total[5m]))", exported
    )


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


def test_every_alert_reads_only_metrics_and_labels_the_code_exports(overlay: Rendered) -> None:
    exported = exported_metrics()
    for name, rule in alert_rules(overlay).items():
        assert "draft" not in rule["annotations"], name
        assert metrics_of(rule["expr"]), name
        assert unknown_metrics_and_labels(rule["expr"], exported) == [], name


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


def test_the_dashboard_is_provisioned_and_charts_only_metrics_and_labels_the_code_exports(
    overlay: Rendered,
) -> None:
    board = dashboard(overlay)
    assert board["uid"] == "churnwatch-overview"
    exported = exported_metrics()
    exprs = charted(board["panels"])
    assert exprs
    for expr in exprs:
        assert metrics_of(expr), expr
        assert unknown_metrics_and_labels(expr, exported) == [], expr
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))


def test_every_alert_and_panel_expression_is_valid_promql(
    overlay: Rendered, tools: dict[str, list[str]]
) -> None:
    exprs = [rule["expr"] for rule in alert_rules(overlay).values()]
    exprs += [grafana_free(expr) for expr in charted(dashboard(overlay)["panels"])]
    assert parse_errors(tools, exprs) == []
    # and the parser does say no
    assert parse_errors(tools, ["sum by (group (churnwatch_consumer_lag)"])


def test_the_dashboard_has_a_row_per_promised_view_charting_its_metrics(
    overlay: Rendered,
) -> None:
    rows: dict[str, list[Doc]] = {}
    current: list[Doc] = []
    for panel in dashboard(overlay)["panels"]:
        if panel["type"] == "row":
            current = rows.setdefault(panel["title"], [])
        else:
            current.append(panel)
    assert set(THEMES) <= set(rows)
    for theme, needed in THEMES.items():
        used = set().union(*(metrics_of(expr) for expr in charted(rows[theme])))
        assert needed <= used, f"row {theme!r} does not chart {needed - used}"
    # Each service's own metrics are on the board, and so is whatever an alert can page about.
    everything = set().union(*(metrics_of(expr) for expr in charted(dashboard(overlay)["panels"])))
    for service in ("ingest", "scoring", "alerts"):
        assert any(name.startswith(f"churnwatch_{service}_") for name in everything), service
    for name, rule in alert_rules(overlay).items():
        assert metrics_of(rule["expr"]) <= everything, f"{name}: its metrics are not charted"


def test_the_dashboard_panels_do_not_overlap(overlay: Rendered) -> None:
    boxes = [(panel["title"], panel["gridPos"]) for panel in dashboard(overlay)["panels"]]
    for title, box in boxes:
        assert box["x"] + box["w"] <= 24, title
    for i, (first, a) in enumerate(boxes):
        for second, b in boxes[i + 1 :]:
            apart = (
                a["x"] + a["w"] <= b["x"]
                or b["x"] + b["w"] <= a["x"]
                or a["y"] + a["h"] <= b["y"]
                or b["y"] + b["h"] <= a["y"]
            )
            assert apart, f"{first!r} overlaps {second!r}"
