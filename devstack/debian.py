"""Debian packages the dev stack installs itself when they are missing (one way for all of them).

Installing needs root and apt-get; anywhere else :func:`install` raises the caller's message, which
says what to install by hand. Nothing is run then.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence


def install(
    packages: Sequence[str],
    *,
    missing: str,
    announce: str,
    options: Sequence[str] = (),
    prepare: Callable[[], None] | None = None,
) -> None:
    """``apt-get update`` then ``apt-get install packages`` as root, else ``RuntimeError(missing)``.

    ``announce`` is printed before installing; ``prepare`` runs (as root) just before apt-get;
    ``options`` go to ``apt-get install`` before the package names.
    """
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(missing)
    print(f"devstack: {announce}")
    if prepare is not None:
        prepare()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *options, *packages],
        check=True,
        env=env,
    )
