"""The Redis log store (``redis://HOST/DB``): shared by every gateway instance, capped (redis extra)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from ...errors import ConfigError
from ..query import LogQuery, aggregate, analytics_row, matches, order, page
from ..records import LogRecord


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
