"""`redisclient.preload_redis`, `pgpool.preload_asyncpg`: every Redis- or PostgreSQL-backed part
imports its driver where it is built.

Their clients and pools are made inside the event loop at first use (they bind to it); the import
alone took ~150-200 ms (redis-py) and ~300 ms (asyncpg) on the bench machine, which would stall
that loop and every request in flight on it at the first request. A gateway on the embedded
defaults imports neither. Each case runs in a fresh interpreter (the test process has long
imported both).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

REDIS = "redis://127.0.0.1:1"  # never connected: building a part must not touch the network
PG = "postgresql://u@127.0.0.1:1/db"

PARTS = {
    "rate limit": (
        "redis.asyncio",
        "from aigw_asgi.config import RateLimitConfig; from aigw_asgi.ratelimit import RateLimitMiddleware",
        f"RateLimitMiddleware(None, RateLimitConfig(limit=1, period=60, storage={REDIS!r}))",
    ),
    "redis log store": (
        "redis.asyncio",
        "from aigw_asgi.telemetry.stores.redis import RedisLogStore",
        f"RedisLogStore({REDIS!r})",
    ),
    "redis key store": (
        "redis.asyncio",
        "from aigw_asgi.keys.redis_store import RedisKeyStore",
        f"RedisKeyStore({REDIS!r})",
    ),
    "redis spend ledger": (
        "redis.asyncio",
        "from aigw_asgi.budgets.redis import RedisLedger",
        f"RedisLedger({REDIS!r})",
    ),
    "redis cache": ("redis.asyncio", "from aigw_asgi.cache.storage import RedisStorage", f"RedisStorage({REDIS!r})"),
    "postgres log store": (
        "asyncpg",
        "from aigw_asgi.telemetry.stores.postgres import PostgresLogStore",
        f"PostgresLogStore({PG!r})",
    ),
    "postgres key store": (
        "asyncpg",
        "from aigw_asgi.keys.postgres_store import PostgresKeyStore",
        f"PostgresKeyStore({PG!r})",
    ),
    "postgres spend ledger": (
        "asyncpg",
        "from aigw_asgi.budgets.postgres import PostgresLedger",
        f"PostgresLedger({PG!r})",
    ),
}


def _loaded(module: str, imports: str, build: str) -> tuple[bool, bool]:
    """Whether ``module`` is loaded after ``imports``, then after ``build``."""
    probe = (
        f"import sys; {imports}; before = {module!r} in sys.modules; {build}; print(before, {module!r} in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    before, after = out.stdout.split()
    return before == "True", after == "True"


@pytest.mark.parametrize("part", sorted(PARTS))
def test_a_part_imports_its_driver_when_built(part: str) -> None:
    assert _loaded(*PARTS[part]) == (False, True)


def test_a_memory_rate_limiter_imports_no_driver() -> None:
    _, imports, _ = PARTS["rate limit"]
    build = "RateLimitMiddleware(None, RateLimitConfig(limit=1, period=60))"
    assert _loaded("redis", imports, build) == (False, False)
