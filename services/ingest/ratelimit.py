"""A per-key rate limit: a token bucket per API key, in this process's memory.

It is per replica: with N replicas behind a Service a key may make up to N times the rate.
Pure — the caller passes ``now`` (monotonic seconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``rate_per_second`` requests per key on average, ``burst`` at once; rate 0 → no limit."""

    def __init__(self, rate_per_second: float, burst: int) -> None:
        self._rate = rate_per_second
        self._burst = float(burst)
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now: float) -> int | None:
        """Spend one request of ``key``'s budget: None when allowed, else the whole seconds to
        wait before the next request would be (the ``Retry-After``)."""
        if self._rate <= 0:
            return None
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self._burst, now)
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - bucket.tokens) / self._rate))
