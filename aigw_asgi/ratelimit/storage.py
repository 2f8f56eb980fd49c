"""Rate-limit storages (`limits.aio`) and the one place where storage trouble is handled.

``memory://`` → `limits.aio.storage.MemoryStorage`; ``redis://`` / ``rediss://`` →
`RedisStorage`; ``redis+cluster://h1:p1,h2:p2`` → `RedisClusterStorage`. Redis goes through
redis-py (``implementation="redispy"``; the `limits` default is coredis) with
``wrap_exceptions=True``, so every backend failure arrives as one `limits.errors.StorageError`.

Storages bind to the event loop that first uses them, so they are built lazily inside it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from limits.aio.storage import MemoryStorage, RedisClusterStorage, RedisStorage, Storage
from limits.errors import StorageError

logger = logging.getLogger("aigw_asgi.ratelimit")

T = TypeVar("T")


def storage_from_uri(uri: str, *, timeout_s: float, key_prefix: str) -> Storage:
    """A `limits.aio` storage for a config URI; Redis timeouts are bounded by ``timeout_s``."""
    if uri.startswith("memory://"):
        return MemoryStorage()
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    options: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        # redis-py 8 retries 10 times with backoff by default; one immediate retry is enough to
        # replace a connection that died with a Redis restart, and keeps an outage cheap.
        "retry": Retry(NoBackoff(), 1),
    }
    kind = RedisClusterStorage if uri.startswith("redis+cluster://") else RedisStorage
    return kind("async+" + uri, implementation="redispy", wrap_exceptions=True, key_prefix=key_prefix, **options)


async def close_storage(storage: Storage) -> None:
    """Release a storage's connections or background task (`limits` has no close method)."""
    if isinstance(storage, MemoryStorage):
        timer = storage.timer
        if timer is not None and not timer.done():
            timer.cancel()
        return
    bridge = getattr(storage, "bridge", None)
    client = getattr(bridge, "storage", None)
    aclose = getattr(client, "aclose", None)
    if aclose is not None:
        await aclose()


class StorageDown(Exception):
    """The storage failed, timed out, or is known to be down (circuit open)."""


class Guard:
    """Bounds every storage call by a timeout and stops calling a storage that is down.

    After a failure the circuit stays open for ``backoff_s``: requests skip the storage entirely
    (so a dead Redis costs nothing per request), then the next call probes it again. One warning
    is logged per outage, and one line when the storage is back.
    """

    def __init__(self, *, timeout_s: float, backoff_s: float = 1.0, what: str = "rate-limit storage") -> None:
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.what = what
        self.down_until = 0.0
        self.down = False

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        if self.down and time.monotonic() < self.down_until:
            raise StorageDown()
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await fn(*args, **kwargs)
        except (StorageError, TimeoutError, OSError) as exc:
            self.trip(exc)
            raise StorageDown() from None
        if self.down:
            self.down = False
            logger.warning("%s is reachable again", self.what)
        return result

    def trip(self, exc: BaseException) -> None:
        if not self.down:
            cause = exc.storage_error if isinstance(exc, StorageError) else exc
            # The class name only: a Redis error message may carry the URL and its password.
            logger.warning("%s unavailable (%s); retrying in %.1f s", self.what, type(cause).__name__, self.backoff_s)
        self.down = True
        self.down_until = time.monotonic() + self.backoff_s
