"""The one circuit breaker in front of every backing store on the request path (cache, rate limits).

A store that fails or times out must cost requests nothing for a while, not one timeout each:
after a failure the circuit stays open for ``backoff_s`` and calls fail at once with
`StorageDown`; then the next call probes the store again. One warning is logged per outage and
one line when the store is back. What a caller does with `StorageDown` is its own documented
rule: the cache answers MISS, the rate limiter fails open (or closed, 503 code 2011).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class StorageDown(Exception):
    """The storage failed, timed out, or is known to be down (circuit open)."""


class Breaker:
    """``await breaker.call(fn, *args)``: ``fn`` bounded by ``timeout_s``, skipped while the circuit is open.

    ``failures``: the exception classes that mean "the store is in trouble" (anything else is a
    bug and propagates). ``consequence``: what the warning tells the operator happens meanwhile.
    """

    def __init__(
        self,
        *,
        what: str,
        logger: logging.Logger,
        timeout_s: float,
        backoff_s: float = 1.0,
        failures: tuple[type[BaseException], ...] = (Exception,),
        consequence: str = "",
    ) -> None:
        self.what = what
        self.logger = logger
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.failures = failures
        self.consequence = consequence
        self._catch: tuple[type[BaseException], ...] = (*failures, TimeoutError)
        self.down_until = 0.0
        self.down = False

    def available(self) -> bool:
        return not self.down or time.monotonic() >= self.down_until

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        if not self.available():
            raise StorageDown()
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await fn(*args, **kwargs)
        except self._catch as exc:
            self.trip(exc)
            raise StorageDown() from None
        self.ok()
        return result

    def trip(self, exc: BaseException) -> None:
        """Open the circuit for ``backoff_s`` (warn once per outage)."""
        if not self.down:
            cause = getattr(exc, "storage_error", None) or exc  # `limits` wraps the backend's error
            # The class name only: a Redis error message may carry the URL and its password.
            self.logger.warning(
                "%s unavailable (%s); %sretrying in %.1f s",
                self.what,
                type(cause).__name__,
                f"{self.consequence}, " if self.consequence else "",
                self.backoff_s,
            )
        self.down = True
        self.down_until = time.monotonic() + self.backoff_s

    def ok(self) -> None:
        if self.down:
            self.down = False
            self.logger.warning("%s is reachable again", self.what)
