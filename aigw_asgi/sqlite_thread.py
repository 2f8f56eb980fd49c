"""A SQLite connection owned by one worker thread, for the small stores beside the logs.

Keys and spend counters live in the log store's SQLite file by default. Every call runs on the
store's own single thread (sqlite3 blocks; the event loop must not), in autocommit mode so each
statement or explicit ``BEGIN IMMEDIATE`` transaction is its own; WAL lets the log writer and the
readers of other processes work beside it, and ``busy_timeout`` makes concurrent writers queue
instead of failing.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def enable_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """``PRAGMA journal_mode=WAL``, retried for up to ``timeout_s`` while the file is locked.

    Two processes opening a new file at once (two workers, a worker and its log writer, two
    gateways sharing a budget file) race to convert it, and SQLite answers the loser "database is
    locked" at once: the busy timeout does not apply to this pragma. Seen as a budget store
    "failure" (a 503) in a two-process test; reproduced with two processes opening fresh files
    (about 1 in 10). Once one has converted it, the other's pragma is a no-op.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)  # on the store's own thread, never the event loop
            delay = min(delay * 2, 0.1)


class SQLiteOnThread:
    """``await sql.run(fn, *args)`` runs ``fn(*args)`` on the thread; ``fn`` calls ``sql.db()``."""

    def __init__(
        self,
        path: str,
        schema: Sequence[str],
        *,
        name: str,
        busy_timeout_ms: int = 5000,
        synchronous: str | None = None,
    ) -> None:
        self.path = path
        self.schema = tuple(schema)
        self.name = name
        self.busy_timeout_ms = busy_timeout_ms
        self.synchronous = synchronous
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def db(self) -> sqlite3.Connection:
        """The connection (opened, with its schema, on first use). Only on the store's thread."""
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            enable_wal(conn, self.busy_timeout_ms / 1000)
            if self.synchronous is not None:
                conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            for statement in self.schema:
                conn.execute(statement)
            self._conn = conn
        return self._conn

    async def aclose(self) -> None:
        def close() -> None:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(executor, close)
            executor.shutdown(wait=True)
