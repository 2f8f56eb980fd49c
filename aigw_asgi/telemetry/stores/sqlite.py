"""The SQLite log store (``sqlite:///PATH``), the embedded default: stdlib ``sqlite3`` on one
worker thread, WAL, multi-row inserts, filters and paging in SQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from itertools import chain
from operator import attrgetter
from typing import Any

from ...errors import ConfigError
from ..query import LogQuery, analytics_result, summary, walk_percentiles
from ..records import LogRecord
from .base import PATCHABLE


def sqlite_path(url: str) -> str:
    """``sqlite:///aigw.db`` -> ``aigw.db`` (relative), ``sqlite:////var/x.db`` -> ``/var/x.db``."""
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or len(rest) < 2:
        raise ConfigError("logs.store: expected sqlite:///PATH")
    return rest[1:]


_COLUMNS = [
    ("id", "TEXT PRIMARY KEY"),
    ("created_at", "REAL NOT NULL"),
    ("gateway", "TEXT"),
    ("provider", "TEXT"),
    ("model", "TEXT"),
    ("path", "TEXT"),
    ("method", "TEXT"),
    ("status_code", "INTEGER"),
    ("success", "INTEGER"),
    ("cached", "INTEGER"),
    ("step", "INTEGER"),
    ("attempt", "INTEGER"),
    ("event_id", "TEXT"),
    ("request_id", "TEXT"),
    ("duration_ms", "REAL"),
    ("ttft_ms", "REAL"),
    ("tokens_in", "INTEGER"),
    ("tokens_out", "INTEGER"),
    ("cached_tokens_in", "INTEGER"),
    ("cost", "REAL"),
    ("custom_cost", "INTEGER"),
    ("metadata", "TEXT"),
    ("token_name", "TEXT"),
    ("client_ip", "TEXT"),
    ("user_agent", "TEXT"),
    ("error", "TEXT"),
    ("error_type", "TEXT"),
    ("stream", "INTEGER"),
    ("cache_status", "TEXT"),
    ("cache_key", "TEXT"),
    ("rate_limited_by", "TEXT"),
    ("feedback", "INTEGER"),
    ("score", "REAL"),
]
_NAMES = [name for name, _ in _COLUMNS]
_BOOLS = frozenset({"success", "cached", "custom_cost", "stream"})
_SELECT = ", ".join(_NAMES)
_SCHEMA = [
    f"CREATE TABLE IF NOT EXISTS logs ({', '.join(f'{n} {t}' for n, t in _COLUMNS)})",
    # Bodies live apart so listing and filtering never read them.
    "CREATE TABLE IF NOT EXISTS log_bodies (id TEXT PRIMARY KEY, request_body TEXT, response_body TEXT)",
    "CREATE INDEX IF NOT EXISTS logs_created_at ON logs (created_at)",
    "CREATE INDEX IF NOT EXISTS logs_provider ON logs (provider, created_at)",
    "CREATE INDEX IF NOT EXISTS logs_model ON logs (model, created_at)",
    "CREATE INDEX IF NOT EXISTS logs_token_name ON logs (token_name, created_at)",
    "CREATE INDEX IF NOT EXISTS logs_event_id ON logs (event_id)",
    "CREATE INDEX IF NOT EXISTS logs_request_id ON logs (request_id)",
]
_SQL_ORDER = {**{n: n for n in _NAMES}, "total_tokens": "(COALESCE(tokens_in, 0) + COALESCE(tokens_out, 0))"}
_COLUMN_NAMES = tuple(_NAMES)
_BODY_NAMES = ("id", "request_body", "response_body")
_MAX_CHUNK_BITS = 8  # at most 256 rows per INSERT statement
_COUNT_RESYNC_S = 30.0  # other processes may share the file: re-count now and then
_EXPIRE_EVERY_S = 60.0  # logs.max_age: look for expired rows at most this often
_EXPIRE_CHUNK = 10_000


_ROW = attrgetter(*_NAMES)  # one C call for the whole row (bools bind as 0/1: bool is an int)
_METADATA = _NAMES.index("metadata")


@lru_cache(maxsize=32)
def _insert_sql(table: str, columns: tuple[str, ...], rows: int) -> str:
    values = ", ".join([f"({', '.join('?' * len(columns))})"] * rows)
    return f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES {values}"


def _to_sql(r: LogRecord) -> tuple[Any, ...]:
    row: tuple[Any, ...] = _ROW(r)
    if r.metadata is not None:
        meta = json.dumps(r.metadata, separators=(",", ":")) if r.metadata else None
        row = (*row[:_METADATA], meta, *row[_METADATA + 1 :])
    return row


def _from_sql(row: Sequence[Any], bodies: tuple[str | None, str | None] | None = None) -> LogRecord:
    data = dict(zip(_NAMES, row, strict=True))
    for name in _BOOLS:
        data[name] = bool(data[name])
    if data["metadata"]:
        data["metadata"] = json.loads(data["metadata"])
    if bodies is not None:
        data["request_body"], data["response_body"] = bodies
    return LogRecord(**data)


# A metadata value as text, the way meta_text() shows it: booleans are stored as JSON
# true/false and compare as those words. Binds the JSON path twice.
_META_TEXT = (
    "(CASE json_type(metadata, ?) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
    "ELSE CAST(json_extract(metadata, ?) AS TEXT) END)"
)


def _json_path(key: str) -> str:
    return '$."' + key.replace('"', "") + '"'


def _where(q: LogQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for name, value in q.text.items():
        clauses.append(f"{name} = ?")
        args.append(value)
    for name in ("success", "cached"):
        value = getattr(q, name)
        if value is not None:
            clauses.append(f"{name} = ?")
            args.append(int(value))
    for name in ("status_code", "feedback"):
        value = getattr(q, name)
        if value is not None:
            clauses.append(f"{name} = ?")
            args.append(value)
    if q.start is not None:
        clauses.append("created_at >= ?")
        args.append(q.start)
    if q.end is not None:
        clauses.append("created_at <= ?")
        args.append(q.end)
    for attr, op, bound in q.ranges:
        column = _SQL_ORDER[attr]
        if attr == "total_tokens":
            clauses.append(f"(tokens_in IS NOT NULL OR tokens_out IS NOT NULL) AND {column} {op} ?")
        else:
            clauses.append(f"{column} {op} ?")
        args.append(bound)
    for key, want in q.metadata.items():
        path = _json_path(key)
        clauses.append(f"{_META_TEXT} = ?")
        args += [path, path, want]
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _dimensions(q: LogQuery) -> tuple[list[str], list[Any]]:
    """SQL for each ``group_by`` dimension (a time bucket as its bucket number)."""
    dims: list[str] = []
    args: list[Any] = []
    for g in q.group_by:
        if g == "time":
            dims.append(f"CAST(created_at / {int(q.interval)} AS INTEGER)")
        elif g in ("provider", "model"):
            dims.append(g)
        else:
            path = _json_path(g[9:])
            dims.append(_META_TEXT)
            args += [path, path]
    return dims, args


def _bucketed(key: tuple[Any, ...], q: LogQuery) -> tuple[Any, ...]:
    """A group key with its time bucket number turned back into epoch seconds."""
    if "time" not in q.group_by:
        return key
    t = q.group_by.index("time")
    return (*key[:t], float(key[t] * q.interval), *key[t + 1 :])


def _summary(
    requests: int, ok: float, cached: float, tokens_in: float, tokens_out: float, cost: float,
    p50: float | None, p95: float | None,
) -> dict[str, Any]:  # fmt: skip
    return summary(requests, requests - int(ok), int(cached), int(tokens_in), int(tokens_out), cost, p50, p95)


def _order_sql(q: LogQuery) -> str:
    column = _SQL_ORDER[q.order_by]
    direction = "DESC" if q.descending else "ASC"
    if q.order_by == "created_at":
        return f" ORDER BY created_at {direction}, id {direction}"
    return f" ORDER BY {column} IS NULL, {column} {direction}, id {direction}"


class SQLiteLogStore:
    """stdlib ``sqlite3`` on a single dedicated thread (one connection, no locking games).

    WAL mode lets the admin API and other processes read while the writer writes; inserts are
    one ``executemany`` per batch in one transaction; ``synchronous=NORMAL`` is durable across
    application crashes (WAL), which is the right trade for logs.
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
        self._conn: Any = None
        self._count: int | None = None
        self._counted_at = 0.0
        self._chunk = 1

    async def _run(self, fn: Any, *args: Any) -> Any:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aigw-sqlite")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _db(self) -> Any:
        if self._conn is None:
            import sqlite3

            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            for statement in _SCHEMA[:2]:
                conn.execute(statement)
            # A file written by an older version: add the columns it lacks (all nullable).
            present = {row[1] for row in conn.execute("PRAGMA table_info(logs)")}
            for name, kind in _COLUMNS:
                if name not in present:
                    conn.execute(f"ALTER TABLE logs ADD COLUMN {name} {kind}")
            for statement in _SCHEMA[2:]:  # indexes, once their columns exist
                conn.execute(statement)
            # Rows per INSERT statement: a power of two within the bound-parameter limit.
            limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(_NAMES)
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
        multi-row ``VALUES`` statement is one step; chunk sizes are powers of two so at most a
        handful of statements (each prepared once and cached by sqlite3) cover any batch.
        """
        size = self._chunk
        start = 0
        while start < len(rows):
            while size > len(rows) - start:
                size //= 2
            db.execute(_insert_sql(table, columns, size), list(chain.from_iterable(rows[start : start + size])))
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
        rows = [_to_sql(r) for r in records]
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
                db.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (id TEXT PRIMARY KEY)")
                db.execute("INSERT INTO doomed SELECT id FROM logs ORDER BY created_at, id LIMIT ?", (excess,))
                db.execute("DELETE FROM log_bodies WHERE id IN (SELECT id FROM doomed)")
                db.execute("DELETE FROM logs WHERE id IN (SELECT id FROM doomed)")
                db.execute("DELETE FROM doomed")
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
                db.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (id TEXT PRIMARY KEY)")
                db.execute(
                    "INSERT INTO doomed SELECT id FROM logs WHERE created_at < ? ORDER BY created_at LIMIT ?",
                    (cutoff, _EXPIRE_CHUNK),
                )
                db.execute("DELETE FROM log_bodies WHERE id IN (SELECT id FROM doomed)")
                deleted = db.execute("DELETE FROM logs WHERE id IN (SELECT id FROM doomed)").rowcount
                db.execute("DELETE FROM doomed")
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
        return self._get(log_id, False)

    async def delete(self, q: LogQuery) -> int:
        return int(await self._run(self._delete, q))

    def _delete(self, q: LogQuery) -> int:
        db = self._db()
        where, args = _where(q)
        limit = f" LIMIT {int(q.limit)}" if q.limit else ""
        db.execute("BEGIN")
        try:
            db.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (id TEXT PRIMARY KEY)")
            db.execute(f"INSERT INTO doomed SELECT id FROM logs{where}{_order_sql(q)}{limit}", args)
            db.execute("DELETE FROM log_bodies WHERE id IN (SELECT id FROM doomed)")
            deleted = db.execute("DELETE FROM logs WHERE id IN (SELECT id FROM doomed)").rowcount
            db.execute("DELETE FROM doomed")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            self._count = None
        return int(deleted)

    # -- reads ----------------------------------------------------------------------------------

    async def get(self, log_id: str, *, bodies: bool = False) -> LogRecord | None:
        return await self._run(self._get, log_id, bodies)  # type: ignore[no-any-return]

    def _get(self, log_id: str, bodies: bool) -> LogRecord | None:
        db = self._db()
        row = db.execute(f"SELECT {_SELECT} FROM logs WHERE id = ?", (log_id,)).fetchone()
        if row is None:
            return None
        stored = None
        if bodies:
            found = db.execute("SELECT request_body, response_body FROM log_bodies WHERE id = ?", (log_id,)).fetchone()
            stored = (found[0], found[1]) if found else (None, None)
        return _from_sql(row, stored)

    async def query(self, q: LogQuery) -> tuple[list[LogRecord], int]:
        return await self._run(self._query, q)  # type: ignore[no-any-return]

    def _query(self, q: LogQuery) -> tuple[list[LogRecord], int]:
        db = self._db()
        where, args = _where(q)
        total = db.execute(f"SELECT COUNT(*) FROM logs{where}", args).fetchone()[0]
        rows = db.execute(
            f"SELECT {_SELECT} FROM logs{where}{_order_sql(q)} LIMIT ? OFFSET ?",
            (*args, q.per_page, (q.page - 1) * q.per_page),
        ).fetchall()
        return [_from_sql(r) for r in rows], int(total)

    async def analytics(self, q: LogQuery) -> dict[str, Any]:
        return await self._run(self._analytics, q)  # type: ignore[no-any-return]

    def _analytics(self, q: LogQuery) -> dict[str, Any]:
        """Analytics in SQL: one grouped pass for the sums, one pass sorted by duration for the
        percentiles (see `walk_percentiles`); only group keys and durations reach Python.

        Measured at 1M rows (benchmarks/README.md): reading every row into Python and
        aggregating there cost ~4 µs a row; this costs ~1.5 µs.
        """
        db = self._db()
        where, where_args = _where(q)
        dims, dim_args = _dimensions(q)
        select = "".join(f"{d}, " for d in dims)
        group = f" GROUP BY {', '.join(str(i + 1) for i in range(len(dims)))}" if dims else ""
        sums = db.execute(
            f"SELECT {select}COUNT(*), TOTAL(success), TOTAL(cached), TOTAL(tokens_in), TOTAL(tokens_out),"
            f" TOTAL(cost), COUNT(duration_ms) FROM logs{where}{group}",
            [*dim_args, *where_args],
        ).fetchall()
        counts: dict[tuple[Any, ...], int] = {}
        parts: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        for r in sums:
            key = tuple(r[: len(dims)])
            if r[len(dims)]:  # no GROUP BY: one row even when nothing matched
                parts[key] = r[len(dims) :]
                counts[key] = r[-1]
        timed = f"{where} AND duration_ms IS NOT NULL" if where else " WHERE duration_ms IS NOT NULL"
        ordered = db.execute(
            f"SELECT {select}duration_ms FROM logs{timed} ORDER BY duration_ms", [*dim_args, *where_args]
        )
        try:
            by_group, overall = walk_percentiles(ordered, counts)
        finally:
            ordered.close()
        totals = [0, 0.0, 0.0, 0.0, 0.0, 0.0]
        groups = []
        for key, (requests, ok, cached, tokens_in, tokens_out, cost, _) in parts.items():
            for i, value in enumerate((requests, ok, cached, tokens_in, tokens_out, cost)):
                totals[i] += value
            if dims:
                p50, p95 = by_group.get(key, (None, None))
                groups.append(
                    (_bucketed(key, q), _summary(requests, ok, cached, tokens_in, tokens_out, cost, p50, p95))
                )
        requests, ok, cached, tokens_in, tokens_out, cost = totals
        return analytics_result(q, _summary(int(requests), ok, cached, tokens_in, tokens_out, cost, *overall), groups)

    async def count(self) -> int:
        return int(await self._run(lambda: self._db().execute("SELECT COUNT(*) FROM logs").fetchone()[0]))

    async def aclose(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, close)
        finally:
            executor.shutdown(wait=False)
            self._count = None
