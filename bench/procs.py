"""The processes a scenario starts: the services (``python -m services.<name>``), the bare
baselines and the load generator — each on a free port, output to a log file, tied to this
process (they die with it). All of them are ``devstack.process.ServiceProcess``, the one
launcher: ``launch()``, ``await wait_ready()``, ``shut_down()`` (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from devstack import process
from devstack.process import ServiceProcess, free_port

__all__ = [
    "ServiceProcess",
    "free_port",
    "module",
    "pid_of",
    "run_json",
    "server",
    "service",
    "started",
    "sys",
]

ROOT = Path(__file__).resolve().parent.parent


def service(name: str, env: dict[str, str], log_dir: Path, *, suffix: str = "") -> ServiceProcess:
    """``python -m services.<name>`` on a free port, logging warnings and worse."""
    return ServiceProcess(name, {"LOG_LEVEL": "WARNING", **env}, log_dir, log_name=name + suffix)


def server(
    name: str, argv: Sequence[str], env: dict[str, str], log_dir: Path, *, port: int
) -> ServiceProcess:
    """Another HTTP server (a baseline) on ``port``, ready when ``/readyz`` answers 200."""
    return ServiceProcess(name, env, log_dir, log_name=name, port=port, argv=argv)


def module(
    name: str, module_name: str, args: Sequence[str], env: dict[str, str], log_dir: Path
) -> ServiceProcess:
    """``python -m module_name args``: no port, nothing to wait for."""
    argv = [sys.executable, "-m", module_name, *args]
    return ServiceProcess(name, env, log_dir, log_name=name, argv=argv, ready_path=None)


def pid_of(running: ServiceProcess) -> int:
    """Its pid; it must be running (a benchmark measures a live process)."""
    pid = running.pid
    if pid is None:
        raise RuntimeError(f"{running.label} is not running:\n{running.tail()}")
    return pid


def run_json(
    module_name: str, args: Sequence[str], env: dict[str, str], log_dir: Path, name: str
) -> Any:
    """Run ``python -m module_name args`` to the end; its last stdout line is JSON."""
    log = log_dir / f"{name}.log"
    log_dir.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as err:
        done = subprocess.run(
            [sys.executable, "-m", module_name, *args],
            stdout=subprocess.PIPE,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            cwd=ROOT,
            check=False,
            preexec_fn=process.die_with_parent,
        )
    lines = done.stdout.decode().strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"{module_name} failed ({done.returncode}):\n{log.read_text(errors='replace')[-3000:]}"
        )
    return json.loads(lines[-1])


@contextlib.contextmanager
def started(*processes: ServiceProcess) -> Iterator[None]:
    """Stop every process on the way out, whatever happens."""
    try:
        yield
    finally:
        for p in reversed(processes):
            p.shut_down(30.0)
