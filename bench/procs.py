"""The processes a scenario starts: the services (``python -m services.<name>``), the bare
baselines and the load generator — each on a free port, output to a log file, tied to this
process (they die with it, started by ``devstack.process.spawn``), stopped with SIGTERM and
reaped."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from devstack import process
from devstack.process import free_port

__all__ = ["Process", "Server", "free_port", "module", "run_json", "service", "started", "sys"]

ROOT = Path(__file__).resolve().parent.parent


class Process:
    """One child process with its log; ``stop()`` sends SIGTERM, waits, kills if it lingers."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        self.log_file = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} is not started"
        return self.proc.pid

    def start(self) -> Process:
        self.proc = process.spawn(  # devstack's launcher: its own session, dies with us
            self.argv,
            log_file=self.log_file,
            pid_file=self.log_file.with_suffix(".pid"),
            env=self.env,
            tied_to_parent=True,
            cwd=ROOT,
        )
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def tail(self, chars: int = 3000) -> str:
        if not self.log_file.exists():
            return "(no log)"
        return self.log_file.read_text(errors="replace")[-chars:]


class Server(Process):
    """A process answering HTTP on ``port``, ready when ``ready_path`` answers 200."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        log_dir: Path,
        *,
        port: int | None = None,
        ready_path: str = "/readyz",
    ) -> None:
        self.port = port or free_port()
        super().__init__(name, argv, env, log_dir)
        self.ready_path = ready_path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout_s: float = 90.0) -> Server:
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.running():
                raise RuntimeError(f"{self.name} exited while starting:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready after {timeout_s}s:\n{self.tail()}")
            time.sleep(0.2)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """The value of one Prometheus sample from ``/metrics`` (0 when absent)."""
        text = httpx.get(self.url + "/metrics", timeout=10).text
        wanted = name + (
            "{" + ",".join(f'{k}="{v}"' for k, v in sorted((labels or {}).items())) + "}"
            if labels
            else ""
        )
        for line in text.splitlines():
            if line.startswith(wanted + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


def service(name: str, env: dict[str, str], log_dir: Path, *, suffix: str = "") -> Server:
    """``python -m services.<name>`` on a free port."""
    port = free_port()
    return Server(
        f"{name}{suffix}",
        [sys.executable, "-m", f"services.{name}"],
        {
            f"{name.upper()}_PORT": str(port),
            f"{name.upper()}_HOST": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            **env,
        },
        log_dir,
        port=port,
    )


def module(
    name: str, module_name: str, args: Sequence[str], env: dict[str, str], log_dir: Path
) -> Process:
    return Process(name, [sys.executable, "-m", module_name, *args], env, log_dir)


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
def started(*processes: Process) -> Iterator[None]:
    """Stop every process on the way out, whatever happens."""
    try:
        yield
    finally:
        for p in reversed(processes):
            p.stop()
