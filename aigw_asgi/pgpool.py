"""An asyncpg pool per event loop, for the small stores beside the logs (keys, spend counters).

Keys and budget counters live in the log store's PostgreSQL database when the logs do. Each
store needs the same thing: a small pool created on first use in the running loop (a pool cannot
outlive the loop that made it), its tables created once under an advisory lock so instances
starting together do not race, and a close that tolerates a loop already gone.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ._lazy import preload
from .errors import ConfigError


def preload_asyncpg() -> None:
    """Import asyncpg where a PostgreSQL-backed part is built, not in the loop at its first use (`preload`)."""
    preload("asyncpg")


async def connect_pool(url: str, timeout_s: float, lock: int, schema: str) -> Any:
    """An asyncpg pool on ``url`` (``postgres://`` accepted), the ``schema`` created once under ``lock``."""
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError("postgresql:// needs the postgres extra: pip install 'aigw-asgi[postgres]'") from None
    dsn = "postgresql://" + url.split("://", 1)[1]
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=8, timeout=timeout_s, command_timeout=timeout_s)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock)
        await conn.execute(schema)
    return pool


class LoopPool:
    """``await pools.get()``: the running loop's pool, created (with the schema) on first use."""

    def __init__(self, url: str, *, timeout_s: float, lock: int, schema: str) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.lock = lock
        self.schema = schema
        self._pool: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        preload_asyncpg()  # the pool is made inside the loop at first use; its imports are not
        self._creating: asyncio.Lock | None = None

    async def get(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._pool, self._creating = loop, None, asyncio.Lock()
        assert self._creating is not None
        async with self._creating:
            if self._pool is None:
                self._pool = await connect_pool(self.url, self.timeout_s, self.lock, self.schema)
        return self._pool

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await pool.close()
            except RuntimeError:  # its loop is gone
                pass
