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
from dataclasses import replace
from typing import Any

from ...errors import ConfigError
from ..query import Aggregator, LogQuery, aggregate, analytics_row, matches, meta_text
from ..records import LogRecord

SCHEMA = b"2"
_CHUNK = 500
_EQUALITY = ("provider", "model", "token_name")  # text filters with an index
_BY = ("cost", "duration_ms", "total_tokens")  # numeric attributes with an index
_VALUES = ("provider", "model")  # text attributes an order can walk value by value
_EXPIRE_EVERY_S = 60.0
_TMP_TTL_S = 120  # a temporary key outlives no query that crashed half-way


def index_members(rec: LogRecord) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The (key suffix, score) pairs a row adds: equality indexes scored by created_at, and the
    ``by:`` indexes scored by the attribute's value."""
    at = rec.created_at
    ix = [(f"ix:{name}:{value}", at) for name in _EQUALITY if (value := getattr(rec, name)) is not None]
    if rec.status_code is not None:
        ix.append((f"ix:status_code:{rec.status_code}", at))
    if rec.feedback is not None:
        ix.append((f"ix:feedback:{rec.feedback}", at))
    if not rec.success:
        ix.append(("ix:success:false", at))
    if rec.cached:
        ix.append(("ix:cached:true", at))
    for key, value in (rec.metadata or {}).items():
        ix.append((_meta_key(key, meta_text(value)), at))
    by = [(f"by:{name}", float(value)) for name in _BY if (value := getattr(rec, name)) is not None]
    return ix, by


def _meta_key(key: str, value: str) -> str:
    return "ix:meta:" + json.dumps([key, value], separators=(",", ":"))


class _Plan:
    """How a `LogQuery` runs on the indexes: the sorted sets to intersect, the sets to subtract,
    numeric ranges on ``by:`` sets, and what is left to filter in Python."""

    def __init__(self, q: LogQuery) -> None:
        self.keys: list[str] = []  # intersect (all scored by created_at)
        self.minus: list[str] = []  # subtract
        self.ranges: list[tuple[str, float, float]] = []  # (by: key, low, high)
        rest = LogQuery(start=q.start, end=q.end)
        for name, value in q.text.items():
            if name in _EQUALITY:
                self.keys.append(f"ix:{name}:{value}")
            else:
                rest.text[name] = value
        if q.status_code is not None:
            self.keys.append(f"ix:status_code:{q.status_code}")
        if q.feedback is not None:
            self.keys.append(f"ix:feedback:{q.feedback}")
        if q.success is not None:
            (self.minus if q.success else self.keys).append("ix:success:false")
        if q.cached is not None:
            (self.keys if q.cached else self.minus).append("ix:cached:true")
        for key, value in q.metadata.items():
            self.keys.append(_meta_key(key, value))
        bounds: dict[str, list[float]] = {}
        for attr, op, bound in q.ranges:
            if attr in _BY:
                low_high = bounds.setdefault(attr, [float("-inf"), float("inf")])
                if op == ">=":
                    low_high[0] = max(low_high[0], bound)
                else:
                    low_high[1] = min(low_high[1], bound)
            else:
                rest.ranges.append((attr, op, bound))
        self.ranges = [(f"by:{attr}", lo, hi) for attr, (lo, hi) in bounds.items()]
        self.rest = rest if rest.text or rest.ranges else None
        self.start, self.end = q.start, q.end

    @property
    def simple(self) -> bool:
        """One sorted set answers it directly (no temporary key)."""
        return len(self.keys) <= 1 and not self.minus and not self.ranges


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
            ids = await r.zrange(self._key("index"), 0, -1)
            for i in range(0, len(ids), _CHUNK):
                chunk = [x.decode() for x in ids[i : i + _CHUNK]]
                raws = await r.mget([self._key(f"row:{x}") for x in chunk])
                pipe = r.pipeline(transaction=False)
                for raw in raws:
                    if raw is not None:
                        self._add_indexes(pipe, LogRecord.from_json(raw))
                await pipe.execute()
            await r.set(self._key("schema"), SCHEMA)
        finally:
            await r.delete(lock)

    def _add_indexes(self, pipe: Any, rec: LogRecord) -> None:
        ix, by = index_members(rec)
        for suffix, score in (*ix, *by):
            pipe.zadd(self._key(suffix), {rec.id: score})
        for name in _VALUES:
            value = getattr(rec, name)
            if value is not None:
                pipe.sadd(self._key(f"values:{name}"), value)

    # -- writes ---------------------------------------------------------------------------------

    async def write(self, records: Sequence[LogRecord]) -> int:
        r = await self._redis()
        index = self._key("index")
        if self.strategy == "STOP_INSERTING":
            room = max(self.max_logs - int(await r.zcard(index)), 0)
            self.refused += max(len(records) - room, 0)
            records = records[:room]
        if not records:
            return 0
        pipe = r.pipeline(transaction=True)
        for rec in records:
            bodies = (rec.request_body, rec.response_body)
            pipe.set(self._key(f"row:{rec.id}"), replace(rec, request_body=None, response_body=None).to_json())
            if bodies != (None, None):
                pipe.set(self._key(f"body:{rec.id}"), json.dumps(bodies))
            self._add_indexes(pipe, rec)
        pipe.zadd(index, {rec.id: rec.created_at for rec in records})
        pipe.zcard(index)
        count = int((await pipe.execute())[-1])
        if self.strategy == "DELETE_OLDEST" and count > self.max_logs:
            oldest = await r.zpopmin(index, count - self.max_logs)
            await self._drop([member.decode() for member, _ in oldest])
        if self.max_age and time.monotonic() - self._expired_at > _EXPIRE_EVERY_S:
            self._expired_at = time.monotonic()
            while doomed := await r.zrangebyscore(index, "-inf", f"({time.time() - self.max_age}", 0, _CHUNK):
                await self._drop([x.decode() for x in doomed])
        return len(records)

    async def _drop(self, ids: list[str]) -> int:
        """Delete rows with their bodies and every index entry (read from the rows themselves)."""
        r = await self._redis()
        dropped = 0
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            raws = await r.mget([self._key(f"row:{x}") for x in chunk])
            pipe = r.pipeline(transaction=True)
            for log_id, raw in zip(chunk, raws, strict=True):
                if raw is not None:
                    dropped += 1
                    ix, by = index_members(LogRecord.from_json(raw))
                    for suffix, _ in (*ix, *by):
                        pipe.zrem(self._key(suffix), log_id)
                pipe.delete(self._key(f"row:{log_id}"), self._key(f"body:{log_id}"))
            pipe.zrem(self._key("index"), *chunk)
            await pipe.execute()
        return dropped

    async def patch(self, log_id: str, changes: dict[str, Any]) -> LogRecord | None:
        r = await self._redis()
        rec = await self.get(log_id)
        if rec is None:
            return None
        before, _ = index_members(rec)
        for key, value in changes.items():
            setattr(rec, key, value)
        after, _ = index_members(rec)
        pipe = r.pipeline(transaction=True)
        for suffix, _ in set(before) - set(after):
            pipe.zrem(self._key(suffix), log_id)
        for suffix, score in set(after) - set(before):
            pipe.zadd(self._key(suffix), {log_id: score})
        pipe.set(self._key(f"row:{log_id}"), rec.to_json(), xx=True)
        await pipe.execute()
        return rec

    async def delete(self, q: LogQuery) -> int:
        if "id" in q.text:
            rec = await self.get(q.text["id"])
            return await self._drop([rec.id]) if rec is not None and matches(rec, q) else 0
        plan = _Plan(q)
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
        plan = _Plan(q)
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

    async def _total(self, plan: _Plan, q: LogQuery) -> int:
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

    async def _ordered(self, plan: _Plan, q: LogQuery, skip: int, take: int) -> AsyncIterator[LogRecord]:
        """Matching rows in the query's order, after skipping ``skip``, at most ``take``."""
        async with self._candidates(plan) as key:
            if q.order_by in ("created_at", *_BY, *_VALUES):
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
            if q.order_by in _BY:
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

    def _candidates(self, plan: _Plan) -> _Candidates:
        return _Candidates(self, plan)

    async def analytics(self, q: LogQuery) -> dict[str, Any]:
        """Rows matching the filters, read a chunk at a time into running sums (memory: the
        groups and one float per duration, never the rows)."""
        if "id" in q.text:
            rec = await self.get(q.text["id"])
            return aggregate([analytics_row(rec)] if rec is not None and matches(rec, q) else [], q)
        plan = _Plan(q)
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

    def __init__(self, store: RedisLogStore, plan: _Plan) -> None:
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
