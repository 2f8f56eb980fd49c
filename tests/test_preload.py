"""`_lazy.preload` and `_lazy.import_off_loop`: no library is imported inside the event loop.

Clients and pools are made inside the loop at first use (they bind to it); importing their
library there took ~175 ms (redis-py), ~180 ms (aiohttp) and ~75 ms (asyncpg) warm on the bench
machine, twice that cold, and would stall that loop and every request in flight on it. Every part
a config opts into (a Redis or PostgreSQL store, the aiohttp or httpx transport) imports its
library where it is built; realtime sessions, always on, import aiohttp in a thread at the first
one. A gateway on the embedded defaults imports none of them. Each build runs in a fresh
interpreter (the test process has long imported them all).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import types

import pytest

from aigw_asgi import _lazy

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
    "aiohttp transport": ("aiohttp", "from aigw_asgi.transport import AiohttpTransport", "AiohttpTransport()"),
    "httpx transport": ("httpx", "from aigw_asgi.transport import HttpxTransport", "HttpxTransport()"),
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


@pytest.mark.parametrize("library", ["redis", "asyncpg", "aiohttp", "httpx"])
def test_a_gateway_on_the_defaults_imports_none(library: str) -> None:
    imports = "from aigw_asgi import Gateway; from aigw_asgi.config import Config"
    assert _loaded(library, imports, "Gateway(Config())") == (False, False)


def test_import_off_loop_imports_in_a_worker_thread_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, bool]] = []
    module = types.ModuleType("aigw_not_loaded_yet")

    def import_module(name: str) -> types.ModuleType:
        calls.append((name, threading.current_thread() is threading.main_thread()))
        sys.modules[name] = module
        return module

    monkeypatch.setattr(_lazy.importlib, "import_module", import_module)
    monkeypatch.delitem(sys.modules, "aigw_not_loaded_yet", raising=False)

    async def twice() -> tuple[object, object]:
        return await _lazy.import_off_loop("aigw_not_loaded_yet"), await _lazy.import_off_loop("aigw_not_loaded_yet")

    try:
        assert asyncio.run(twice()) == (module, module)
    finally:
        sys.modules.pop("aigw_not_loaded_yet", None)
    assert calls == [("aigw_not_loaded_yet", False)]  # off the loop's thread, and only while not loaded
