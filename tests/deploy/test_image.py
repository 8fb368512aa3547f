"""The image (which CI cannot build: no Docker engine) is checked by reading it: it takes what
the code needs from the build context, runs the user the manifests expect, and the Compose file
starts the same processes the manifests do."""

from __future__ import annotations

import re
import tomllib

import yaml  # type: ignore[import-untyped]  # no stubs in the lock

from tests.deploy.conftest import ROOT, Rendered, pod_spec

DOCKERFILE = (ROOT / "Dockerfile").read_text()
PORTS = {"ingest": 8000, "scoring": 8001, "alerts": 8002}


def instructions(name: str) -> list[str]:
    return re.findall(rf"^{name}\s+(.*)$", DOCKERFILE, flags=re.MULTILINE)


def test_every_build_stage_uses_the_python_the_project_requires() -> None:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert ">=3.11" in requires
    bases = [line.split()[0] for line in instructions("FROM")]
    assert len(bases) == 2
    assert all(
        re.fullmatch(r"python:3\.11[.\d]*-slim-\w+(@sha256:[0-9a-f]{64})?", b) for b in bases
    )


def test_the_build_context_lets_in_exactly_what_the_image_copies() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = set()
    for line in instructions("COPY"):
        if line.startswith("--from"):
            continue
        *sources, _target = line.split()
        copied |= {source.rstrip("/") for source in sources}
    assert copied, "the Dockerfile copies nothing from the context"
    for source in copied:
        assert (ROOT / source).exists(), source
    assert copied == allowed - {"Dockerfile"}
    # The locked dependencies are installed with their hashes checked.
    assert "--require-hashes" in DOCKERFILE
    assert "-r requirements.lock" in DOCKERFILE.replace("\\\n", " ").replace("  ", " ")


def test_the_image_runs_as_the_non_root_user_the_manifests_require(
    rendered: dict[str, Rendered],
) -> None:
    (user,) = instructions("USER")
    uid, _, gid = user.partition(":")
    assert int(uid) >= 10000
    for overlay in rendered.values():
        for workload in overlay.of_kind("Deployment") + overlay.of_kind("Job"):
            context = pod_spec(workload)["securityContext"]
            assert (context["runAsUser"], context["runAsGroup"]) == (int(uid), int(gid))
    exposed = {int(port) for line in instructions("EXPOSE") for port in line.split()}
    assert exposed == set(PORTS.values())


def test_compose_starts_the_same_processes_as_the_manifests() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assert {"kafka", "postgres", "migrate", *PORTS} <= set(compose)
    assert compose["migrate"]["command"] == ["python", "-m", "shared.migrations", "upgrade"]
    for name, port in PORTS.items():
        service = compose[name]
        assert service["command"] == ["python", "-m", f"services.{name}"]
        env = service["environment"]
        assert env[f"{name.upper()}_HOST"] == "0.0.0.0"
        assert env[f"{name.upper()}_PORT"] == str(port)
        assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert service["read_only"] is True
        assert service["user"] == "10001:10001"
