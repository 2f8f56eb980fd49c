"""`redisclient.preload_redis`: every Redis-backed part imports redis-py where it is built.

Its clients are built inside the event loop at first use (they bind to it); the import alone
took ~150-200 ms on the bench machine, which would stall that loop and every request in flight
on it at the first request. A memory-only gateway never imports redis-py at all. Each case runs
in a fresh interpreter (the test process has long imported redis).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

URL = "redis://127.0.0.1:1"  # never connected: building the part must not touch the network

PARTS = {
    "rate limit": (
        "from aigw_asgi.config import RateLimitConfig; from aigw_asgi.ratelimit import RateLimitMiddleware",
        f"RateLimitMiddleware(None, RateLimitConfig(limit=1, period=60, storage={URL!r}))",
    ),
    "log store": ("from aigw_asgi.telemetry.stores.redis import RedisLogStore", f"RedisLogStore({URL!r})"),
    "key store": ("from aigw_asgi.keys.redis_store import RedisKeyStore", f"RedisKeyStore({URL!r})"),
    "spend ledger": ("from aigw_asgi.budgets.redis import RedisLedger", f"RedisLedger({URL!r})"),
    "cache": ("from aigw_asgi.cache.storage import RedisStorage", f"RedisStorage({URL!r})"),
}


def _loaded_after(imports: str, build: str) -> tuple[bool, bool]:
    probe = (
        f"import sys; {imports}; before = 'redis.asyncio' in sys.modules; {build}; "
        "print(before, 'redis.asyncio' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    before, after = out.stdout.split()
    return before == "True", after == "True"


@pytest.mark.parametrize("part", sorted(PARTS))
def test_a_redis_backed_part_imports_redis_when_built(part: str) -> None:
    imports, build = PARTS[part]
    assert _loaded_after(imports, build) == (False, True)


def test_a_memory_rate_limiter_never_imports_redis() -> None:
    imports, _ = PARTS["rate limit"]
    build = "RateLimitMiddleware(None, RateLimitConfig(limit=1, period=60))"
    assert _loaded_after(imports, build) == (False, False)
