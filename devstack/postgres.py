"""A real PostgreSQL server owned by the project: its own cluster directory, port and processes.

Debian's ``postgresql`` package is installed when no server binaries are found (root and apt
needed; otherwise the error says what to do). The server refuses to run as root, so when we are
root the cluster belongs to the ``postgres`` system user. Unix sockets are off: loopback TCP only,
trust authentication — this server exists for local runs and tests, never for production.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from devstack import debian, process

DEFAULT_USER = "churnwatch"
DEFAULT_DB = "churnwatch"


def _server_bindir() -> Path | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda path: int(path.split("/")[4]),
    )
    if candidates:
        return Path(candidates[-1]).parent
    on_path = shutil.which("postgres")
    return Path(on_path).parent if on_path else None


def _no_main_cluster() -> None:
    """Debian's package would create and start a 'main' cluster on 5432; we run our own."""
    conf = Path("/etc/postgresql-common/createcluster.conf")
    if not conf.exists():
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("create_main_cluster = false\n")


def ensure_installed() -> Path:
    """The directory holding ``initdb`` and ``postgres``, installing Debian's package if needed."""
    bindir = _server_bindir()
    if bindir is not None:
        return bindir
    debian.install(
        ["postgresql"],
        missing=(
            "PostgreSQL server binaries not found. Install them (Debian: apt-get install "
            "postgresql) or point DATABASE_URL at an existing server."
        ),
        announce="installing PostgreSQL from Debian's packages",
        options=[
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
        ],
        prepare=_no_main_cluster,
    )
    bindir = _server_bindir()
    if bindir is None:
        raise RuntimeError("installed postgresql but found no server binaries")
    return bindir


@dataclass
class PostgresServer:
    """One cluster in ``home/data``, listening on 127.0.0.1:``port``."""

    home: Path
    port: int = 15432
    tied_to_parent: bool = False
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{DEFAULT_USER}@127.0.0.1:{self.port}/{DEFAULT_DB}"

    @property
    def log_file(self) -> Path:
        return self.home / "postgres.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "postgres.pid"

    @property
    def _data(self) -> Path:
        return self.home / "data"

    @property
    def _user(self) -> str | None:
        """The system user the server runs as: ``postgres`` when we are root, else ourselves."""
        return "postgres" if os.geteuid() == 0 else None

    def running_pid(self) -> int | None:
        return process.read_pid(self.pid_file)

    def start(self) -> None:
        """Create the cluster the first time and spawn the server; returns without waiting."""
        if self.running_pid() is not None:
            return
        if process.port_in_use(self.port):
            raise RuntimeError(f"port {self.port} is taken: cannot start PostgreSQL on it")
        bindir = ensure_installed()
        self.home.mkdir(parents=True, exist_ok=True)
        if not (self._data / "PG_VERSION").exists():
            self._initdb(bindir)
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "",
            "max_connections": "200",
            **self.settings,
        }
        argv = [str(bindir / "postgres"), "-D", str(self._data)]
        for key, value in options.items():
            argv += ["-c", f"{key}={value}"]
        process.spawn(
            argv,
            log_file=self.log_file,
            pid_file=self.pid_file,
            user=self._user,
            tied_to_parent=self.tied_to_parent,
        )

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Block until a real client session works, creating the project's role and database."""
        try:
            process.run_async(asyncio.wait_for(_prepare(self.port), timeout_s))
        except Exception as exc:
            raise RuntimeError(
                f"PostgreSQL on port {self.port} not ready after {timeout_s}s: {exc!r}\n"
                f"--- last lines of {self.log_file}:\n{process.tail(self.log_file)}"
            ) from exc

    def stop(self) -> bool:
        # SIGINT is PostgreSQL's "fast" shutdown: roll back sessions, checkpoint, exit.
        return process.stop(self.pid_file, sig=signal.SIGINT, timeout_s=30)

    def _initdb(self, bindir: Path) -> None:
        self._data.mkdir(parents=True, exist_ok=True)
        if self._user:
            for path in (self.home, self._data):
                shutil.chown(path, self._user, self._user)
            self._check_reachable_by(self._user)
        os.chmod(self._data, 0o700)
        subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(self._data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-instructions",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            user=self._user,
            group=self._user,
            extra_groups=[] if self._user else None,
        )

    def _check_reachable_by(self, user: str) -> None:
        probe = subprocess.run(
            ["test", "-w", str(self.home)], user=user, group=user, extra_groups=[], check=False
        )
        if probe.returncode != 0:
            raise RuntimeError(
                f"the '{user}' user cannot reach {self.home}: give every parent directory "
                "o+x, or set CHURNWATCH_LOCAL_DIR to a directory it can reach"
            )


async def _prepare(port: int) -> None:
    import asyncpg

    while True:
        try:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=port, user="postgres", database="postgres", timeout=5
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await asyncio.sleep(0.2)
            continue
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", DEFAULT_USER):
                await conn.execute(f'CREATE ROLE "{DEFAULT_USER}" LOGIN CREATEDB')
            # Tests drop their databases WITH (FORCE); an autovacuum worker in one has no
            # role, and only pg_signal_backend may end it (PostgreSQL 15).
            await conn.execute(f'GRANT pg_signal_backend TO "{DEFAULT_USER}"')
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DEFAULT_DB):
                await conn.execute(f'CREATE DATABASE "{DEFAULT_DB}" OWNER "{DEFAULT_USER}"')
            return
        finally:
            await conn.close()
