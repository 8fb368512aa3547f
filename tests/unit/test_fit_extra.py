"""The `fit` extra stays out of the services: their lock and their code never need it."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIT_ONLY = ("sklearn", "scipy", "numpy")


def test_the_services_lock_leaves_the_fit_extra_out_and_the_dev_lock_has_it() -> None:
    services = (ROOT / "requirements.lock").read_text()
    dev = (ROOT / "requirements-dev.lock").read_text()
    assert "scikit-learn==" not in services
    assert "scikit-learn==" in dev
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(d.startswith("scikit-learn") for d in extras["fit"])


def test_no_service_module_imports_the_fit_libraries() -> None:
    offenders = []
    for path in [*(ROOT / "services").rglob("*.py"), *(ROOT / "shared").rglob("*.py")]:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in FIT_ONLY
            ]
    assert offenders == []


def test_churnwatch_fit_imports_scikit_learn_only_inside_functions() -> None:
    tree = ast.parse((ROOT / "churnwatch" / "fit.py").read_text())
    top_level = [
        node
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        and any(
            (getattr(node, "module", None) or alias.name).split(".")[0] in FIT_ONLY
            for alias in node.names
        )
    ]
    assert top_level == []
