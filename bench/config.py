"""How big each scenario is: the full run (`make bench`) and the reduced one
(`make bench-quick`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    mode: str
    runs: int  # measured runs per scenario (after a warm-up); the median is reported
    s1_seconds: float
    s1_warmup_seconds: float
    s1_connections: int
    s1_sizes: tuple[int, ...]
    s2_events: int
    s3_seconds: float
    s3_warmup_seconds: float
    s3_rate_events: float  # the fixed rate; the second rate is 20% of S1's maximum
    s3_alert_accounts: int
    s3_accounts: int  # the scored portfolio the background stream updates
    s3_rescore_interval_seconds: float
    s4_accounts: int
    s5_accounts: tuple[int, ...]
    s5_rollover_runs: int  # day-rollover passes (each rescores every account: ~5 min at 1M)
    s6_events: int  # S6: past usage events imported
    s6_accounts: int
    s6_days: int


FULL = Config(
    mode="full",
    runs=3,
    s1_seconds=8.0,
    s1_warmup_seconds=3.0,
    s1_connections=32,
    s1_sizes=(1, 100, 1000),
    s2_events=1_000_000,
    s3_seconds=40.0,
    s3_warmup_seconds=10.0,
    s3_rate_events=5000.0,
    s3_alert_accounts=60,
    s3_accounts=100_000,
    s3_rescore_interval_seconds=0.0,
    s4_accounts=100_000,
    s5_accounts=(100_000, 1_000_000),
    s5_rollover_runs=1,
    s6_events=1_000_000,
    s6_accounts=5_000,
    s6_days=90,
)

QUICK = Config(
    mode="quick",
    runs=1,
    s1_seconds=2.0,
    s1_warmup_seconds=1.0,
    s1_connections=32,
    s1_sizes=(1, 100, 1000),
    s2_events=80_000,
    s3_seconds=6.0,
    s3_warmup_seconds=2.0,
    s3_rate_events=5000.0,
    s3_alert_accounts=10,
    s3_accounts=10_000,
    s3_rescore_interval_seconds=0.0,
    s4_accounts=100_000,  # as the full run: the growth is bounded, not linear (see S4)
    s5_accounts=(10_000,),
    s5_rollover_runs=1,
    s6_events=150_000,
    s6_accounts=1_000,
    s6_days=60,
)
