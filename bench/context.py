"""What every scenario is handed: the infrastructure, the sizes, where logs go, a way to talk."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import Config
from bench.infra import Infra


@dataclass
class Context:
    infra: Infra
    config: Config
    logs: Path
    started: float = field(default_factory=time.monotonic)
    s1_max_events_per_second: float | None = None  # S3 runs at 20% of it
    load_samples: list[float] = field(default_factory=list)

    def say(self, message: str) -> None:
        print(f"[bench {time.monotonic() - self.started:6.1f}s] {message}", file=sys.stderr)
        sys.stderr.flush()
