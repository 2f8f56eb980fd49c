"""The SQLite log store (``sqlite:///PATH``), the embedded default: stdlib ``sqlite3`` on one
worker thread, WAL, multi-row inserts, filters and paging in SQL."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import Any, TypeVar

from ...errors import ConfigError
from ...sqlite_thread import enable_wal
from ..analytics import analytics_result, walk_percentiles
from ..query import LogQuery
from ..records import LogRecord
from . import sqlite_sql as sql
from .base import PATCHABLE


def sqlite_path(url: str) -> str:
    """``sqlite:///aigw.db`` -> ``aigw.db`` (relative), ``sqlite:////var/x.db`` -> ``/var/x.db``."""
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or len(rest) < 2:
        raise ConfigError("logs.store: expected sqlite:///PATH")
    return rest[1:]


def in_memory(path: str) -> bool:
    """Whether ``path`` names a private in-memory database, which no other connection (or
    process) can open."""
    return path == ":memory:" or path.startswith("file::memory:")


_COLUMN_NAMES = tuple(sql.NAMES)
_BODY_NAMES = ("id", "request_body", "response_body")
_MAX_CHUNK_BITS = 8  # at most 256 rows per INSERT statement
_COUNT_RESYNC_S = 30.0  # other processes may share the file: re-count now and then
_EXPIRE_EVERY_S = 60.0  # logs.max_age: look for expired rows at most this often
_EXPIRE_CHUNK = 10_000
_BUSY_TIMEOUT_MS = 5000  # how long a connection waits for another's lock on the file
_READERS = 4  # reader threads (admin reads; analytics use two at once)
T = TypeVar("T")


class SQLiteLogStore:
    """stdlib ``sqlite3``: one writer connection on its own thread, reader connections on others.

    WAL mode lets readers (the admin API, other processes) read while the writer writes, so a
    long analytics query never holds up the log writer; inserts are a few multi-row statements
    per batch in one transaction; ``synchronous=NORMAL`` is durable across application crashes
    (WAL), which is the right trade for logs.
    """

    kind = "sqlite"

    def __init__(
        self, path: str, *, max_logs: int = 1_000_000, strategy: str = "DELETE_OLDEST", max_age: int = 0
    ) -> None:
        self.path = path
        self.max_logs = max_logs
        self.strategy = strategy
        self.max_age = max_age
        self._expired_at = 0.0
        self.refused = 0
        self._executor: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._idle: list[Any] = []  # reader connections not in use
        self._opened: list[Any] = []  # every reader connection, to close them
        self._lock = threading.Lock()
        self._conn: Any = None
        self._count: int | None = None
        self._counted_at = 0.0
        self._chunk = 1

    async def _run(self, fn: Any, *args: Any) -> Any:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aigw-sqlite")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` on a reader thread with a reader connection of its own."""
        if self._conn is None:
            await self._run(self._db)  # the writer creates and migrates the schema first
        if self._readers is None:
            self._readers = ThreadPoolExecutor(max_workers=_READERS, thread_name_prefix="aigw-sqlite-read")
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._with_reader, fn, args)

    def _with_reader(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            if in_memory(self.path):
                conn = self._db()  # a private in-memory database: only the writer's connection sees it
            else:
                import sqlite3

                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA query_only=ON")
                with self._lock:
                    self._opened.append(conn)
        try:
            return fn(conn, *args)
        finally:
            if conn is not self._conn:
                with self._lock:
                    self._idle.append(conn)

    def _db(self) -> Any:
        if self._conn is None:
            import sqlite3

            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            enable_wal(conn, _BUSY_TIMEOUT_MS / 1000)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            for statement in sql.SCHEMA[:2]:
                conn.execute(statement)
            # A file written by an older version: add the columns it lacks (all nullable).
            present = {row[1] for row in conn.execute("PRAGMA table_info(logs)")}
            for name, kind in sql.COLUMNS:
                if name not in present:
                    conn.execute(f"ALTER TABLE logs ADD COLUMN {name} {kind}")
            for statement in sql.SCHEMA[2:]:  # indexes, once their columns exist
                conn.execute(statement)
            # Rows per INSERT statement: a power of two within the bound-parameter limit.
            limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(sql.NAMES)
            self._chunk = 1 << min(max(limit, 1).bit_length() - 1, _MAX_CHUNK_BITS)
            self._conn = conn
        return self._conn

    def _rows(self, db: Any) -> int:
        now = time.monotonic()
        if self._count is None or now - self._counted_at > _COUNT_RESYNC_S:
            self._count = db.execute("SELECT COUNT(*) FROM logs").fetchone()[0]
            self._counted_at = now
        return self._count

    # -- writes ---------------------------------------------------------------------------------

    async def write(self, records: Sequence[LogRecord]) -> int:
        return int(await self._run(self._write, list(records)))

    async def write_built(self, build: Callable[[], list[LogRecord]]) -> int:
        """Build the rows and write them in one trip to the store's thread (`write` needs two:
        one to build off the event loop, one to write)."""
        return int(await self._run(lambda: self._write(build())))

    def _insert(self, db: Any, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        """``INSERT OR IGNORE`` of many rows with few statements.

        Why not ``executemany``: it releases and retakes the GIL around every row's step. While
        the event loop keeps the GIL busy, each retake waits for the interpreter's switch interval
        (5 ms), so a 200-row batch took a second and, under load, the log queue overflowed. One
        multi-row ``VALUES`` statement is one step. Statement sizes are multiples of 8 up to the
        chunk, then 4, 2, 1 for the rest: a full batch (200 rows by default) is one statement, any
        batch at most four, and a table needs at most 35 distinct statements (each prepared once
        and cached by sqlite3). Every statement is a GIL hand-off with the event loop, which is
        what a batch costs the loop.
        """
        start = 0
        while start < len(rows):
            size = min(len(rows) - start, self._chunk)
            size = size - size % 8 if size >= 8 else 1 << (size.bit_length() - 1)
            db.execute(sql.insert_sql(table, columns, size), list(chain.from_iterable(rows[start : start + size])))
            start += size

    def _write(self, records: list[LogRecord]) -> int:
        db = self._db()
        if self.strategy == "STOP_INSERTING":
            room = max(self.max_logs - self._rows(db), 0)
            self.refused += max(len(records) - room, 0)
            records = records[:room]
        if not records:
            return 0
        count = self._rows(db)
        rows = [sql.to_sql(r) for r in records]
        bodies = [
            (r.id, r.request_body, r.response_body)
            for r in records
            if r.request_body is not None or r.response_body is not None
        ]
        db.execute("BEGIN")
        try:
            before = db.total_changes
            self._insert(db, "logs", _COLUMN_NAMES, rows)
            written = db.total_changes - before
            if bodies:
                self._insert(db, "log_bodies", _BODY_NAMES, bodies)
            count += written
            if self.strategy == "DELETE_OLDEST" and count > self.max_logs:
                excess = count - self.max_logs
                _drop(db, "SELECT id FROM logs ORDER BY created_at, id LIMIT ?", (excess,))
                count -= excess
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._count = None
            raise
        self._count = count
        if self.max_age and time.monotonic() - self._expired_at > _EXPIRE_EVERY_S:
            self._expire(db)
        return written

    def _expire(self, db: Any) -> None:
        """``logs.max_age``: drop rows older than that, a bounded chunk per transaction."""
        self._expired_at = time.monotonic()
        cutoff = time.time() - self.max_age
        while True:
            db.execute("BEGIN")
            try:
                deleted = _drop(
                    db,
                    "SELECT id FROM logs WHERE created_at < ? ORDER BY created_at LIMIT ?",
                    (cutoff, _EXPIRE_CHUNK),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            finally:
                self._count = None
            if deleted < _EXPIRE_CHUNK:
                return

    async def patch(self, log_id: str, changes: dict[str, Any]) -> LogRecord | None:
        return await self._run(self._patch, log_id, changes)  # type: ignore[no-any-return]

    def _patch(self, log_id: str, changes: dict[str, Any]) -> LogRecord | None:
        db = self._db()
        sets = []
        args: list[Any] = []
        for key, value in changes.items():
            if key not in PATCHABLE:
                raise ValueError(key)
            sets.append(f"{key} = ?")
            if key == "metadata":
                value = json.dumps(value, separators=(",", ":")) if value else None
            args.append(value)
        if sets:
            db.execute(f"UPDATE logs SET {', '.join(sets)} WHERE id = ?", (*args, log_id))
        return self._get(db, log_id, False)

    async def delete(self, q: LogQuery) -> int:
        return int(await self._run(self._delete, q))

    def _delete(self, q: LogQuery) -> int:
        db = self._db()
        where, args = sql.where(q)
        limit = f" LIMIT {int(q.limit)}" if q.limit else ""
        db.execute("BEGIN")
        try:
            deleted = _drop(db, f"SELECT id FROM logs{where}{sql.order_sql(q)}{limit}", args)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            self._count = None
        return deleted

    # -- reads ----------------------------------------------------------------------------------

    async def get(self, log_id: str, *, bodies: bool = False) -> LogRecord | None:
        return await self._read(self._get, log_id, bodies)

    def _get(self, db: Any, log_id: str, bodies: bool) -> LogRecord | None:
        row = db.execute(f"SELECT {sql.SELECT} FROM logs WHERE id = ?", (log_id,)).fetchone()
        if row is None:
            return None
        stored = None
        if bodies:
            found = db.execute("SELECT request_body, response_body FROM log_bodies WHERE id = ?", (log_id,)).fetchone()
            stored = (found[0], found[1]) if found else (None, None)
        return sql.from_sql(row, stored)

    async def query(self, q: LogQuery) -> tuple[list[LogRecord], int]:
        return await self._read(self._query, q)

    def _query(self, db: Any, q: LogQuery) -> tuple[list[LogRecord], int]:
        where, args = sql.where(q)
        total = db.execute(f"SELECT COUNT(*) FROM logs{where}", args).fetchone()[0]
        rows = db.execute(
            f"SELECT {sql.SELECT} FROM logs{where}{sql.order_sql(q)} LIMIT ? OFFSET ?",
            (*args, q.per_page, (q.page - 1) * q.per_page),
        ).fetchall()
        return [sql.from_sql(r) for r in rows], int(total)

    async def analytics(self, q: LogQuery) -> dict[str, Any]:
        """Analytics in SQL, on two reader connections at once: one grouped pass for the sums,
        and one pass sorted by duration for the percentiles (see `walk_percentiles`), whose sort
        runs while the sums are computed; only group keys and durations reach Python.

        Measured at 1M rows (benchmarks/README.md): reading every row into Python and
        aggregating there cost ~4 µs a row; this costs ~1.5 µs.
        """
        where, where_args = sql.where(q)
        dims, dim_args = sql.dimensions(q)
        select = "".join(f"{d}, " for d in dims)
        group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(dims)))}" if dims else ""
        timed = f"{where} AND duration_ms IS NOT NULL" if where else " WHERE duration_ms IS NOT NULL"
        sums_sql = (
            f"SELECT {select}COUNT(*), TOTAL(success), TOTAL(cached), TOTAL(tokens_in), TOTAL(tokens_out),"
            f" TOTAL(cost), COUNT(duration_ms) FROM logs{where}{group}"
        )
        ordered_sql = f"SELECT {select}duration_ms FROM logs{timed} ORDER BY duration_ms"
        params = [*dim_args, *where_args]
        counts_ready: concurrent.futures.Future[dict[tuple[Any, ...], int]] = concurrent.futures.Future()

        def percentiles(db: Any) -> Any:
            cursor = db.execute(ordered_sql, params)
            try:
                first = cursor.fetchmany(1)  # the sort happens here, alongside the sums
                return walk_percentiles(chain(first, cursor), counts_ready.result())
            finally:
                cursor.close()

        def sums(db: Any) -> list[Any]:
            try:
                rows = db.execute(sums_sql, params).fetchall()
            except BaseException as exc:
                counts_ready.set_exception(exc)
                raise
            # No GROUP BY: one row even when nothing matched (requests = 0).
            counts_ready.set_result({tuple(r[: len(dims)]): r[-1] for r in rows if r[len(dims)]})
            return rows

        # The percentile job waits for the sums' counts: give it a thread of its own, so it can
        # never wait on a sums job queued behind it on the reader pool.
        walked = asyncio.ensure_future(asyncio.to_thread(self._with_reader, percentiles, ()))
        try:
            rows = await self._read(sums)
        except BaseException:
            await asyncio.gather(walked, return_exceptions=True)
            raise
        by_group, overall = await walked
        totals = [0, 0.0, 0.0, 0.0, 0.0, 0.0]
        groups = []
        for r in rows:
            if not r[len(dims)]:
                continue
            key = tuple(r[: len(dims)])
            requests, ok, cached, tokens_in, tokens_out, cost, _ = r[len(dims) :]
            for i, value in enumerate((requests, ok, cached, tokens_in, tokens_out, cost)):
                totals[i] += value
            if dims:
                p50, p95 = by_group.get(key, (None, None))
                stats = sql.stats(requests, ok, cached, tokens_in, tokens_out, cost, p50, p95)
                groups.append((sql.bucketed(key, q), stats))
        requests, ok, cached, tokens_in, tokens_out, cost = totals
        return analytics_result(q, sql.stats(int(requests), ok, cached, tokens_in, tokens_out, cost, *overall), groups)

    async def count(self) -> int:
        return await self._read(lambda db: int(db.execute("SELECT COUNT(*) FROM logs").fetchone()[0]))

    async def aclose(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        readers, self._readers = self._readers, None
        if readers is not None:
            readers.shutdown(wait=True)  # reads in flight end first; their connections close below
        with self._lock:
            opened, self._opened, self._idle = self._opened, [], []
        for conn in opened:
            conn.close()
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, close)
        finally:
            executor.shutdown(wait=False)
            self._count = None


def _drop(db: Any, select: str, args: Sequence[Any]) -> int:
    """Delete the rows whose ids ``select`` returns, and their bodies, in the caller's transaction.

    The ids are collected first (a temp table) so both tables lose exactly the same rows however
    ``select`` orders or limits them. Returns how many log rows went.
    """
    db.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (id TEXT PRIMARY KEY)")
    db.execute(f"INSERT INTO doomed {select}", args)
    db.execute("DELETE FROM log_bodies WHERE id IN (SELECT id FROM doomed)")
    deleted = int(db.execute("DELETE FROM logs WHERE id IN (SELECT id FROM doomed)").rowcount)
    db.execute("DELETE FROM doomed")
    return deleted
