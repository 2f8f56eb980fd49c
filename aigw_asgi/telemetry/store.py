"""Log stores behind one protocol: SQLite (default), memory, Redis (SPEC §9).

    LogStore (protocol)
    ├── MemoryLogStore   memory://           one process, lost on restart; tests and demos
    ├── SQLiteLogStore   sqlite:///PATH      stdlib sqlite3 on one worker thread, WAL, batched inserts
    └── RedisLogStore    redis://HOST/DB     shared by every gateway instance, capped (redis extra)

Stores are written by the telemetry writer task only (never on a request's path) and read by the
admin API. Each enforces ``logs.max_logs`` itself: ``DELETE_OLDEST`` trims the oldest rows after
a write, ``STOP_INSERTING`` refuses new rows once full (counted in ``refused``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from itertools import chain
from operator import attrgetter
from typing import Any, Protocol, runtime_checkable

from ..config import LogsConfig
from ..errors import ConfigError
from .query import AnalyticsRow, LogQuery, aggregate, analytics_row, matches, order, page
from .records import LogRecord

PATCHABLE = ("feedback", "score", "metadata")


@runtime_checkable
class LogStore(Protocol):
    """What the telemetry writer and the admin API need from a store.

    Optional: ``async write_built(build) -> int``, for a store with a thread of its own: it calls
    ``build()`` (which turns queued requests into rows) on that thread and writes the result, so a
    batch costs one thread handoff instead of two (see `SQLiteLogStore`).
    """

    kind: str
    refused: int  # rows not stored because the store was full (STOP_INSERTING)

    async def write(self, records: Sequence[LogRecord]) -> int:
        """Store rows (a batch); returns how many were stored."""
        ...

    async def get(self, log_id: str, *, bodies: bool = False) -> LogRecord | None: ...

    async def query(self, q: LogQuery) -> tuple[list[LogRecord], int]:
        """One page of matching rows (without bodies) and the total number of matches."""
        ...

    async def patch(self, log_id: str, changes: dict[str, Any]) -> LogRecord | None: ...

    async def delete(self, q: LogQuery) -> int: ...

    async def analytics(self, q: LogQuery) -> dict[str, Any]: ...

    async def count(self) -> int: ...

    async def aclose(self) -> None: ...


def make_store(config: LogsConfig, gateway_id: str = "default") -> LogStore:
    """The store a ``logs.store`` URL names."""
    url = config.store
    scheme = url.split("://", 1)[0]
    if scheme == "memory":
        return MemoryLogStore(max_logs=config.max_logs, strategy=config.strategy)
    if scheme == "sqlite":
        return SQLiteLogStore(sqlite_path(url), max_logs=config.max_logs, strategy=config.strategy)
    if scheme in ("redis", "rediss"):
        return RedisLogStore(url, max_logs=config.max_logs, strategy=config.strategy, gateway_id=gateway_id)
    raise ConfigError(f"logs.store: unsupported store {url!r}")


def sqlite_path(url: str) -> str:
    """``sqlite:///aigw.db`` -> ``aigw.db`` (relative), ``sqlite:////var/x.db`` -> ``/var/x.db``."""
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or len(rest) < 2:
        raise ConfigError("logs.store: expected sqlite:///PATH")
    return rest[1:]


# -- memory ---------------------------------------------------------------------------------------


class MemoryLogStore:
    """Rows in a dict, insertion-ordered (so the oldest row is the first one)."""

    kind = "memory"

    def __init__(self, *, max_logs: int = 1_000_000, strategy: str = "DELETE_OLDEST") -> None:
        self.max_logs = max_logs
        self.strategy = strategy
        self.refused = 0
        self._rows: dict[str, LogRecord] = {}

    async def write(self, records: Sequence[LogRecord]) -> int:
        if self.strategy == "STOP_INSERTING":
            room = max(self.max_logs - len(self._rows), 0)
            self.refused += max(len(records) - room, 0)
            records = records[:room]
        for r in records:
            self._rows[r.id] = r
        while len(self._rows) > self.max_logs:
            del self._rows[next(iter(self._rows))]
        return len(records)

    async def get(self, log_id: str, *, bodies: bool = False) -> LogRecord | None:
        return self._rows.get(log_id)

    async def query(self, q: LogQuery) -> tuple[list[LogRecord], int]:
        found = order([r for r in self._rows.values() if matches(r, q)], q)
        return page(found, q), len(found)

    async def patch(self, log_id: str, changes: dict[str, Any]) -> LogRecord | None:
        row = self._rows.get(log_id)
        if row is not None:
            for key, value in changes.items():
                setattr(row, key, value)
        return row

    async def delete(self, q: LogQuery) -> int:
        doomed = order([r for r in self._rows.values() if matches(r, q)], q)[: q.limit]
        for r in doomed:
            del self._rows[r.id]
        return len(doomed)

    async def analytics(self, q: LogQuery) -> dict[str, Any]:
        return aggregate((analytics_row(r) for r in self._rows.values() if matches(r, q)), q)

    async def count(self) -> int:
        return len(self._rows)

    async def aclose(self) -> None:
        return None


# -- SQLite ---------------------------------------------------------------------------------------

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
    "CREATE INDEX IF NOT EXISTS logs_event_id ON logs (event_id)",
    "CREATE INDEX IF NOT EXISTS logs_request_id ON logs (request_id)",
]
_SQL_ORDER = {**{n: n for n in _NAMES}, "total_tokens": "(COALESCE(tokens_in, 0) + COALESCE(tokens_out, 0))"}
_COLUMN_NAMES = tuple(_NAMES)
_BODY_NAMES = ("id", "request_body", "response_body")
_MAX_CHUNK_BITS = 8  # at most 256 rows per INSERT statement
_COUNT_RESYNC_S = 30.0  # other processes may share the file: re-count now and then


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
        path = '$."' + key.replace('"', "") + '"'
        # Booleans are stored as JSON true/false; compare them as the words, like meta_text().
        clauses.append(
            "(CASE json_type(metadata, ?) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
            "ELSE CAST(json_extract(metadata, ?) AS TEXT) END) = ?"
        )
        args += [path, path, want]
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


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

    def __init__(self, path: str, *, max_logs: int = 1_000_000, strategy: str = "DELETE_OLDEST") -> None:
        self.path = path
        self.max_logs = max_logs
        self.strategy = strategy
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
        return written

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
        db = self._db()
        where, args = _where(q)
        wants_meta = any(g.startswith("metadata.") for g in q.group_by)
        cursor = db.execute(
            "SELECT created_at, provider, model, metadata, cost, tokens_in, tokens_out, cached, success, duration_ms"
            f" FROM logs{where}",
            args,
        )
        rows = (
            AnalyticsRow(r[0], r[1], r[2], json.loads(r[3]) if wants_meta and r[3] else None, *r[4:]) for r in cursor
        )
        return aggregate(rows, q)

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


# -- Redis ----------------------------------------------------------------------------------------


class RedisLogStore:
    """Rows as JSON strings, indexed by a sorted set on ``created_at``; every instance sees all.

    Keys (``P`` = ``aigw:logs:{gateway}``): ``P:index`` (zset id -> created_at), ``P:row:{id}``,
    ``P:body:{id}``. Filters run in Python over the index (admin reads only), which suits the
    capped volumes Redis is meant for here; use SQLite for millions of rows on one host.
    """

    kind = "redis"
    _CHUNK = 500

    def __init__(
        self, url: str, *, max_logs: int = 1_000_000, strategy: str = "DELETE_OLDEST", gateway_id: str = "default"
    ) -> None:
        self.url = url
        self.max_logs = max_logs
        self.strategy = strategy
        self.refused = 0
        self.prefix = f"aigw:logs:{gateway_id}"
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _redis(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            try:
                import redis.asyncio as redis
            except ImportError:  # pragma: no cover - depends on the install
                raise ConfigError(
                    "logs.store: redis:// needs the redis extra (pip install 'aigw-asgi[redis]')"
                ) from None
            self._client = redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)
            self._loop = loop
        return self._client

    def _row_key(self, log_id: str) -> str:
        return f"{self.prefix}:row:{log_id}"

    def _body_key(self, log_id: str) -> str:
        return f"{self.prefix}:body:{log_id}"

    async def write(self, records: Sequence[LogRecord]) -> int:
        r = self._redis()
        index = f"{self.prefix}:index"
        if self.strategy == "STOP_INSERTING":
            room = max(self.max_logs - int(await r.zcard(index)), 0)
            self.refused += max(len(records) - room, 0)
            records = records[:room]
        if not records:
            return 0
        pipe = r.pipeline(transaction=False)
        for rec in records:
            request_body, response_body = rec.request_body, rec.response_body
            rec.request_body = rec.response_body = None
            pipe.set(self._row_key(rec.id), rec.to_json())
            rec.request_body, rec.response_body = request_body, response_body
            if request_body is not None or response_body is not None:
                pipe.set(self._body_key(rec.id), json.dumps([request_body, response_body]))
        pipe.zadd(index, {rec.id: rec.created_at for rec in records})
        pipe.zcard(index)
        results = await pipe.execute()
        count = int(results[-1])
        if self.strategy == "DELETE_OLDEST" and count > self.max_logs:
            oldest = await r.zpopmin(index, count - self.max_logs)
            await self._drop([member.decode() for member, _ in oldest])
        return len(records)

    async def _drop(self, ids: list[str]) -> None:
        r = self._redis()
        for i in range(0, len(ids), self._CHUNK):
            chunk = ids[i : i + self._CHUNK]
            keys = [self._row_key(x) for x in chunk] + [self._body_key(x) for x in chunk]
            await r.delete(*keys)
            await r.zrem(f"{self.prefix}:index", *chunk)

    async def _candidates(self, q: LogQuery) -> list[LogRecord]:
        r = self._redis()
        low = "-inf" if q.start is None else q.start
        high = "+inf" if q.end is None else q.end
        ids = [x.decode() for x in await r.zrangebyscore(f"{self.prefix}:index", low, high)]
        out: list[LogRecord] = []
        for i in range(0, len(ids), self._CHUNK):
            raw = await r.mget([self._row_key(x) for x in ids[i : i + self._CHUNK]])
            for item in raw:
                if item is not None:
                    rec = LogRecord.from_json(item)
                    if matches(rec, q):
                        out.append(rec)
        return out

    async def get(self, log_id: str, *, bodies: bool = False) -> LogRecord | None:
        r = self._redis()
        raw = await r.get(self._row_key(log_id))
        if raw is None:
            return None
        rec = LogRecord.from_json(raw)
        if bodies:
            stored = await r.get(self._body_key(log_id))
            if stored is not None:
                rec.request_body, rec.response_body = json.loads(stored)
        return rec

    async def query(self, q: LogQuery) -> tuple[list[LogRecord], int]:
        found = order(await self._candidates(q), q)
        return page(found, q), len(found)

    async def patch(self, log_id: str, changes: dict[str, Any]) -> LogRecord | None:
        rec = await self.get(log_id)
        if rec is None:
            return None
        for key, value in changes.items():
            setattr(rec, key, value)
        await self._redis().set(self._row_key(log_id), rec.to_json(), xx=True)
        return rec

    async def delete(self, q: LogQuery) -> int:
        doomed = order(await self._candidates(q), q)[: q.limit]
        await self._drop([rec.id for rec in doomed])
        return len(doomed)

    async def analytics(self, q: LogQuery) -> dict[str, Any]:
        return aggregate((analytics_row(rec) for rec in await self._candidates(q)), q)

    async def count(self) -> int:
        return int(await self._redis().zcard(f"{self.prefix}:index"))

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except RuntimeError:  # its loop is gone; nothing left to close
                pass
