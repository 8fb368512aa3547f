"""Configuration, checked against the code rather than against a list kept by hand:

- every variable the manifests set is a real setting of the process that reads it, and each
  service's settings class accepts the environment its pod gets (so a pod starts);
- every secret a service has (each ``SecretStr`` setting) comes from that service's Secret, never
  from the ConfigMap;
- the consumer groups KEDA scales on and the lag alert watches are those the services join;
- ``docs/operations.md`` has one table naming every environment variable of every settings class
  (``services/*/settings.py``, which inherit the ``shared.settings`` mix-ins and
  ``shared.clock.ClockSettings``) with its real default, and nothing else.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs in the lock
from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

import shared.clock
import shared.settings
from tests.deploy.conftest import ROOT, SERVICES, Doc, Rendered, pod_spec, settings_config_map

OPERATIONS = ROOT / "docs" / "operations.md"
PORTS = {"ingest": 8000, "scoring": 8001, "alerts": 8002, "console": 8004}
CONSUMERS = ("scoring", "alerts")
NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


# -- the settings classes, and the environment variable of each field ---------------------------


def service_settings() -> dict[str, type[BaseSettings]]:
    """The one settings class of each ``services/<name>/settings.py``."""
    found = {}
    for path in sorted((ROOT / "services").glob("*/settings.py")):
        module = importlib.import_module(f"services.{path.parent.name}.settings")
        (cls,) = [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj)
            and issubclass(obj, BaseSettings)
            and obj.__module__ == module.__name__
        ]
        found[path.parent.name] = cls
    return found


def mixins() -> list[type[BaseSettings]]:
    """The shared settings every service class is built from."""
    found = [
        obj
        for module in (shared.settings, shared.clock)
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, BaseSettings)
        and obj is not BaseSettings
        and obj.__module__ == module.__name__
    ]
    assert found
    return found


def env_names(cls: type[BaseSettings]) -> dict[str, FieldInfo]:
    """Environment variable → the field it sets (an alias, else the prefix plus the name)."""
    prefix = cls.model_config.get("env_prefix") or ""
    names = {}
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            first = alias.choices[0]
            assert isinstance(first, str), name
            names[first] = field
        elif isinstance(alias, str):
            names[alias] = field
        else:
            names[f"{prefix}{name}".upper()] = field
    return names


def is_secret(field: FieldInfo) -> bool:
    annotation = field.annotation
    options = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
    return annotation is SecretStr or SecretStr in options


def all_env_names() -> dict[str, FieldInfo]:
    found: dict[str, FieldInfo] = {}
    for cls in service_settings().values():
        found |= env_names(cls)
    return found


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting of this machine's environment leaks into the settings built by a test."""
    for name in all_env_names():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_settings_discovery_finds_every_service_and_every_mixin_field() -> None:
    classes = service_settings()
    assert set(classes) == set(SERVICES)
    for service, cls in classes.items():
        assert cls.model_config.get("env_prefix") == f"{service.upper()}_"
    # Every shared field reaches the table through some service class.
    covered = set().union(*(cls.model_fields for cls in classes.values()))
    for mixin in mixins():
        assert set(mixin.model_fields) <= covered, mixin.__name__
    names = env_names(classes["scoring"])
    assert {"SCORING_HOST", "SCORING_CONSUMER_GROUP", "TOPIC_PREFIX", "CLOCK_SPEED"} <= set(names)
    assert "SCORING_TOPIC_PREFIX" not in names  # an alias is read as it is, unprefixed
    assert is_secret(names["DATABASE_URL"])
    assert not is_secret(names["KAFKA_SASL_USERNAME"])


# -- what the pods get ---------------------------------------------------------------------------


def component(doc: Doc) -> str:
    label: str = doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
    return label


def pod_environment(overlay: Rendered, deployment: Doc) -> dict[str, str]:
    """The variables a service's container gets from the manifests (Secrets aside)."""
    (container,) = pod_spec(deployment)["containers"]
    env = dict(settings_config_map(overlay)["data"])
    env |= {item["name"]: item["value"] for item in container.get("env", [])}
    return env


def built_settings(
    monkeypatch: pytest.MonkeyPatch, cls: type[BaseSettings], env: dict[str, str]
) -> Any:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return cls()


def test_every_configmap_key_is_a_setting_some_process_reads(overlay: Rendered) -> None:
    known = set(all_env_names())
    keys = set(settings_config_map(overlay)["data"])
    assert keys
    assert keys <= known, f"not a setting of any service: {sorted(keys - known)}"


def test_compose_gives_each_process_only_settings_it_reads() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    classes = service_settings()
    readers = {name: set(env_names(cls)) for name, cls in classes.items()}
    readers["migrate"] = set(env_names(shared.settings.DatabaseSettings))
    for name, reads in readers.items():
        given = set(compose[name]["environment"])
        assert given <= reads, f"{name} does not read {sorted(given - reads)}"
    assert "DATABASE_URL" in compose["scoring"]["environment"]
    assert "DATABASE_URL" not in compose["ingest"]["environment"]


def test_each_service_starts_with_its_pods_environment_listening_on_every_address(
    overlay: Rendered, clean_environment: pytest.MonkeyPatch
) -> None:
    classes = service_settings()
    for deployment in overlay.of_kind("Deployment"):
        name = component(deployment)
        (container,) = pod_spec(deployment)["containers"]
        own = {item["name"] for item in container.get("env", [])}
        assert own <= set(env_names(classes[name])), (
            f"{name}: {own - set(env_names(classes[name]))}"
        )
        with clean_environment.context() as patch:
            settings = built_settings(patch, classes[name], pod_environment(overlay, deployment))
        assert settings.host == "0.0.0.0", name  # the default is loopback: unreachable in a pod
        assert settings.port == PORTS[name], name


def test_the_pod_check_would_catch_a_pool_too_small_for_scoring(
    rendered: dict[str, Rendered], clean_environment: pytest.MonkeyPatch
) -> None:
    overlay = rendered["dev"]
    deployment = overlay.one("Deployment", "churnwatch-scoring")
    env = pod_environment(overlay, deployment) | {"DATABASE_POOL_SIZE": "5"}
    with clean_environment.context() as patch, pytest.raises(ValueError, match="at least 7"):
        built_settings(patch, service_settings()["scoring"], env)


def secret_keys() -> dict[str, set[str]]:
    """The Secrets table of docs/operations.md: Secret name → the variables it holds."""
    section = OPERATIONS.read_text().split("### Secrets", 1)[1].split("\n#", 1)[0]
    found = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        secret = re.fullmatch(r"`(churnwatch-[a-z]+)`", cells[0])
        if secret and len(cells) == 2:
            found[secret.group(1)] = {
                token for token in re.findall(r"`([^`]+)`", cells[1]) if NAME.match(token)
            }
    return found


def test_every_secret_setting_comes_from_its_services_secret_and_never_the_configmap(
    overlay: Rendered,
) -> None:
    documented = secret_keys()
    configmap = set(settings_config_map(overlay)["data"])
    secrets_of_workloads = {
        f"churnwatch-{component(doc)}": doc
        for doc in overlay.of_kind("Deployment") + overlay.of_kind("Job")
    }
    assert set(documented) == set(secrets_of_workloads)
    for service, cls in service_settings().items():
        names = env_names(cls)
        secret = documented[f"churnwatch-{service}"]
        needed = {name for name, field in names.items() if is_secret(field)}
        assert needed <= secret, f"{service}: not in its Secret: {sorted(needed - secret)}"
        assert secret <= set(names), f"{service}: its Secret names {sorted(secret - set(names))}"
        assert not needed & configmap, f"secrets in the ConfigMap: {needed & configmap}"
    # The migration Job reads only the database settings.
    job = documented["churnwatch-migrations"]
    assert job == {"DATABASE_URL"}
    assert {"DATABASE_URL"} == {
        name
        for name, field in env_names(shared.settings.DatabaseSettings).items()
        if is_secret(field)
    }


def test_autoscaling_and_the_lag_alert_watch_the_groups_the_consumers_join(
    overlay: Rendered, clean_environment: pytest.MonkeyPatch
) -> None:
    classes = service_settings()
    groups = {}
    for name in CONSUMERS:
        deployment = overlay.one("Deployment", f"churnwatch-{name}")
        with clean_environment.context() as patch:
            env = pod_environment(overlay, deployment)
            groups[name] = built_settings(patch, classes[name], env).group
    assert groups == {"scoring": "churnwatch.scoring", "alerts": "churnwatch.alerts"}

    for scaled in overlay.of_kind("ScaledObject"):
        target = scaled["spec"]["scaleTargetRef"]["name"].removeprefix("churnwatch-")
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["metadata"]["consumerGroup"] == groups[target]

    (rules,) = overlay.of_kind("PrometheusRule")
    (lag,) = [
        rule
        for group in rules["spec"]["groups"]
        for rule in group["rules"]
        if rule["alert"] == "ChurnwatchConsumerLagHigh"
    ]
    assert set(re.findall(r'group="([^"]+)"', lag["expr"])) == set(groups.values())


# -- the table of every environment variable ------------------------------------------------------


def documented_variables() -> dict[str, tuple[str, str]]:
    """The table of docs/operations.md's "Configuration": variable → (default, meaning)."""
    section = OPERATIONS.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    lines = [line.strip() for line in section.splitlines() if line.strip().startswith("|")]
    header, rule, *rows = lines
    assert [cell.strip() for cell in header.strip("|").split("|")] == [
        "variable",
        "default",
        "meaning",
    ]
    assert set(rule) <= {"|", "-", " ", ":"}
    found: dict[str, tuple[str, str]] = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 3, row
        name, default, meaning = cells
        if re.fullmatch(r"\*\*[^*]+\*\*", name):  # a group heading row
            assert default == meaning == "", row
            continue
        match = re.fullmatch(r"`([A-Z][A-Z0-9_]*)`", name)
        assert match, f"one variable per row, in backticks: {row}"
        assert match.group(1) not in found, f"{match.group(1)} twice"
        assert default, row
        assert meaning, row
        found[match.group(1)] = (default, meaning)
    return found


def default_documented(cell: str, field: FieldInfo) -> bool:
    """Whether a table cell states ``field``'s default: its first `code` span is the value
    (``unset`` when there is none; a ``<placeholder>`` for a value computed from others)."""
    default = field.get_default(call_default_factory=True)
    if isinstance(default, SecretStr):
        default = default.get_secret_value()
    code = re.search(r"`([^`]*)`", cell)
    token = code.group(1) if code else None
    if default is None:
        return cell.startswith("unset") or (token is not None and token.startswith("<"))
    if token is None:
        return False
    if isinstance(default, bool):
        return token == str(default).lower()
    if isinstance(default, int | float):
        try:
            return float(token) == default
        except ValueError:
            return False
    if isinstance(default, Path):
        return token == str(default.relative_to(ROOT) if default.is_relative_to(ROOT) else default)
    if isinstance(default, list | dict):
        try:
            return bool(json.loads(token) == default)
        except ValueError:
            return False
    return token == str(default)


def test_operations_documents_every_environment_variable_and_only_those() -> None:
    real = all_env_names()
    documented = documented_variables()
    missing = sorted(set(real) - set(documented))
    unknown = sorted(set(documented) - set(real))
    assert missing == [], f"docs/operations.md does not document {missing}"
    assert unknown == [], f"docs/operations.md documents variables no service has: {unknown}"


def test_operations_states_the_real_default_of_every_variable() -> None:
    real = all_env_names()
    wrong = [
        f"{name}: documented {cell!r}, code {real[name].get_default(call_default_factory=True)!r}"
        for name, (cell, _) in documented_variables().items()
        if name in real and not default_documented(cell, real[name])
    ]
    assert wrong == []


def test_the_default_check_tells_a_wrong_default_from_a_right_one() -> None:
    fields = env_names(service_settings()["ingest"])
    assert default_documented("`524288`", fields["INGEST_MAX_BODY_BYTES"])
    assert not default_documented("`524289`", fields["INGEST_MAX_BODY_BYTES"])
    assert default_documented("`false`", fields["INGEST_SEGMENT_GROUP_UPDATES_ACCOUNTS"])
    assert not default_documented("`true`", fields["INGEST_SEGMENT_GROUP_UPDATES_ACCOUNTS"])
    assert default_documented("unset", fields["INGEST_ZENDESK_SIGNING_SECRET"])
    assert not default_documented("`x`", fields["INGEST_ZENDESK_SIGNING_SECRET"])
    assert default_documented("`{}`", fields["INGEST_ZENDESK_ORGANIZATIONS"])
    assert default_documented("`INFO`", fields["LOG_LEVEL"])
    assert not default_documented("INFO", fields["LOG_LEVEL"])
