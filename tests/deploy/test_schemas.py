"""Every rendered resource validates against its schema in strict mode: Kubernetes' own kinds
with kubernetes-validate, the operators' custom resources (Strimzi, KEDA, Prometheus Operator)
with the schemas in ``crd_schemas/`` — and a resource of any other kind fails."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml  # type: ignore[import-untyped]  # no stubs in the lock
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.deploy.conftest import Doc, Rendered, run

# The oldest Kubernetes the manifests support (kubectl 1.32 renders them) and the newest whose
# schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.32.0", "1.37.0")
CRD_SCHEMAS = Path(__file__).resolve().parent / "crd_schemas"


def is_builtin(doc: Doc) -> bool:
    group = doc["apiVersion"].rpartition("/")[0]
    return group == "" or "." not in group or group.endswith(".k8s.io")


def crd_key(doc: Doc) -> str:
    group, _, version = doc["apiVersion"].rpartition("/")
    return f"{doc['kind']}.{group}.{version}"


@cache
def crd_validators() -> dict[str, jsonschema.Draft202012Validator]:
    schemas = {path.stem: yaml.safe_load(path.read_text()) for path in CRD_SCHEMAS.glob("*.yaml")}
    registry: Registry[Any] = Registry().with_resources(
        (f"{name}.yaml", Resource.from_contents(schema, default_specification=DRAFT202012))
        for name, schema in schemas.items()
    )
    return {
        name: jsonschema.Draft202012Validator(schema, registry=registry)
        for name, schema in schemas.items()
        if not name.startswith("_")
    }


def kubernetes_validate(
    tools: dict[str, list[str]], docs: list[Doc], path: Path, version: str
) -> tuple[int, str]:
    path.write_text(yaml.safe_dump_all(docs))
    done = run([*tools["kubernetes_validate"], "--strict", "-k", version, str(path)])
    return done.returncode, done.stdout + done.stderr


def crd_errors(doc: Doc) -> list[str]:
    validator = crd_validators()[crd_key(doc)]
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_kinds_validate_strictly(
    overlay: Rendered, tools: dict[str, list[str]], tmp_path: Path, version: str
) -> None:
    builtins = [doc for doc in overlay.docs if is_builtin(doc)]
    code, output = kubernetes_validate(tools, builtins, tmp_path / "builtins.yaml", version)
    assert code == 0, output
    short = version.rsplit(".", 1)[0]
    assert output.count(f"against version {short}") == len(builtins), output


def test_custom_resources_validate_against_their_schemas(overlay: Rendered) -> None:
    custom = [doc for doc in overlay.docs if not is_builtin(doc)]
    assert custom
    for doc in custom:
        assert crd_key(doc) in crd_validators(), f"no schema for {crd_key(doc)}: add one"
        assert crd_errors(doc) == [], doc["metadata"]["name"]


def test_strict_validation_refuses_a_misspelt_field(
    rendered: dict[str, Rendered], tools: dict[str, list[str]], tmp_path: Path
) -> None:
    deployment = copy.deepcopy(rendered["prod"].one("Deployment", "churnwatch-ingest"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    code, output = kubernetes_validate(tools, [deployment], tmp_path / "bad.yaml", "1.32.0")
    assert code != 0
    assert "livenesProbe" in output


def test_custom_resource_schemas_refuse_misspelt_and_mistyped_fields(
    rendered: dict[str, Rendered],
) -> None:
    topic = copy.deepcopy(rendered["prod"].of_kind("KafkaTopic")[0])
    topic["spec"]["partition"] = 3
    assert crd_errors(topic)

    scaled = copy.deepcopy(rendered["prod"].one("ScaledObject", "churnwatch-scoring"))
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 5000  # KEDA wants strings
    assert crd_errors(scaled)

    rule = copy.deepcopy(rendered["prod"].one("PrometheusRule", "churnwatch"))
    rule["spec"]["groups"][0]["rules"][0]["for"] = "ten minutes"
    assert crd_errors(rule)

    monitor = copy.deepcopy(rendered["prod"].one("ServiceMonitor", "churnwatch"))
    monitor["spec"]["endpoints"][0]["metricsPath"] = "/metrics"
    assert crd_errors(monitor)
