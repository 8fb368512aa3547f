"""Small statistics: medians of runs, percentiles of latencies."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(ordered: Sequence[float], p: float) -> float:
    """The ``p``-th percentile of an already sorted sequence (nearest rank)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]
