"""Starting, watching and stopping the local processes, and the small helpers they share."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the process that started us dies.

    Test runs use this so that a broker or database never outlives a killed pytest.
    """
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(
    argv: Sequence[str],
    *,
    log_file: Path,
    pid_file: Path,
    env: dict[str, str] | None = None,
    user: str | None = None,
    tied_to_parent: bool = False,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, output appended to ``log_file``, pid in ``pid_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            user=user,
            group=user,
            extra_groups=[] if user else None,
            start_new_session=True,
            preexec_fn=die_with_parent if tied_to_parent else None,
        )
    pid_file.write_text(f"{proc.pid}\n")
    return proc


def read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if alive(pid) else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is not running.
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


def stop(pid_file: Path, *, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> bool:
    """Signal the process in ``pid_file`` (then its whole session), wait, SIGKILL if it lingers.

    Returns whether a process was running.
    """
    pid = read_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if not wait_until(lambda: not alive(pid), timeout_s=timeout_s):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not alive(pid), timeout_s=10)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    pid_file.unlink(missing_ok=True)
    return True


def wait_until(condition: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes; returns whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no log at {path})"


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh event loop in a worker thread.

    Safe to call from code that already has an event loop (a pytest-asyncio session, say),
    which ``asyncio.run`` in the calling thread would not be.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


class ServiceProcess:
    """A churnwatch service run for real: ``python -m services.<name>`` on a port of its own
    (a free one unless given), its output appended to a log file, tied to this process (it
    dies with it) unless ``tied_to_parent=False`` (``make up``: the services outlive the
    command, and ``make down`` stops them through their pid files).

    The one launcher of the local stack, the chaos runs, the benchmarks and the tests:
    ``launch()`` starts it; ``start()`` starts it and waits for ``/readyz``; ``shut_down()`` is
    the graceful path (SIGTERM, then SIGKILL if it lingers), ``terminate()`` the same awaited;
    ``kill()`` is a node dying (SIGKILL). Also an async context manager (start, then
    terminate). ``argv`` runs another server (a benchmark baseline: ready when ``ready_path``
    answers 200) or, with ``ready_path=None``, any process.
    """

    def __init__(
        self,
        name: str,
        env: Mapping[str, str],
        log_dir: Path,
        *,
        instance: int = 1,
        log_name: str | None = None,
        port: int | None = None,
        argv: Sequence[str] | None = None,
        ready_path: str | None = "/readyz",
        tied_to_parent: bool = True,
    ) -> None:
        self.name = name
        self.instance = instance
        self.port = port or free_port()
        own = {f"{name.upper()}_PORT": str(self.port), f"{name.upper()}_HOST": "127.0.0.1"}
        own = own if argv is None else {}  # what ``env`` says wins (``make up``: INGEST_HOST…)
        self.env = {**os.environ, **own, **env, "PYTHONUNBUFFERED": "1"}
        self.argv = list(argv or [sys.executable, "-m", f"services.{name}"])
        self.ready_path = ready_path
        self.tied_to_parent = tied_to_parent
        self.label = name if instance == 1 else f"{name}#{instance}"
        stem = log_name or f"{name}-{instance}"
        self.log_file = log_dir / f"{stem}.log"
        self._pid_file = log_dir / f"{stem}.pid"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The running process (started here, or by another command: its pid file)."""
        if self.proc is not None:
            return self.proc.pid if self.proc.poll() is None else None
        return read_pid(self._pid_file)

    @property
    def running(self) -> bool:
        return self.pid is not None

    def launch(self) -> ServiceProcess:
        """Start it without waiting for it to be ready."""
        self.proc = spawn(
            self.argv,
            log_file=self.log_file,
            pid_file=self._pid_file,
            env=dict(self.env),
            tied_to_parent=self.tied_to_parent,
            cwd=ROOT,
        )
        self.starts += 1
        return self

    async def start(self, *, ready_timeout_s: float = 90.0) -> ServiceProcess:
        self.launch()
        await self.wait_ready(ready_timeout_s)
        return self

    async def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Until ``ready_path`` answers 200; raises when the process exits or time runs out."""
        if self.ready_path is None:
            return
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                if not self.running:
                    raise RuntimeError(f"{self.label} exited early:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}{self.ready_path}")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.label} not ready after {timeout_s}s:\n{self.tail()}")
                await asyncio.sleep(0.2)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` without waiting (to stop several at once, then wait for each)."""
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as when a node dies."""
        if self.proc is None:
            self.signal(signal.SIGKILL)
        elif self.running:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def shut_down(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM (the graceful path) and wait; SIGKILL after ``timeout_s``. Returns the exit
        status (None when it had to be killed, or was not started here)."""
        if self.proc is None:  # started by another command: through its pid file
            stop(self._pid_file, timeout_s=timeout_s)
            return None
        if not self.running:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    async def terminate(self, timeout_s: float = 60.0) -> int | None:
        """:meth:`shut_down`, awaited."""
        return await asyncio.to_thread(self.shut_down, timeout_s)

    def logs(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    async def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """The sum of a Prometheus metric's samples in ``/metrics``: every label set, or those
        with ``labels``."""
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(f"{self.url}/metrics")).text
        total = 0.0
        wanted = [f'{key}="{value}"' for key, value in (labels or {}).items()]
        for line in text.splitlines():
            sample, value = line.rsplit(" ", 1) if " " in line else (line, "")
            named = line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " ")
            if named and all(label in sample for label in wanted):
                total += float(value)
        return total

    async def __aenter__(self) -> ServiceProcess:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.terminate()
