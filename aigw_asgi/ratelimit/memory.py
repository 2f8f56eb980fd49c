"""``memory://`` rate-limit counters that cost no task and no lock per request.

`limits`' own `MemoryStorage` (5.x) takes an ``asyncio.Lock`` per key and starts an expiry task on
every increment: about 4 µs of a ~7 µs hit, on every request through the rate-limit layer. The
counters here are touched only from the event loop's thread and these methods never await, so
each one is atomic as it stands; expired counters are dropped when read (as the base class does)
and swept by a timer at most once a second instead of by a task per hit.

The moving-window entries (``acquire_entry``) are the base class's, unchanged: the gateway's rules
use the fixed and sliding-window-counter strategies only.
"""

from __future__ import annotations

import asyncio
import time

from limits.aio.storage import MemoryStorage

_SWEEP_EVERY_S = 1.0


class LoopMemoryStorage(MemoryStorage):
    """`limits.aio.storage.MemoryStorage` for one event loop: same counters, no per-hit task or lock."""

    STORAGE_SCHEME = ["async+aigw-memory"]

    def __init__(self) -> None:
        super().__init__()
        self._sweep: asyncio.TimerHandle | None = None

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        expirations = self.expirations
        if expirations.get(key, 0) <= now:
            self.storage.pop(key, None)
            expirations.pop(key, None)
        value = self.storage[key] = self.storage[key] + amount
        if value == amount:  # a new window
            expirations[key] = now + expiry
            if self._sweep is None:
                self._sweep = asyncio.get_running_loop().call_later(_SWEEP_EVERY_S, self._drop_expired)
        return value

    async def decr(self, key: str, amount: int = 1) -> int:
        if self.expirations.get(key, 0) <= time.time():
            return 0
        value = self.storage[key] = max(self.storage[key] - amount, 0)
        return value

    async def get(self, key: str) -> int:
        if self.expirations.get(key, 0) <= time.time():
            self.storage.pop(key, None)
            self.expirations.pop(key, None)
            return 0
        return self.storage.get(key, 0)

    async def get_expiry(self, key: str) -> float:
        return self.expirations.get(key, time.time())

    def _drop_expired(self) -> None:
        self._sweep = None
        now = time.time()
        expirations = self.expirations
        for key in [key for key, at in expirations.items() if at <= now]:
            self.storage.pop(key, None)
            del expirations[key]
        if expirations:
            self._sweep = asyncio.get_running_loop().call_later(_SWEEP_EVERY_S, self._drop_expired)

    def close(self) -> None:
        """Stop the sweep timer (and the base class's expiry task, if it ever started one)."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        timer = self.timer
        if timer is not None and not timer.done():
            timer.cancel()


# `limits` wraps these methods in an error-translating coroutine in every subclass (for backends
# whose client raises); a dict cannot fail that way, and the extra frame is a third of a hit.
for _name in ("incr", "get", "get_expiry"):
    setattr(LoopMemoryStorage, _name, getattr(LoopMemoryStorage, _name).__wrapped__)
