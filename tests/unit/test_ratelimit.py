"""The per-key rate limit, with an injected clock."""

from shared.ratelimit import RateLimiter


def test_a_key_may_spend_its_burst_at_once_then_waits_for_the_rate() -> None:
    limiter = RateLimiter(rate_per_second=2, burst=3)
    assert [limiter.take("a", now=0.0) for _ in range(3)] == [None, None, None]
    assert limiter.take("a", now=0.0) == 1  # half a second rounds up to the whole second


def test_tokens_come_back_at_the_rate() -> None:
    limiter = RateLimiter(rate_per_second=2, burst=1)
    assert limiter.take("a", now=10.0) is None
    assert limiter.take("a", now=10.25) == 1
    assert limiter.take("a", now=10.5) is None


def test_the_wait_tells_how_long_until_the_next_request_is_allowed() -> None:
    limiter = RateLimiter(rate_per_second=0.1, burst=1)
    assert limiter.take("a", now=0.0) is None
    assert limiter.take("a", now=1.0) == 9


def test_keys_have_their_own_budgets() -> None:
    limiter = RateLimiter(rate_per_second=1, burst=1)
    assert limiter.take("a", now=0.0) is None
    assert limiter.take("a", now=0.0) == 1
    assert limiter.take("b", now=0.0) is None


def test_a_rate_of_zero_means_no_limit() -> None:
    limiter = RateLimiter(rate_per_second=0, burst=1)
    assert all(limiter.take("a", now=0.0) is None for _ in range(1000))


def test_idle_time_refills_no_more_than_the_burst() -> None:
    limiter = RateLimiter(rate_per_second=1, burst=2)
    assert limiter.take("a", now=0.0) is None
    results = [limiter.take("a", now=3600.0) for _ in range(3)]
    assert results == [None, None, 1]


def test_past_max_keys_the_refilled_buckets_are_forgotten_and_the_busy_kept() -> None:
    limiter = RateLimiter(rate_per_second=1, burst=1, max_keys=2)
    assert limiter.take("idle", now=0.0) is None
    assert limiter.take("busy", now=5.0) is None
    assert limiter.take("new", now=5.5) is None  # "idle" refilled at 1.0: dropped
    assert len(limiter) == 2
    assert limiter.take("busy", now=5.5) == 1  # still limited: its bucket was kept
