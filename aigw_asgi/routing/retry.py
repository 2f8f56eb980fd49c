"""Retry decisions as pure functions (no I/O, no clock), so they are unit-tested directly.

Precedence (SPEC §3): universal step config > request headers > gateway ``[retries]``. The
universal endpoint turns a step's ``config`` into ``cf-aig-*`` headers on the step's internal
request, so by the time the router asks, "request headers" already include the step's word.

What is retried (within one step): connect errors and resets before the response headers,
first-byte timeouts, 429 and 5xx. Other 4xx fail the same way again, so they are answered at
once (and, in a universal request, move to the next step). Nothing is retried after the first
byte of an answer has been relayed. `next_retry_delay` is the whole decision.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from ..config import RetryConfig
from ..options import RequestOptions


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 1
    delay_ms: int = 0
    backoff: str = "constant"
    timeout_ms: int = 0  # time to first byte; 0 = none
    max_retry_after_ms: int = 5000
    jitter: float = 0.0

    @property
    def timeout(self) -> float | None:
        return self.timeout_ms / 1000 if self.timeout_ms else None


def retry_policy(options: RequestOptions, config: RetryConfig) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=options.max_attempts if options.max_attempts is not None else config.max_attempts,
        delay_ms=options.retry_delay_ms if options.retry_delay_ms is not None else config.delay_ms,
        backoff=options.backoff or config.backoff,
        timeout_ms=(
            options.request_timeout_ms if options.request_timeout_ms is not None else config.request_timeout_ms
        ),
        max_retry_after_ms=config.max_retry_after_ms,
        jitter=config.jitter,
    )


def is_retryable_status(status: int) -> bool:
    """429 and 5xx are worth another try; other 4xx will fail the same way again."""
    return status == 429 or status >= 500


def backoff_delay(policy: RetryPolicy, failed_attempt: int, rand: float | None = None) -> float:
    """Seconds to wait after attempt ``failed_attempt`` (1-based) failed.

    constant: d; linear: d*n; exponential: d*2^(n-1) — then +-``jitter`` (a fraction), so that
    many clients retrying together spread out. ``rand`` in [0, 1) makes it deterministic.
    """
    d = policy.delay_ms
    n = max(1, failed_attempt)
    ms: float
    if policy.backoff == "linear":
        ms = d * n
    elif policy.backoff == "exponential":
        ms = d * 2 ** (n - 1)
    else:
        ms = d
    if policy.jitter and ms:
        r = random.random() if rand is None else rand
        ms *= 1 + policy.jitter * (2 * r - 1)
    return ms / 1000


def next_retry_delay(
    policy: RetryPolicy,
    attempt: int,
    status: int | None = None,
    retry_after_header: bytes | None = None,
    rand: float | None = None,
) -> float | None:
    """Seconds to wait before another attempt, or ``None``: answer with what attempt ``attempt`` got.

    ``status`` is the upstream status, or ``None`` for a transport failure (connect error, reset
    before headers, first-byte timeout), which is always worth another try. An upstream
    ``Retry-After`` is honoured when it is within ``max_retry_after_ms`` (we wait at least that
    long, or the backoff if longer); one beyond the cap ends the retries for this step — asking
    again sooner than the provider said only burns attempts, and answering lets the client (or
    the next universal step) decide.
    """
    if attempt >= policy.max_attempts:
        return None
    if status is not None and not is_retryable_status(status):
        return None
    delay = backoff_delay(policy, attempt, rand)
    if status is not None and retry_after_header:
        honoured = retry_after(retry_after_header, policy.max_retry_after_ms)
        if honoured is None:
            return None if _parses(retry_after_header) else delay
        delay = max(delay, honoured)
    return delay


def backoff_schedule(policy: RetryPolicy) -> list[float]:
    """The waits between the attempts of ``policy``, without jitter (for docs and tests)."""
    plain = RetryPolicy(policy.max_attempts, policy.delay_ms, policy.backoff)
    return [backoff_delay(plain, n) for n in range(1, policy.max_attempts)]


def _parses(value: bytes) -> bool:
    """Whether a ``Retry-After`` value is meaningful at all (a garbage value is ignored)."""
    return retry_after(value, 2**62) is not None


def retry_after(value: bytes | None, cap_ms: int) -> float | None:
    """An upstream ``Retry-After`` (seconds or HTTP date) in seconds, if within ``cap_ms``.

    A longer wait than the cap is not honoured at all (None): holding the client for minutes is
    worse than answering the 429 and letting it decide.
    """
    if not value:
        return None
    text = value.decode("latin-1").strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            import time

            seconds = parsedate_to_datetime(text).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if seconds < 0:
        seconds = 0.0
    return seconds if seconds * 1000 <= cap_ms else None
