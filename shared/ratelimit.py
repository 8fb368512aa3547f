"""A per-key rate limit: a token bucket per key, in this process's memory.

Used by ingest (per API key) and the console (sign-in links per email address and per client
address). It is per replica: with N replicas behind a Service a key may make up to N times the
rate. Pure — the caller passes ``now`` (seconds, from its injected clock).

Memory is bounded: past ``max_keys`` buckets, the buckets that have refilled (a key idle long
enough to be back at its full burst, which is the same as never having been seen) are dropped.
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

    def __init__(self, rate_per_second: float, burst: int, max_keys: int = 10_000) -> None:
        self._rate = rate_per_second
        self._burst = float(burst)
        self._max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now: float) -> int | None:
        """Spend one request of ``key``'s budget: None when allowed, else the whole seconds to
        wait before the next request would be (the ``Retry-After``)."""
        if self._rate <= 0:
            return None
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._forget_refilled(now)
            bucket = self._buckets[key] = _Bucket(self._burst, now)
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - bucket.tokens) / self._rate))

    def _forget_refilled(self, now: float) -> None:
        full = [
            key
            for key, bucket in self._buckets.items()
            if bucket.tokens + max(0.0, now - bucket.updated) * self._rate >= self._burst
        ]
        for key in full:
            del self._buckets[key]
