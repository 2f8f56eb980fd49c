"""Rate-limit storages (`limits.aio`) built lazily per event loop.

Trouble with them is handled by the shared `aigw_asgi.breaker.Breaker`.

``memory://`` → `LoopMemoryStorage` (memory.py: `limits`' own without its per-hit task and
lock); ``redis://`` / ``rediss://`` → `RedisStorage`; ``redis+cluster://h1:p1,h2:p2`` →
`RedisClusterStorage`. Redis goes through redis-py (``implementation="redispy"``; the `limits`
default is coredis) with ``wrap_exceptions=True``, so every backend failure arrives as one
`limits.errors.StorageError`.

Storages bind to the event loop that first uses them, so they are built lazily inside it.
"""

from __future__ import annotations

import logging
from typing import Any

from limits.aio.storage import RedisClusterStorage, RedisStorage, Storage

from ..redisclient import preload_redis
from .memory import LoopMemoryStorage

logger = logging.getLogger("aigw_asgi.ratelimit")


def is_memory(uri: str) -> bool:
    """Whether ``uri`` names the in-process storage (anything else is Redis, through redis-py)."""
    return uri.startswith("memory://")


def preload_storage(uri: str) -> None:
    """Import what `storage_from_uri` will need for ``uri``, now: it runs inside the loop at first use."""
    if not is_memory(uri):
        preload_redis()


def storage_from_uri(uri: str, *, timeout_s: float, key_prefix: str) -> Storage:
    """A `limits.aio` storage for a config URI; Redis timeouts are bounded by ``timeout_s``."""
    if is_memory(uri):
        return LoopMemoryStorage()
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
    if isinstance(storage, LoopMemoryStorage):
        storage.close()
        return
    bridge = getattr(storage, "bridge", None)
    client = getattr(bridge, "storage", None)
    aclose = getattr(client, "aclose", None)
    if aclose is not None:
        await aclose()
