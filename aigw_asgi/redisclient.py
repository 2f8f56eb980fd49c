"""One way to open a redis-py asyncio client from a config URL, Redis Cluster included.

``redis://``, ``rediss://`` and ``redis+cluster://[user:pw@]h1:7000,h2:7001/0`` (every listed
host a startup node) for the cache and the spend ledger; `limits` opens its own for rate limits.
Timeouts are short and retries explicit: redis-py 8 retries 10 times with backoff by default,
which would make a dead Redis cost seconds per request, while each caller has its own rule for
an outage (a breaker, fail open or closed).
"""

from __future__ import annotations

from typing import Any

from ._lazy import preload


def preload_redis() -> None:
    """Import redis-py where a Redis-backed part is built, not in the loop at its first use (`preload`)."""
    preload("redis.asyncio", "redis.asyncio.retry", "redis.backoff")


def redis_client(url: str, *, timeout_s: float, retries: int = 0, max_connections: int | None = None) -> Any:
    """A client for ``url``; ``max_connections`` makes a burst wait (up to ``timeout_s``) for a free
    connection instead of failing with "Too many connections". Raises ImportError without redis-py."""
    import redis.asyncio as redis_asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    common: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(NoBackoff(), retries),
    }
    scheme, sep, rest = url.partition("://")
    if scheme in ("redis+cluster", "rediss+cluster"):
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        netloc, slash, tail = rest.partition("/")
        auth, at, hosts = netloc.rpartition("@")
        nodes = [h.strip() for h in hosts.split(",") if h.strip()]
        real = ("rediss" if scheme.startswith("rediss") else "redis") + sep + auth + at + nodes[0] + slash + tail
        startup = [ClusterNode(h.rpartition(":")[0] or h, int(h.rpartition(":")[2] or 6379)) for h in nodes[1:]]
        if startup:
            common["startup_nodes"] = startup
        if max_connections is not None:
            common["max_connections"] = max_connections
        return RedisCluster.from_url(real, **common)
    if max_connections is None:
        return redis_asyncio.Redis.from_url(url, **common)
    pool = redis_asyncio.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout_s, **common
    )
    return redis_asyncio.Redis.from_pool(pool)
