"""Every limit a client or an operator can run into, in one table (a leaf module).

The same range used to be written in config/validate.py (``[retries]``), options.py (``cf-aig-*``
headers) and the universal step parser (``config`` objects), and could drift apart. Each is
declared once here; validation messages are derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Range:
    """An inclusive integer range, with the words error messages use for it."""

    lo: int
    hi: int

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.lo <= value <= self.hi

    def describe(self) -> str:
        return f"{self.lo} to {self.hi}"


MAX_ATTEMPTS = Range(1, 5)  # cf-aig-max-attempts, maxAttempts, retries.max_attempts
RETRY_DELAY_MS = Range(0, 5000)  # cf-aig-retry-delay, retryDelay, retries.delay_ms
REQUEST_TIMEOUT_MS = Range(1, 3_600_000)  # cf-aig-request-timeout, requestTimeout
CACHE_TTL_S = Range(60, 2_592_000)  # cf-aig-cache-ttl, cache.ttl (or 0): 30 days, Cloudflare's "one month"
MAX_METADATA_ENTRIES = 5  # cf-aig-metadata

Backoff = Literal["constant", "linear", "exponential"]
BACKOFFS: tuple[Backoff, ...] = ("constant", "linear", "exponential")
