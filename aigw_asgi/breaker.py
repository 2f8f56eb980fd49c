"""The one circuit breaker in front of every backing store on the request path (cache, rate limits).

A store in trouble must cost requests nothing for a while, not one timeout each -- but one slow
call is not trouble. Every call is bounded by ``timeout_s``; a call that fails or times out
raises `StorageDown` for *that request only* (the caller applies its rule to it). The circuit
opens only after ``threshold`` consecutive failures: then calls fail at once with `StorageDown`
for ``backoff_s``, after which the next call probes the store again (a failed probe re-opens the
circuit at once; a success closes it). A success anywhere resets the count, so a cold or briefly
slow Redis costs the few requests whose own calls failed, never a whole window of them.

One warning is logged per outage (when the circuit opens) and one line when the store is back;
the first isolated failure of a streak is logged at INFO. What a caller does with `StorageDown`
is its own documented rule: the cache answers MISS, the rate limiter fails open (or closed, 503
code 2011).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_THRESHOLD = 5
"""Consecutive failures that open the circuit (``rate_limit.breaker_failures``)."""


class StorageDown(Exception):
    """The storage failed, timed out, or is known to be down (circuit open)."""


class Breaker:
    """``await breaker.call(fn, *args)``: ``fn`` bounded by ``timeout_s``, skipped while the circuit is open.

    ``failures``: the exception classes that mean "the store is in trouble" (anything else is a
    bug and propagates). ``threshold``: consecutive failures that open the circuit.
    ``consequence``: what the warning tells the operator happens meanwhile.
    """

    def __init__(
        self,
        *,
        what: str,
        logger: logging.Logger,
        timeout_s: float,
        backoff_s: float = 1.0,
        threshold: int = DEFAULT_THRESHOLD,
        failures: tuple[type[BaseException], ...] = (Exception,),
        consequence: str = "",
    ) -> None:
        self.what = what
        self.logger = logger
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.threshold = max(1, threshold)
        self.failures = failures
        self.consequence = consequence
        self._catch: tuple[type[BaseException], ...] = (*failures, TimeoutError)
        self.down_until = 0.0
        self.down = False
        self.streak = 0  # consecutive failures

    def available(self) -> bool:
        return not self.down or time.monotonic() >= self.down_until

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        if not self.available():
            raise StorageDown()
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await fn(*args, **kwargs)
        except self._catch as exc:
            self.failed(exc)
            raise StorageDown() from None
        self.ok()
        return result

    def failed(self, exc: BaseException) -> None:
        """Count a failure; open the circuit at the threshold, or at once when a probe failed."""
        self.streak += 1
        if self.down or self.streak >= self.threshold:
            self.trip(exc)
        elif self.streak == 1:
            self.logger.info(
                "%s call failed (%s): that request goes on without it; %d consecutive failures open the circuit",
                self.what,
                type(_cause(exc)).__name__,
                self.threshold,
            )

    def trip(self, exc: BaseException) -> None:
        """Open the circuit for ``backoff_s`` (warn once per outage)."""
        if not self.down:
            # The class name only: a Redis error message may carry the URL and its password.
            self.logger.warning(
                "%s unavailable (%s, %d consecutive failures); %sretrying in %.1f s",
                self.what,
                type(_cause(exc)).__name__,
                self.streak,
                f"{self.consequence}, " if self.consequence else "",
                self.backoff_s,
            )
        self.down = True
        self.down_until = time.monotonic() + self.backoff_s

    def ok(self) -> None:
        self.streak = 0
        if self.down:
            self.down = False
            self.logger.warning("%s is reachable again", self.what)


def _cause(exc: BaseException) -> BaseException:
    return getattr(exc, "storage_error", None) or exc  # `limits` wraps the backend's error
