"""What every churnwatch pod promises, in both overlays: the right process on the right port,
probes, resources, a restricted security context, configuration from a ConfigMap and its own
Secret, the migration gate, disruption budgets and the network it may use."""

from __future__ import annotations

from typing import Any

from shared.migrations import SERVICES_WITH_TABLES
from shared.settings import ServiceSettings
from tests.deploy.conftest import (
    ROOT,
    SERVICES,
    Doc,
    Rendered,
    pod_spec,
    settings_config_map,
    workloads,
)

PORTS = {"ingest": 8000, "scoring": 8001, "alerts": 8002, "console": 8004}


def component(doc: Doc) -> str:
    label: str = doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
    return label


def all_containers(doc: Doc) -> list[Doc]:
    spec = pod_spec(doc)
    containers: list[Doc] = spec.get("initContainers", []) + spec["containers"]
    return containers


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", "extend this evaluator for other operators"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def test_each_deployment_runs_its_service_on_its_port(overlay: Rendered) -> None:
    for deployment in overlay.of_kind("Deployment"):
        name = component(deployment)
        assert (ROOT / "services" / name).is_dir()
        (container,) = pod_spec(deployment)["containers"]
        assert container["command"] == ["python", "-m", f"services.{name}"]
        assert container["ports"] == [
            {"name": "http", "containerPort": PORTS[name], "protocol": "TCP"}
        ]
        env = {item["name"]: item["value"] for item in container["env"]}
        prefix = name.upper()
        assert env[f"{prefix}_PORT"] == str(PORTS[name])
        assert env[f"{prefix}_HOST"] == "0.0.0.0"  # the settings' default is loopback only
        service = overlay.one("Service", f"churnwatch-{name}")
        assert selects(service["spec"], deployment["spec"]["template"]["metadata"]["labels"])
        assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_probes_ask_healthz_for_liveness_and_startup_and_readyz_for_readiness(
    overlay: Rendered,
) -> None:
    for deployment in overlay.of_kind("Deployment"):
        (container,) = pod_spec(deployment)["containers"]
        for probe, path in (
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ):
            assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe


def test_every_container_has_requests_and_limits_and_a_restricted_security_context(
    overlay: Rendered,
) -> None:
    for workload in workloads(overlay):
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        (tmp,) = spec["volumes"]
        assert tmp["name"] == "tmp"
        assert tmp["emptyDir"]["medium"] == "Memory"
        assert tmp["emptyDir"]["sizeLimit"]
        for container in all_containers(workload):
            for kind in ("requests", "limits"):
                assert set(container["resources"][kind]) == {"cpu", "memory"}, container["name"]
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["runAsNonRoot"] is True
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    for account in overlay.of_kind("ServiceAccount"):
        assert account["automountServiceAccountToken"] is False


def test_configuration_comes_from_the_shared_configmap_and_the_workloads_own_secret(
    overlay: Rendered,
) -> None:
    configmap = settings_config_map(overlay)
    for workload in workloads(overlay):
        own = f"churnwatch-{component(workload)}"
        for container in all_containers(workload):
            sources = container["envFrom"]
            assert sources == [
                {"configMapRef": {"name": configmap["metadata"]["name"]}},
                {"secretRef": {"name": own}},
            ], container["name"]


def test_services_with_tables_wait_for_the_migration_job_and_others_do_not(
    overlay: Rendered,
) -> None:
    job = overlay.one("Job", "churnwatch-migrate")
    (migrate,) = pod_spec(job)["containers"]
    assert migrate["command"] == ["python", "-m", "shared.migrations", "upgrade"]
    assert pod_spec(job)["restartPolicy"] == "OnFailure"
    for deployment in overlay.of_kind("Deployment"):
        init = pod_spec(deployment).get("initContainers", [])
        if component(deployment) in SERVICES_WITH_TABLES:
            (gate,) = init
            assert gate["command"][:4] == ["python", "-m", "shared.migrations", "wait"]
            assert gate["image"] == migrate["image"]
        else:
            assert init == []


def test_shutdown_has_time_to_drain_and_finish_before_the_kill(overlay: Rendered) -> None:
    fields = ServiceSettings.model_fields
    drain = fields["shutdown_drain_seconds"].default
    grace = fields["shutdown_grace_seconds"].default
    for deployment in overlay.of_kind("Deployment"):
        spec = pod_spec(deployment)
        (container,) = spec["containers"]
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {})
        needed = pre_stop.get("seconds", 0) + drain + grace
        assert spec["terminationGracePeriodSeconds"] > needed, component(deployment)


def test_every_deployment_has_a_disruption_budget_that_allows_draining_a_node(
    overlay: Rendered,
) -> None:
    for deployment in overlay.of_kind("Deployment"):
        budget = overlay.one("PodDisruptionBudget", deployment["metadata"]["name"])
        assert budget["spec"]["selector"] == deployment["spec"]["selector"]
        assert budget["spec"]["maxUnavailable"] == 1  # also right for a single replica


def allowed(overlay: Rendered, labels: dict[str, str], direction: str) -> set[Any]:
    ports: set[Any] = set()
    policies = [
        p for p in overlay.of_kind("NetworkPolicy") if selects(p["spec"]["podSelector"], labels)
    ]
    for policy in policies:
        for rule in policy["spec"].get(direction, []):
            ports |= {port["port"] for port in rule["ports"]}
    return ports


def test_network_is_denied_by_default_and_opened_only_where_each_needs_it(
    overlay: Rendered,
) -> None:
    deny = overlay.one("NetworkPolicy", "churnwatch-default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    dns, kafka, db, delivery = {53}, {9092, 9093}, {5432}, {443, 587, 465, 25}
    egress = {
        "ingest": dns | kafka,
        "scoring": dns | kafka | db,
        "alerts": dns | kafka | db | delivery,
        "console": dns | {"http", 587, 465, 25},  # scoring's and alerts' APIs; sign-in mail
        "migrations": dns | db,
    }
    for workload in workloads(overlay):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        name = component(workload)
        assert allowed(overlay, labels, "egress") == egress[name], name
        assert allowed(overlay, labels, "ingress") == ({"http"} if name in SERVICES else set())


def test_delivery_egress_stays_off_private_networks(overlay: Rendered) -> None:
    for name in ("churnwatch-allow-alerts-delivery", "churnwatch-allow-console-mail"):
        policy = overlay.one("NetworkPolicy", name)
        (rule,) = policy["spec"]["egress"]
        (peer,) = rule["to"]
        assert peer["ipBlock"]["cidr"] == "0.0.0.0/0"
        assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= set(peer["ipBlock"]["except"])


def test_the_console_reaches_scoring_and_alerts_only_and_they_admit_it(overlay: Rendered) -> None:
    console = {"app.kubernetes.io/name": "churnwatch", "app.kubernetes.io/component": "console"}
    (rule,) = overlay.one("NetworkPolicy", "churnwatch-allow-console-to-apis")["spec"]["egress"]
    (peer,) = rule["to"]
    targets = {name: {**console, "app.kubernetes.io/component": name} for name in SERVICES}
    reached = {name for name, labels in targets.items() if selects(peer["podSelector"], labels)}
    assert reached == {"scoring", "alerts"}
    admit = overlay.one("NetworkPolicy", "churnwatch-allow-apis-from-console")["spec"]
    admitted = {n for n, labels in targets.items() if selects(admit["podSelector"], labels)}
    assert admitted == {"scoring", "alerts"}
    (incoming,) = admit["ingress"]
    (source,) = incoming["from"]
    assert selects(source["podSelector"], console)
