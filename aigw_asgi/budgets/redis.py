"""Budget counters in Redis (or Redis Cluster): each ledger step is one Lua script, so it is atomic.

Layout (``T`` = ``{aigw:budget:GATEWAY}``, one hash tag: every key of a gateway's budgets lives in
one Cluster slot, so a script may touch several counters without a CROSSSLOT error):

    T:c:BUDGET/WINDOW      hash  "s/SCOPE" -> spent, "r/SCOPE" -> reserved (nano-dollars);
                                 EXPIREAT 40 days after the window ends (never for "total")
    T:leases               zset  lease id -> deadline (epoch seconds)
    T:lease:ID             hash  amount, neg (-amount), counters ("KEY<TAB>SCOPE" lines), and
                                 reclaimed=1 for a week once reclaimed

A reserve first reclaims up to 64 leases past their deadline (charged in full), then checks and
increments every counter, all in the same script. Numbers cross into Lua as decimal strings and
are only compared there; increments use the strings as given (no float formatting). ARGV of a reserve: amount, now,
deadline, lease key prefix, lease id, -amount, then (scope, limit, expire-at) per counter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError
from ..redisclient import preload_redis, redis_client as shared_client
from .ledger import Counter, CounterState
from .rules import escape

_RESERVE = """
local now = ARGV[2]
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 64)
for _, id in ipairs(expired) do
  local lk = ARGV[4] .. id
  local held = redis.call('HMGET', lk, 'amount', 'neg', 'counters')
  if held[1] then
    for line in string.gmatch(held[3], '[^\\n]+') do
      local tab = string.find(line, '\\t', 1, true)
      local key, scope = string.sub(line, 1, tab - 1), string.sub(line, tab + 1)
      redis.call('HINCRBY', key, 'r/' .. scope, held[2])
      redis.call('HINCRBY', key, 's/' .. scope, held[1])
    end
    redis.call('HSET', lk, 'reclaimed', '1')
    redis.call('EXPIRE', lk, 604800)
  end
  redis.call('ZREM', KEYS[1], id)
end
local amount = tonumber(ARGV[1])
local n = #KEYS - 2
for i = 1, n do
  local vals = redis.call('HMGET', KEYS[i + 2], 's/' .. ARGV[3 * i + 4], 'r/' .. ARGV[3 * i + 4])
  local used = (tonumber(vals[1]) or 0) + (tonumber(vals[2]) or 0)
  local limit = tonumber(ARGV[3 * i + 5])
  if used >= limit or used + amount > limit then return i - 1 end
end
local lines = {}
for i = 1, n do
  local key, scope, expireat = KEYS[i + 2], ARGV[3 * i + 4], ARGV[3 * i + 6]
  redis.call('HINCRBY', key, 'r/' .. scope, ARGV[1])
  if expireat ~= '' then redis.call('EXPIREAT', key, expireat) end
  lines[#lines + 1] = key .. '\\t' .. scope
end
redis.call('HSET', KEYS[2], 'amount', ARGV[1], 'neg', ARGV[6], 'counters', table.concat(lines, '\\n'))
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[5])
return -1
"""

_SETTLE = """
local held = redis.call('ZREM', KEYS[1], ARGV[4])
local reclaimed = redis.call('DEL', KEYS[2])
if held == 0 and reclaimed == 0 then return 0 end
for i = 1, #KEYS - 2 do
  local key, scope = KEYS[i + 2], ARGV[4 + i]
  if held == 1 then
    redis.call('HINCRBY', key, 'r/' .. scope, ARGV[1])
    redis.call('HINCRBY', key, 's/' .. scope, ARGV[2])
  else
    redis.call('HINCRBY', key, 's/' .. scope, ARGV[3])
  end
end
return held
"""


MAX_CONNECTIONS = 128


def redis_client(url: str, timeout_s: float) -> Any:
    """A redis-py asyncio client for ``redis://``, ``rediss://`` or ``redis+cluster://h1:p1,h2:p2``."""
    try:
        import redis.asyncio  # noqa: F401 - only to name the extra when it is missing
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError("spend.storage: redis:// needs the redis extra (pip install 'aigw-asgi[redis]')") from None
    # One immediate retry replaces a connection a restart killed.
    return shared_client(url, timeout_s=timeout_s, retries=1, max_connections=MAX_CONNECTIONS)


class RedisLedger:
    kind = "redis"

    def __init__(self, url: str, gateway_id: str = "default", *, timeout_s: float = 1.0) -> None:
        preload_redis()  # the client is built inside the loop at first use; its imports are not
        self.url = url
        self.timeout_s = timeout_s
        self.tag = "{aigw:budget:" + escape(gateway_id) + "}"
        self._leases = f"{self.tag}:leases"
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scripts: tuple[Any, Any] | None = None

    def _redis(self) -> tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = redis_client(self.url, self.timeout_s)
            self._loop = loop
            self._scripts = (self._client.register_script(_RESERVE), self._client.register_script(_SETTLE))
        assert self._scripts is not None
        return self._scripts

    def _hash(self, budget: str, window: str) -> str:
        return f"{self.tag}:c:{escape(budget)}/{escape(window)}"

    async def reserve(self, lease: str, counters: Sequence[Counter], amount: int, *, now: float, ttl: float) -> int:
        reserve, _ = self._redis()
        keys = [self._leases, f"{self.tag}:lease:{lease}", *(self._hash(c.budget, c.window) for c in counters)]
        args: list[Any] = [str(amount), repr(now), repr(now + ttl), f"{self.tag}:lease:", lease, str(-amount)]
        for c in counters:
            args += [c.scope, str(c.limit), "" if c.expires_at is None else str(int(c.expires_at))]
        return int(await reserve(keys=keys, args=args))

    async def settle(self, lease: str, counters: Sequence[Counter], amount: int, actual: int) -> None:
        _, settle = self._redis()
        keys = [self._leases, f"{self.tag}:lease:{lease}", *(self._hash(c.budget, c.window) for c in counters)]
        args = [str(-amount), str(actual), str(actual - amount), lease, *(c.scope for c in counters)]
        await settle(keys=keys, args=args)

    async def read(self, windows: Sequence[tuple[str, str]]) -> list[CounterState]:
        self._redis()
        out: list[CounterState] = []
        for budget, win in windows:
            fields: dict[bytes, bytes] = await self._client.hgetall(self._hash(budget, win))
            scopes: dict[str, list[int]] = {}
            for name, value in fields.items():
                kind, _, scope = name.decode().partition("/")
                scopes.setdefault(scope, [0, 0])[0 if kind == "s" else 1] = int(value)
            out += [CounterState(budget, scope, win, s, r) for scope, (s, r) in scopes.items()]
        return out

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except RuntimeError:  # its loop is gone; nothing left to close
                pass
