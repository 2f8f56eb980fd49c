"""Keys in Redis, shared by every instance: one hash of rows, one of live names, one version counter.

Keys (``T`` = ``{aigw:keys:GATEWAY}``, one hash tag so every script touches one Cluster slot):
``T:rows`` (id -> JSON row), ``T:names`` (live name -> id), ``T:version``. Writes are Lua scripts,
so the name check, the write and the version bump are one atomic step.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ..errors import ConfigError
from ..redisclient import preload_redis
from .model import GatewayKey, NameTaken

_INSERT = """
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('INCR', KEYS[3])
return 1
"""

_UPDATE = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return 0 end
local row = cjson.decode(current)
if row['revoked_at'] ~= nil and row['revoked_at'] ~= cjson.null then return 0 end
local old = row['name']
if ARGV[4] == '1' then
  if redis.call('HGET', KEYS[2], old) == ARGV[1] then redis.call('HDEL', KEYS[2], old) end
else
  local owner = redis.call('HGET', KEYS[2], ARGV[2])
  if owner and owner ~= ARGV[1] then return -1 end
  if old ~= ARGV[2] and redis.call('HGET', KEYS[2], old) == ARGV[1] then redis.call('HDEL', KEYS[2], old) end
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[3])
return 1
"""


class RedisKeyStore:
    kind = "redis"

    def __init__(self, url: str, gateway_id: str = "default", *, timeout_s: float = 5.0) -> None:
        self.url = url
        self.gateway_id = gateway_id
        self.timeout_s = timeout_s
        tag = "{aigw:keys:" + gateway_id.replace("{", "%7B").replace("}", "%7D") + "}"
        self._rows, self._names, self._version = f"{tag}:rows", f"{tag}:names", f"{tag}:version"
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        preload_redis()  # the client is built inside the loop at first use; its imports are not

    def _redis(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            try:
                import redis.asyncio as redis
            except ImportError:  # pragma: no cover - depends on the install
                raise ConfigError(
                    "keys.store: redis:// needs the redis extra (pip install 'aigw-asgi[redis]')"
                ) from None
            self._client = redis.from_url(
                self.url, socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s
            )
            self._loop = loop
        return self._client

    async def version(self) -> int:
        raw = await self._redis().get(self._version)
        return int(raw or 0)

    async def load(self) -> tuple[int, list[GatewayKey]]:
        async with self._redis().pipeline(transaction=True) as pipe:
            pipe.get(self._version)
            pipe.hgetall(self._rows)
            version, rows = await pipe.execute()
        return int(version or 0), [GatewayKey.from_row(json.loads(raw)) for raw in rows.values()]

    async def get(self, key_id: str) -> GatewayKey | None:
        raw = await self._redis().hget(self._rows, key_id)
        return GatewayKey.from_row(json.loads(raw)) if raw else None

    async def insert(self, key: GatewayKey) -> None:
        row = json.dumps(key.to_row(), separators=(",", ":"))
        done = await self._redis().eval(_INSERT, 3, self._rows, self._names, self._version, key.id, key.name, row)
        if int(done) != 1:
            raise NameTaken(f"name: a key named {key.name!r} already exists")

    async def update(self, key: GatewayKey) -> bool:
        row = json.dumps(key.to_row(), separators=(",", ":"))
        revoking = "1" if key.revoked_at is not None else "0"
        keys = (self._rows, self._names, self._version)
        done = int(await self._redis().eval(_UPDATE, 3, *keys, key.id, key.name, row, revoking))
        if done == -1:
            raise NameTaken(f"name: a key named {key.name!r} already exists")
        return done == 1

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except RuntimeError:  # its loop is gone; nothing left to close
                pass
