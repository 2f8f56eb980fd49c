"""The Redis log store (``redis://HOST/DB``): shared by every gateway instance (redis extra).

Rows are JSON strings; sorted sets index them, so a page costs what the page holds, not what
the history holds (issue 16 measured the previous design, which read every row of the time
range into Python: 2.7 s and +185 MB for page 1 of 102k rows)::

    P:row:{id}           the row (no bodies)             P = aigw:logs:{gateway}
    P:body:{id}          [request_body, response_body]
    P:index              zset id -> created_at           every row
    P:ix:{field}:{value} zset id -> created_at           provider, model, token_name, status_code,
                                                         feedback, success=false, cached=true,
                                                         metadata (P:ix:meta:["key","value"])
    P:by:{attribute}     zset id -> value                cost, duration_ms, total_tokens: order and ranges
    P:values:{field}     set of values                   provider, model: ordering by them
    P:schema             "2" once every row is indexed

A query with no filter, or one indexed filter, in the default order is a ``ZCOUNT`` plus a
``ZREVRANGEBYSCORE … LIMIT``; several filters intersect server-side (``ZINTERSTORE`` into a
temporary key), so Python never holds more than a page of rows. Filters without an index
(path, event_id, request_id, cache_status, tokens_in/out ranges) and orders without one
(tokens_in, tokens_out, status_code) read the candidates in chunks, holding at most a page
(plus the rows before it, for an order). Analytics read the rows matching the filters in
chunks too: their cost follows the time range asked for, not the whole history; PostgreSQL
computes them in SQL (see docs/telemetry.md for the measured numbers and which to choose).
Needs Redis 6.2+ (ZRANGESTORE, ZDIFFSTORE); not Redis Cluster (the keys of one query must
live together).
"""

from __future__ import annotations

import asyncio
import heapq
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import fields, replace
from operator import attrgetter
from typing import Any

import orjson

from ...errors import ConfigError
from ...redisclient import preload_redis
from ..analytics import Aggregator, aggregate, analytics_row
from ..query import LogQuery, matches
from ..records import LogRecord
from .redis_index import BY, LUA, VALUES, Plan, index_members

SCHEMA = b"2"
_CHUNK = 500
_ROW_FIELDS = tuple(f.name for f in fields(LogRecord) if f.name not in ("request_body", "response_body"))
_ROW = attrgetter(*_ROW_FIELDS)
_EXPIRE_EVERY_S = 60.0
_TMP_TTL_S = 120  # a temporary key outlives no query that crashed half-way


class RedisLogStore:
    """Rows and their indexes, written in one MULTI/EXEC per batch."""

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        max_logs: int = 1_000_000,
        strategy: str = "DELETE_OLDEST",
        max_age: int = 0,
        gateway_id: str = "default",
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.max_logs = max_logs
        self.strategy = strategy
        self.max_age = max_age
        self.timeout = timeout
        self.refused = 0
        self.prefix = f"aigw:logs:{gateway_id}"
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = False
        self._expired_at = 0.0
        self._lua: Any = None
        self._lua_client: Any = None
        preload_redis()  # the client is built inside the loop at first use; its imports are not

    def _key(self, suffix: str) -> str:
        return f"{self.prefix}:{suffix}"

    async def _redis(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            try:
                import redis.asyncio as redis
            except ImportError:  # pragma: no cover - depends on the install
                raise ConfigError(
                    "logs.store: redis:// needs the redis extra (pip install 'aigw-asgi[redis]')"
                ) from None
            self._client = redis.from_url(self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout)
            self._loop = loop
        if not self._ready:
            await self._migrate(self._client)
            self._ready = True
        return self._client

    async def _migrate(self, r: Any) -> None:
        """Index rows an older version wrote (it kept only ``P:index``); once, one instance."""
        if await r.get(self._key("schema")) == SCHEMA:
            return
        lock = self._key("migrating")
        if not await r.set(lock, "1", nx=True, ex=600):
            return  # another instance is at it; queries meanwhile see the rows indexed so far
        try:
            position = 0
            while ids := await r.zrange(self._key("index"), position, position + _CHUNK - 1):
                position += len(ids)
                raws = await r.mget([self._key(f"row:{x.decode()}") for x in ids])
                rows = [LogRecord.from_json(raw) for raw in raws if raw is not None]
                if rows:  # bodies stay where they are; "" = keep the store's size as it is
                    await self._script(r)(args=["write", self.prefix, 0, "", *self._write_args(rows, bodies=False)])
            await r.set(self._key("schema"), SCHEMA)
        finally:
            await r.delete(lock)

    def _script(self, r: Any) -> Any:
        if self._lua is None or self._lua_client is not r:
            self._lua, self._lua_client = r.register_script(LUA), r
        return self._lua

    def _write_args(self, records: Sequence[LogRecord], *, bodies: bool = True) -> list[str | bytes]:
        """Five script arguments per row: id, created_at, row JSON (with the list of its index
        keys, ``_ix``, so a delete finds them), bodies JSON or "", and what to add where."""
        args: list[str | bytes] = []
        for rec in records:
            ix, by = index_members(rec)
            zadd = [[suffix, repr(score)] for suffix, score in (*ix, *by)]
            sadd = [[f"values:{name}", value] for name in VALUES if (value := getattr(rec, name)) is not None]
            row = dict(zip(_ROW_FIELDS, _ROW(rec), strict=True))
            row["_ix"] = [suffix for suffix, _ in zadd]
            stored = (rec.request_body, rec.response_body)
            body = orjson.dumps(stored) if bodies and stored != (None, None) else b""
            args += [rec.id, repr(rec.created_at), orjson.dumps(row), body, orjson.dumps({"z": zadd, "s": sadd})]
        return args

    # -- writes ---------------------------------------------------------------------------------

    async def write(self, records: Sequence[LogRecord]) -> int:
        """One script call per batch: rows, indexes, and max_logs (trim or refuse) atomically,
        the index work done inside Redis rather than as a dozen round-trip commands per row."""
        if not records:
            return 0
        r = await self._redis()
        args = ["write", self.prefix, self.max_logs, self.strategy, *self._write_args(records)]
        written = int(await self._script(r)(args=args))
        self.refused += len(records) - written
        if self.max_age and time.monotonic() - self._expired_at > _EXPIRE_EVERY_S:
            self._expired_at = time.monotonic()
            index = self._key("index")
            while doomed := await r.zrangebyscore(index, "-inf", f"({time.time() - self.max_age}", 0, _CHUNK):
                await self._drop([x.decode() for x in doomed])
        return written

    async def _drop(self, ids: list[str]) -> int:
        """Delete rows with their bodies and every index entry (listed in the row's ``_ix``)."""
        r = await self._redis()
        dropped = 0
        for i in range(0, len(ids), _CHUNK):
            dropped += int(await self._script(r)(args=["drop", self.prefix, *ids[i : i + _CHUNK]]))
        return dropped

    async def patch(self, log_id: str, changes: dict[str, Any]) -> LogRecord | None:
        r = await self._redis()
        rec = await self.get(log_id)
        if rec is None:
            return None
        before, _ = index_members(rec)
        for key, value in changes.items():
            setattr(rec, key, value)
        after, by = index_members(rec)  # feedback and metadata are indexed; by: never patched
        pipe = r.pipeline(transaction=True)
        for suffix, _ in set(before) - set(after):
            pipe.zrem(self._key(suffix), log_id)
        for suffix, score in set(after) - set(before):
            pipe.zadd(self._key(suffix), {log_id: score})
        row = dict(zip(_ROW_FIELDS, _ROW(rec), strict=True))
        row["_ix"] = [suffix for suffix, _ in (*after, *by)]
        pipe.set(self._key(f"row:{log_id}"), orjson.dumps(row), xx=True)
        await pipe.execute()
        return rec

    async def delete(self, q: LogQuery) -> int:
        if "id" in q.text:
            rec = await self.get(q.text["id"])
            return await self._drop([rec.id]) if rec is not None and matches(rec, q) else 0
        plan = Plan(q)
        if q.limit is None:  # everything that matches: the order does not matter
            q = replace(q, order_by="created_at")
        deleted = 0
        doomed: list[str] = []
        async for rec in self._ordered(plan, q, 0, q.limit or 1 << 62):
            doomed.append(rec.id)
            if len(doomed) >= _CHUNK:
                deleted += await self._drop(doomed)
                doomed = []
        if doomed:
            deleted += await self._drop(doomed)
        return deleted

    # -- reads ----------------------------------------------------------------------------------

    async def get(self, log_id: str, *, bodies: bool = False) -> LogRecord | None:
        r = await self._redis()
        raw = await r.get(self._key(f"row:{log_id}"))
        if raw is None:
            return None
        rec = LogRecord.from_json(raw)
        if bodies:
            stored = await r.get(self._key(f"body:{log_id}"))
            if stored is not None:
                rec.request_body, rec.response_body = json.loads(stored)
        return rec

    async def query(self, q: LogQuery) -> tuple[list[LogRecord], int]:
        plan = Plan(q)
        first = (q.page - 1) * q.per_page
        r = await self._redis()
        if "id" in q.text:  # one row at most: no index needed
            rec = await self.get(q.text["id"])
            found = [rec] if rec is not None and matches(rec, q) else []
            return found[first : first + q.per_page], len(found)
        if plan.rest is None and q.order_by == "created_at" and plan.simple:
            key = self._key(plan.keys[0] if plan.keys else "index")
            low, high = _score(plan.start, "-inf"), _score(plan.end, "+inf")
            total = int(await r.zcount(key, low, high))
            if q.descending:
                ids = await r.zrevrangebyscore(key, high, low, first, q.per_page)
            else:
                ids = await r.zrangebyscore(key, low, high, first, q.per_page)
            return await self._rows([x.decode() for x in ids]), total
        page = [rec async for rec in self._ordered(plan, q, first, q.per_page)]
        total = await self._total(plan, q)
        return page, total

    async def _total(self, plan: Plan, q: LogQuery) -> int:
        """The number of matches: a ZCARD of the candidates, or a count while reading them when
        Python has filters of its own."""
        async with self._candidates(plan) as key:
            if plan.rest is None:
                return int(await (await self._redis()).zcard(key))
            return sum([1 async for _ in self._scan(key, plan.rest)])

    async def _rows(self, ids: list[str]) -> list[LogRecord]:
        if not ids:
            return []
        raws = await (await self._redis()).mget([self._key(f"row:{x}") for x in ids])
        return [LogRecord.from_json(raw) for raw in raws if raw is not None]

    async def _ordered(self, plan: Plan, q: LogQuery, skip: int, take: int) -> AsyncIterator[LogRecord]:
        """Matching rows in the query's order, after skipping ``skip``, at most ``take``."""
        async with self._candidates(plan) as key:
            if q.order_by in ("created_at", *BY, *VALUES):
                seen = 0
                async with aclosing(self._runs(key, q)) as runs:
                    async for run_key, reverse in runs:
                        async with aclosing(self._scan(run_key, plan.rest, reverse=reverse)) as rows:
                            async for rec in rows:
                                seen += 1
                                if seen > skip:
                                    yield rec
                                    if seen >= skip + take:
                                        return
                return
            # No index for this order (tokens_in, tokens_out, status_code): one pass over the
            # candidates keeping the first skip+take in a bounded heap.
            attr, descending = q.order_by, q.descending
            best: list[tuple[Any, ...]] = []
            batch: list[tuple[Any, ...]] = []
            async for rec in self._scan(key, plan.rest):
                value = getattr(rec, attr)
                if value is None:
                    rank: tuple[Any, ...] = (True, 0, _Desc(rec.id) if descending else rec.id)
                else:
                    rank = (False, -value if descending else value, _Desc(rec.id) if descending else rec.id)
                batch.append(rank)
                if len(batch) >= _CHUNK:
                    best, batch = heapq.nsmallest(skip + take, best + batch), []
            ids = [str(rank[2]) for rank in heapq.nsmallest(skip + take, best + batch)][skip:]
        for rec in await self._rows(ids):
            yield rec

    async def _runs(self, key: str, q: LogQuery) -> AsyncGenerator[tuple[str, bool]]:
        """Sorted sets whose concatenation is the query's order (rows without a value last)."""
        r = await self._redis()
        if q.order_by == "created_at":
            yield key, q.descending
            return
        first, second = self._tmp(), self._tmp()
        try:
            if q.order_by in BY:
                by = self._key(f"by:{q.order_by}")
                await r.zinterstore(first, {key: 0, by: 1})  # scored by the value, ties by id
                await r.expire(first, _TMP_TTL_S)
                yield first, q.descending
                await r.zdiffstore(second, [key, by])
            else:  # provider / model: value by value, each value's rows ordered by id
                values = sorted(v.decode() for v in await r.smembers(self._key(f"values:{q.order_by}")))
                for value in reversed(values) if q.descending else values:
                    await r.zinterstore(first, {key: 0, self._key(f"ix:{q.order_by}:{value}"): 0})
                    await r.expire(first, _TMP_TTL_S)
                    yield first, q.descending
                await r.zdiffstore(second, [key, *(self._key(f"ix:{q.order_by}:{v}") for v in values)])
            # The rows without a value, last in either direction, ordered by id (score 0).
            await r.zinterstore(second, {second: 0})
            await r.expire(second, _TMP_TTL_S)
            yield second, q.descending
        finally:
            await r.delete(first, second)

    async def _scan(self, key: str, rest: LogQuery | None, *, reverse: bool = False) -> AsyncGenerator[LogRecord]:
        """Every row of a sorted set in its order, a chunk at a time, passing Python's own filters."""
        r = await self._redis()
        read = r.zrevrange if reverse else r.zrange
        position = 0
        while ids := await read(key, position, position + _CHUNK - 1):
            position += len(ids)
            for rec in await self._rows([x.decode() for x in ids]):
                if rest is None or matches(rec, rest):
                    yield rec

    def _tmp(self) -> str:
        return self._key(f"tmp:{uuid.uuid4().hex}")

    def _candidates(self, plan: Plan) -> _Candidates:
        return _Candidates(self, plan)

    async def analytics(self, q: LogQuery) -> dict[str, Any]:
        """Rows matching the filters, read a chunk at a time into running sums (memory: the
        groups and one float per duration, never the rows)."""
        if "id" in q.text:
            rec = await self.get(q.text["id"])
            return aggregate([analytics_row(rec)] if rec is not None and matches(rec, q) else [], q)
        plan = Plan(q)
        totals = Aggregator(q)
        async with self._candidates(plan) as key:
            async for rec in self._scan(key, plan.rest):
                totals.add(analytics_row(rec))
        return totals.result()

    async def count(self) -> int:
        return int(await (await self._redis()).zcard(self._key("index")))

    async def aclose(self) -> None:
        client, self._client = self._client, None
        self._ready = False
        if client is not None:
            try:
                await client.aclose()
            except RuntimeError:  # its loop is gone; nothing left to close
                pass


class _Desc(str):
    """A string that sorts in reverse (ties broken by id, newest first, in a descending order)."""

    __slots__ = ()

    def __lt__(self, other: str) -> bool:
        return str.__gt__(self, other)

    def __gt__(self, other: str) -> bool:
        return str.__lt__(self, other)


def _score(value: float | None, default: str) -> float | str:
    return default if value is None else value


class _Candidates:
    """``async with``: the key of a sorted set (scored by created_at) holding every row that the
    plan's indexes admit; a temporary key, deleted on exit, unless one index answers alone."""

    def __init__(self, store: RedisLogStore, plan: Plan) -> None:
        self.store = store
        self.plan = plan
        self.tmp: str | None = None

    async def __aenter__(self) -> str:
        store, plan = self.store, self.plan
        r = await store._redis()
        base = [store._key(k) for k in plan.keys] or [store._key("index")]
        timed = plan.start is not None or plan.end is not None
        if len(base) == 1 and not plan.minus and not plan.ranges and not timed:
            return base[0]
        tmp = self.tmp = store._tmp()
        low, high = _score(plan.start, "-inf"), _score(plan.end, "+inf")
        if len(base) == 1:
            await r.zrangestore(tmp, base[0], low, high, byscore=True)
        else:
            await r.zinterstore(tmp, {k: (1 if i == 0 else 0) for i, k in enumerate(base)})
            if timed:
                if plan.start is not None:
                    await r.zremrangebyscore(tmp, "-inf", f"({plan.start}")
                if plan.end is not None:
                    await r.zremrangebyscore(tmp, f"({plan.end}", "+inf")
        await r.expire(tmp, _TMP_TTL_S)
        for by_key, lo, hi in plan.ranges:
            ranged = store._tmp()
            await r.zrangestore(ranged, store._key(by_key), lo, hi, byscore=True)
            await r.zinterstore(tmp, {tmp: 1, ranged: 0})
            await r.delete(ranged)
        if plan.minus:
            await r.zdiffstore(tmp, [tmp, *(store._key(k) for k in plan.minus)])
        return tmp

    async def __aexit__(self, *exc: object) -> None:
        if self.tmp is not None:
            await (await self.store._redis()).delete(self.tmp)
