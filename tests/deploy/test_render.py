"""Every overlay renders, and each carries what its environment promises."""

from __future__ import annotations

from tests.deploy.conftest import SERVICES, Rendered, pod_spec


def test_every_overlay_renders_the_services_the_job_the_topics_and_the_monitoring(
    overlay: Rendered,
) -> None:
    names = {f"churnwatch-{service}" for service in SERVICES}
    assert overlay.names("Deployment") == names
    assert overlay.names("Service") == names
    assert overlay.names("PodDisruptionBudget") == names
    assert overlay.names("ServiceAccount") == names | {"churnwatch-migrations"}
    assert overlay.names("Job") == {"churnwatch-migrate"}
    assert overlay.of_kind("KafkaTopic")
    assert overlay.names("ServiceMonitor") == {"churnwatch"}
    assert overlay.names("PrometheusRule") == {"churnwatch"}


def test_no_secret_values_are_rendered(overlay: Rendered) -> None:
    assert overlay.of_kind("Secret") == []
    for doc in overlay.of_kind("ConfigMap"):
        for key in doc.get("data", {}):
            assert not any(word in key for word in ("PASSWORD", "SECRET", "TOKEN", "API_KEYS"))
            assert key != "DATABASE_URL", "DATABASE_URL carries a password: it is a Secret"


def test_dev_runs_one_small_replica_of_everything_without_autoscaling(
    rendered: dict[str, Rendered],
) -> None:
    dev = rendered["dev"]
    for deployment in dev.of_kind("Deployment"):
        assert deployment["spec"]["replicas"] == 1
        for container in pod_spec(deployment)["containers"]:
            assert container["resources"]["requests"]["memory"] == "128Mi"
    assert dev.of_kind("HorizontalPodAutoscaler") == []
    assert dev.of_kind("ScaledObject") == []
    for topic in dev.of_kind("KafkaTopic"):
        assert topic["spec"]["replicas"] == 1
        assert topic["spec"]["config"]["min.insync.replicas"] == "1"


def test_prod_scales_ingest_on_cpu_and_the_consumers_on_kafka_lag(
    rendered: dict[str, Rendered],
) -> None:
    prod = rendered["prod"]
    hpa = prod.one("HorizontalPodAutoscaler", "churnwatch-ingest")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "churnwatch-ingest"
    assert hpa["spec"]["minReplicas"] >= 2
    scaled = {doc["spec"]["scaleTargetRef"]["name"] for doc in prod.of_kind("ScaledObject")}
    assert scaled == {"churnwatch-scoring", "churnwatch-alerts"}
    for doc in prod.of_kind("ScaledObject"):
        assert [t["type"] for t in doc["spec"]["triggers"]] == ["kafka"]
        # More consumers than the widest topic's partitions would sit idle.
        assert doc["spec"]["maxReplicaCount"] <= 6
    for name in ("churnwatch-ingest", "churnwatch-scoring", "churnwatch-alerts"):
        # The autoscaler owns the replica count; a fixed one would fight it on every apply.
        assert "replicas" not in prod.one("Deployment", name)["spec"]


def test_prod_spreads_each_service_over_nodes_and_zones(rendered: dict[str, Rendered]) -> None:
    for deployment in rendered["prod"].of_kind("Deployment"):
        spec = pod_spec(deployment)
        own = deployment["spec"]["selector"]["matchLabels"]
        anti = spec["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        assert anti[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == own
        assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
        assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        for constraint in spec["topologySpreadConstraints"]:
            assert constraint["labelSelector"]["matchLabels"] == own


def test_prod_topics_survive_the_loss_of_a_broker(rendered: dict[str, Rendered]) -> None:
    for topic in rendered["prod"].of_kind("KafkaTopic"):
        assert topic["spec"]["replicas"] == 3
        assert topic["spec"]["config"]["min.insync.replicas"] == "2"


def test_every_resource_names_its_namespace(overlay: Rendered) -> None:
    # A resource without one lands in whatever namespace kubectl happens to point at.
    for doc in overlay.docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") in {"churnwatch", "kafka"}, (
                f"{doc['kind']}/{doc['metadata']['name']}"
            )
