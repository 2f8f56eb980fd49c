from __future__ import annotations

import pytest

from aigw_asgi.config import RetryConfig
from aigw_asgi.options import RequestOptions
from aigw_asgi.routing.retry import (
    RetryPolicy,
    backoff_delay,
    backoff_schedule,
    is_retryable_status,
    next_retry_delay,
    retry_after,
    retry_policy,
)


def test_headers_beat_gateway_config() -> None:
    cfg = RetryConfig(max_attempts=2, delay_ms=100, backoff="linear", request_timeout_ms=1000)
    assert retry_policy(RequestOptions(), cfg).max_attempts == 2
    p = retry_policy(RequestOptions(max_attempts=4, retry_delay_ms=5, backoff="constant", request_timeout_ms=7), cfg)
    assert (p.max_attempts, p.delay_ms, p.backoff, p.timeout_ms) == (4, 5, "constant", 7)
    assert p.timeout == 0.007
    assert RetryPolicy().timeout is None


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [("constant", [0.1, 0.1, 0.1, 0.1]), ("linear", [0.1, 0.2, 0.3, 0.4]), ("exponential", [0.1, 0.2, 0.4, 0.8])],
)
def test_backoff_schedules(backoff: str, expected: list[float]) -> None:
    policy = RetryPolicy(max_attempts=5, delay_ms=100, backoff=backoff)
    assert [round(backoff_delay(policy, n), 6) for n in (1, 2, 3, 4)] == expected


def test_jitter_bounds() -> None:
    policy = RetryPolicy(delay_ms=1000, jitter=0.1)
    assert backoff_delay(policy, 1, rand=0.0) == pytest.approx(0.9)
    assert backoff_delay(policy, 1, rand=0.5) == pytest.approx(1.0)
    assert backoff_delay(policy, 1, rand=0.999999) == pytest.approx(1.1, rel=1e-4)


def test_retryable_statuses() -> None:
    assert [s for s in (200, 400, 401, 404, 408, 429, 500, 502, 503, 504) if is_retryable_status(s)] == [
        429,
        500,
        502,
        503,
        504,
    ]


def test_retry_after() -> None:
    assert retry_after(b"2", 5000) == 2.0
    assert retry_after(b"0.5", 5000) == 0.5
    assert retry_after(b"60", 5000) is None  # beyond the cap: not honoured
    assert retry_after(b"garbage", 5000) is None
    assert retry_after(None, 5000) is None
    assert retry_after(b"Wed, 21 Oct 2015 07:28:00 GMT", 5000) == 0.0  # in the past


def test_next_retry_delay_decides_what_is_retried() -> None:
    policy = RetryPolicy(max_attempts=3, delay_ms=100, backoff="exponential")
    assert next_retry_delay(policy, 1) == 0.1  # transport failure (connect, reset, timeout)
    assert next_retry_delay(policy, 2) == 0.2
    assert next_retry_delay(policy, 3) is None  # budget spent
    assert next_retry_delay(policy, 1, 503) == 0.1
    assert next_retry_delay(policy, 1, 429) == 0.1
    assert next_retry_delay(policy, 1, 404) is None  # a 4xx fails the same way again
    assert next_retry_delay(policy, 1, 400) is None
    assert next_retry_delay(RetryPolicy(), 1, 503) is None  # one attempt: never retried


def test_retry_after_within_the_cap_is_honoured_beyond_it_ends_retries() -> None:
    policy = RetryPolicy(max_attempts=3, delay_ms=100, max_retry_after_ms=2000)
    assert next_retry_delay(policy, 1, 429, b"1.5") == 1.5
    assert next_retry_delay(policy, 1, 429, b"0") == 0.1  # never sooner than our own backoff
    assert next_retry_delay(policy, 1, 429, b"30") is None  # asking again sooner only burns attempts
    assert next_retry_delay(policy, 1, 429, b"soon") == 0.1  # meaningless: ignored
    assert next_retry_delay(policy, 3, 429, b"1") is None


def test_backoff_schedule_documents_the_waits() -> None:
    assert backoff_schedule(RetryPolicy(max_attempts=5, delay_ms=100, backoff="exponential", jitter=0.5)) == [
        0.1,
        0.2,
        0.4,
        0.8,
    ]
    assert backoff_schedule(RetryPolicy(max_attempts=4, delay_ms=50, backoff="linear")) == [0.05, 0.1, 0.15]
    assert backoff_schedule(RetryPolicy(max_attempts=1, delay_ms=50)) == []
