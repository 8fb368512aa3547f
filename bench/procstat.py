"""CPU time and memory of processes, read from ``/proc`` (standard library only).

CPU seconds (user + system) of a process — optionally with every descendant, which is how
PostgreSQL's per-connection backends are counted — carry over to pods sized in millicores:
µs of CPU per event is what a pod spends whatever the machine's clock speed share.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str]:
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw.rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 when it is gone)."""
    try:
        fields = _stat_fields(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    # after the name: state(0) ppid(1) … utime(11) stime(12)
    return (int(fields[11]) + int(fields[12])) / _TICKS


def children(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        kids = children(current)
        out += kids
        todo += kids
    return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and of its living descendants, plus what its reaped children
    used (``cutime``/``cstime``: a PostgreSQL backend that exited still counts)."""
    try:
        fields = _stat_fields(pid)
    except FileNotFoundError:
        return 0.0
    own = (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / _TICKS
    return own + sum(cpu_seconds(child) for child in descendants(pid))


def rss_bytes(pid: int) -> int:
    """Resident set size now."""
    fields = Path(f"/proc/{pid}/statm").read_text().split()
    return int(fields[1]) * _PAGE


@dataclass
class CpuMeter:
    """CPU seconds spent by a process (tree) between :meth:`start` and :meth:`stop`."""

    pid: int
    tree: bool = False
    _start: float = 0.0
    seconds: float = 0.0

    def _read(self) -> float:
        return tree_cpu_seconds(self.pid) if self.tree else cpu_seconds(self.pid)

    def start(self) -> CpuMeter:
        self._start = self._read()
        return self

    def stop(self) -> float:
        self.seconds = self._read() - self._start
        return self.seconds
