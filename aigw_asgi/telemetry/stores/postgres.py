"""The PostgreSQL log store (``postgresql://USER:PASSWORD@HOST:PORT/DB``): one log view for every
gateway instance, with filters, paging and analytics in SQL (``postgres`` extra: asyncpg).

Why asyncpg rather than psycopg 3: it is asyncio-native with its pool built in (one dependency,
where psycopg needs psycopg-pool and a libpq or its binary wheel), speaks the binary protocol
(rows arrive as typed values, no text parsing), and its per-connection statement cache
prepares each of our few statement shapes once. The price of prepared statements: behind
PgBouncer, use session pooling (or PgBouncer 1.21+ with ``max_prepared_statements``).

Writes come from the telemetry writer task only, a batch per statement (`postgres_sql.INSERT`:
one array per column, ``unnest``ed). The row count lives in a one-row table updated in the same
transaction, so ``max_logs`` costs no ``COUNT(*)`` per batch and an unfiltered page knows its
total at once. The schema is versioned (`postgres_sql.MIGRATIONS`), migrated on first use
under an advisory lock, so N instances starting together migrate once.

Failure rule (SPEC §9, same as every store): a database that is down or slow makes writes
fail (the writer counts the rows as ``failed`` and keeps serving), admin reads answer 503 and
``/admin/health`` says ``degraded``; the pool reconnects by itself when the database is back.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

from ...errors import ConfigError
from ...pgpool import preload_asyncpg
from ..analytics import analytics_result, summary
from ..query import LogQuery
from ..records import LogRecord
from . import postgres_sql as sql
from .base import PATCHABLE

_EPOCH_2000 = 946_684_800  # PostgreSQL counts timestamps in microseconds from 2000-01-01 UTC
_ROW = attrgetter(*sql.NAMES)
_METADATA = sql.NAMES.index("metadata")
_TEXT_INDEXES = [i for i, name in enumerate(sql.NAMES) if name in sql.TEXT_COLUMNS]
_RESYNC_S = 600.0  # re-count the rows now and then (someone may delete rows by hand)
_EXPIRE_EVERY_S = 60.0
_EXPIRE_CHUNK = 10_000


def _encode_time(seconds: float) -> tuple[int]:
    return (round((seconds - _EPOCH_2000) * 1_000_000),)


def _decode_time(value: tuple[int]) -> float:
    return value[0] / 1_000_000 + _EPOCH_2000


async def _init_connection(conn: Any) -> None:
    # created_at travels as epoch seconds, like LogRecord holds it: no datetime objects per row.
    await conn.set_type_codec(
        "timestamptz", schema="pg_catalog", encoder=_encode_time, decoder=_decode_time, format="tuple"
    )


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL; one in a body or header would fail the whole batch.
    return text.replace("\x00", "\ufffd")


def _metadata_json(meta: dict[str, Any] | None) -> str | None:
    if not meta:
        return None
    # json.dumps spells NUL "\u0000", which jsonb refuses as well: clean the values first.
    clean = {_clean(k): _clean(v) if isinstance(v, str) else v for k, v in meta.items()}
    return json.dumps(clean, separators=(",", ":"))


def _maybe_clean(text: str | None) -> str | None:
    return None if text is None else _clean(text)


def _to_row(r: LogRecord) -> list[Any]:
    row = list(_ROW(r))
    meta = row[_METADATA]
    row[_METADATA] = _metadata_json(meta)
    for i in _TEXT_INDEXES:
        value = row[i]
        if value is not None and "\x00" in value:
            row[i] = _clean(value)
    return row


def _from_row(row: Any) -> LogRecord:
    data = dict(row.items())
    if data["metadata"] is not None:
        data["metadata"] = json.loads(data["metadata"])
    return LogRecord(**data)


class PostgresLogStore:
    """asyncpg pool (``pool_size`` connections at most, ``timeout`` seconds per connect and per
    statement), created on first use in the running event loop."""

    kind = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        max_logs: int = 1_000_000,
        strategy: str = "DELETE_OLDEST",
        max_age: int = 0,
        pool_size: int = 5,
        timeout: float = 10.0,
    ) -> None:
        self.url = "postgresql://" + url.split("://", 1)[1]
        self.max_logs = max_logs
        self.strategy = strategy
        self.max_age = max_age
        self.pool_size = pool_size
        self.timeout = timeout
        self.refused = 0
        self._pool: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._counted_at = 0.0
        self._expired_at = 0.0
        preload_asyncpg()  # the pool is made inside the loop at first use; its imports are not

    # -- connection -----------------------------------------------------------------------------

    async def _db(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._loop is loop:
            return self._pool
        if self._lock is None or self._loop is not loop:
            self._lock = asyncio.Lock()
            if self._pool is not None:  # made in a loop that is gone: its sockets go with it
                self._pool.terminate()
            self._pool, self._loop = None, loop
        async with self._lock:
            if self._pool is None:
                self._pool = await self._connect()
        return self._pool

    async def _connect(self) -> Any:
        try:
            import asyncpg  # type: ignore[import-untyped]
        except ImportError:  # pragma: no cover - depends on the install
            raise ConfigError(
                "logs.store: postgresql:// needs the postgres extra (pip install 'aigw-asgi[postgres]')"
            ) from None
        pool = await asyncpg.create_pool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            timeout=self.timeout,
            command_timeout=self.timeout,
            init=_init_connection,
            max_inactive_connection_lifetime=300,
        )
        try:
            async with pool.acquire() as conn:
                await _migrate(conn)
                await self._recount(conn)
        except BaseException:
            pool.terminate()
            raise
        return pool

    async def _recount(self, conn: Any) -> None:
        async with conn.transaction():
            await conn.execute("SELECT n FROM aigw_log_count FOR UPDATE")
            # A new statement, so its snapshot sees every write that committed before the lock.
            await conn.execute("UPDATE aigw_log_count SET n = (SELECT count(*) FROM aigw_logs)")
        self._counted_at = time.monotonic()

    # -- writes ---------------------------------------------------------------------------------

    async def write(self, records: Sequence[LogRecord]) -> int:
        if not records:
            return 0
        pool = await self._db()
        async with pool.acquire() as conn:
            if time.monotonic() - self._counted_at > _RESYNC_S:
                await self._recount(conn)
            async with conn.transaction():
                if self.strategy == "STOP_INSERTING":
                    stored = await conn.fetchval("SELECT n FROM aigw_log_count FOR UPDATE")
                    room = max(self.max_logs - stored, 0)
                    self.refused += max(len(records) - room, 0)
                    records = records[:room]
                    if not records:
                        return 0
                rows = [_to_row(r) for r in records]
                status = await conn.execute(sql.INSERT, *zip(*rows, strict=True))
                written = int(status.rsplit(" ", 1)[1])
                bodies = [
                    (r.id, _maybe_clean(r.request_body), _maybe_clean(r.response_body))
                    for r in records
                    if r.request_body is not None or r.response_body is not None
                ]
                if bodies:
                    await conn.execute(sql.INSERT_BODIES, *zip(*bodies, strict=True))
                stored = await conn.fetchval("UPDATE aigw_log_count SET n = n + $1 RETURNING n", written)
                if self.strategy == "DELETE_OLDEST" and stored > self.max_logs:
                    oldest = "id IN (SELECT id FROM aigw_logs ORDER BY created_at, id LIMIT $1)"
                    await self._delete_where(conn, oldest, stored - self.max_logs)
            if self.max_age and time.monotonic() - self._expired_at > _EXPIRE_EVERY_S:
                await self._expire(conn)
        return written

    async def _delete_where(self, conn: Any, condition: str, *args: Any) -> int:
        """Delete rows (their bodies cascade) and keep the count; inside the caller's transaction."""
        status = await conn.execute(f"DELETE FROM aigw_logs WHERE {condition}", *args)
        deleted = int(status.rsplit(" ", 1)[1])
        if deleted:
            await conn.execute("UPDATE aigw_log_count SET n = n - $1", deleted)
        return deleted

    async def _expire(self, conn: Any) -> None:
        """``logs.max_age``: drop rows older than that, a bounded chunk per transaction."""
        self._expired_at = time.monotonic()
        cutoff = time.time() - self.max_age
        condition = (
            "id IN (SELECT id FROM aigw_logs WHERE created_at < $1::timestamptz ORDER BY created_at, id LIMIT $2)"
        )
        while True:
            async with conn.transaction():
                deleted = await self._delete_where(conn, condition, cutoff, _EXPIRE_CHUNK)
            if deleted < _EXPIRE_CHUNK:
                return

    async def patch(self, log_id: str, changes: dict[str, Any]) -> LogRecord | None:
        p = sql.Params()
        sets = []
        for key, value in changes.items():
            if key not in PATCHABLE:
                raise ValueError(key)
            if key == "metadata":
                sets.append(f"metadata = {p(_metadata_json(value), '::jsonb')}")
            else:
                sets.append(f"{key} = {p(value)}")
        pool = await self._db()
        if not sets:
            return await self.get(log_id)
        row = await pool.fetchrow(
            f"UPDATE aigw_logs SET {', '.join(sets)} WHERE id = {p(log_id, '::text')} RETURNING {sql.SELECT}",
            *p.values,
        )
        return None if row is None else _from_row(row)

    async def delete(self, q: LogQuery) -> int:
        p = sql.Params()
        filters = sql.where(q, p)
        if q.limit:
            condition = f"id IN (SELECT id FROM aigw_logs{filters}{sql.order(q)} LIMIT {int(q.limit)})"
        else:
            condition = filters.removeprefix(" WHERE ") or "true"
        pool = await self._db()
        async with pool.acquire() as conn, conn.transaction():
            return await self._delete_where(conn, condition, *p.values)

    # -- reads ----------------------------------------------------------------------------------

    async def get(self, log_id: str, *, bodies: bool = False) -> LogRecord | None:
        pool = await self._db()
        row = await pool.fetchrow(f"SELECT {sql.SELECT} FROM aigw_logs WHERE id = $1::text", log_id)
        if row is None:
            return None
        rec = _from_row(row)
        if bodies:
            stored = await pool.fetchrow(
                "SELECT request_body, response_body FROM aigw_log_bodies WHERE id = $1::text", log_id
            )
            if stored is not None:
                rec.request_body, rec.response_body = stored["request_body"], stored["response_body"]
        return rec

    async def query(self, q: LogQuery) -> tuple[list[LogRecord], int]:
        p = sql.Params()
        filters = sql.where(q, p)
        pool = await self._db()
        async with pool.acquire() as conn:
            if filters:
                total = await conn.fetchval(f"SELECT count(*) FROM aigw_logs{filters}", *p.values)
            else:  # the kept count: no scan of the whole table for page 1
                total = await conn.fetchval("SELECT n FROM aigw_log_count")
            rows = await conn.fetch(
                f"SELECT {sql.SELECT} FROM aigw_logs{filters}{sql.order(q)}"
                f" LIMIT {int(q.per_page)} OFFSET {int((q.page - 1) * q.per_page)}",
                *p.values,
            )
        return [_from_row(r) for r in rows], int(total)

    async def analytics(self, q: LogQuery) -> dict[str, Any]:
        p = sql.Params()
        statement, width = sql.analytics(q, p)
        pool = await self._db()
        rows = await pool.fetch(statement, *p.values)
        totals = summary(0, 0, 0, 0, 0, 0.0, None, None)
        groups = []
        for row in rows:
            requests, ok, cached, tokens_in, tokens_out, cost, pct = tuple(row)[width:]
            p50, p95 = pct if pct is not None else (None, None)
            stats = summary(requests, requests - ok, cached, tokens_in, tokens_out, cost, p50, p95)
            if width and not row[width - 1]:  # GROUPING() == 0: a group, not the totals row
                key = tuple(row[: width - 1])
                if "time" in q.group_by:
                    t = q.group_by.index("time")
                    key = (*key[:t], float(key[t] * q.interval), *key[t + 1 :])
                groups.append((key, stats))
            else:
                totals = stats
        return analytics_result(q, totals, groups)

    async def count(self) -> int:
        pool = await self._db()
        return int(await pool.fetchval("SELECT n FROM aigw_log_count"))

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        self._loop = self._lock = None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), self.timeout)
        except (RuntimeError, TimeoutError):  # its loop is gone, or a connection hangs
            pool.terminate()


async def _migrate(conn: Any) -> None:
    """Bring the schema to `sql.SCHEMA_VERSION`, one transaction, one instance at a time."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", sql.MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS aigw_schema (component text PRIMARY KEY, version integer NOT NULL)"
        )
        current = await conn.fetchval("SELECT version FROM aigw_schema WHERE component = 'logs'") or 0
        if current > sql.SCHEMA_VERSION:
            raise ConfigError(
                f"logs.store: the database's log schema is version {current}, newer than this aigw-asgi "
                f"knows ({sql.SCHEMA_VERSION}); upgrade aigw-asgi"
            )
        for version, statements in sql.MIGRATIONS:
            if version > current:
                for statement in statements:
                    await conn.execute(statement)
        if current < sql.SCHEMA_VERSION:
            await conn.execute(
                "INSERT INTO aigw_schema (component, version) VALUES ('logs', $1)"
                " ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
                sql.SCHEMA_VERSION,
            )
