"""The Redis log store's layout: which sorted sets index a row, how a query runs on them, and
the Lua script that writes a batch (rows, index entries, ``max_logs``) in one call.

Pure (no client), so the layout can be read and tested on its own; `redis.RedisLogStore` runs it.
"""

from __future__ import annotations

import json

from ..query import LogQuery, meta_text
from ..records import LogRecord

EQUALITY = ("provider", "model", "token_name")  # text filters with an index
BY = ("cost", "duration_ms", "total_tokens")  # numeric attributes with an index
VALUES = ("provider", "model")  # text attributes an order can walk value by value


# One script, two modes. "write": ARGV = mode, prefix, max_logs, strategy, then 5 per row (see
# RedisLogStore._write_args); returns the rows written. "drop": ARGV = mode, prefix, ids...;
# returns the rows deleted. Scores travel as strings: Lua would print numbers with 14 digits.
LUA = """
local mode, p = ARGV[1], ARGV[2]
local index = p .. ':index'
local function drop(id)
  local key = p .. ':row:' .. id
  local raw = redis.call('GET', key)
  local n = 0
  if raw then
    local ok, rec = pcall(cjson.decode, raw)
    if ok and type(rec) == 'table' and type(rec._ix) == 'table' then
      for _, suffix in ipairs(rec._ix) do redis.call('ZREM', p .. ':' .. suffix, id) end
    end
    n = 1
  end
  redis.call('DEL', key, p .. ':body:' .. id)
  redis.call('ZREM', index, id)
  return n
end
if mode == 'drop' then
  local n = 0
  for i = 3, #ARGV do n = n + drop(ARGV[i]) end
  return n
end
local max_logs, strategy = tonumber(ARGV[3]), ARGV[4]
local rows = (#ARGV - 4) / 5
if strategy == 'STOP_INSERTING' then
  rows = math.max(math.min(rows, max_logs - redis.call('ZCARD', index)), 0)
end
for r = 0, rows - 1 do
  local b = 5 + r * 5
  local id = ARGV[b]
  redis.call('SET', p .. ':row:' .. id, ARGV[b + 2])
  if ARGV[b + 3] ~= '' then redis.call('SET', p .. ':body:' .. id, ARGV[b + 3]) end
  redis.call('ZADD', index, ARGV[b + 1], id)
  local spec = cjson.decode(ARGV[b + 4])
  for _, e in ipairs(spec.z) do redis.call('ZADD', p .. ':' .. e[1], e[2], id) end
  for _, e in ipairs(spec.s) do redis.call('SADD', p .. ':' .. e[1], e[2]) end
end
if strategy == 'DELETE_OLDEST' then
  local excess = redis.call('ZCARD', index) - max_logs
  if excess > 0 then
    for _, id in ipairs(redis.call('ZRANGE', index, 0, excess - 1)) do drop(id) end
  end
end
return rows
"""


def index_members(rec: LogRecord) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The (key suffix, score) pairs a row adds: equality indexes scored by created_at, and the
    ``by:`` indexes scored by the attribute's value."""
    at = rec.created_at
    ix = [(f"ix:{name}:{value}", at) for name in EQUALITY if (value := getattr(rec, name)) is not None]
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
    by = [(f"by:{name}", float(value)) for name in BY if (value := getattr(rec, name)) is not None]
    return ix, by


def _meta_key(key: str, value: str) -> str:
    return "ix:meta:" + json.dumps([key, value], separators=(",", ":"))


class Plan:
    """How a `LogQuery` runs on the indexes: the sorted sets to intersect, the sets to subtract,
    numeric ranges on ``by:`` sets, and what is left to filter in Python."""

    def __init__(self, q: LogQuery) -> None:
        self.keys: list[str] = []  # intersect (all scored by created_at)
        self.minus: list[str] = []  # subtract
        self.ranges: list[tuple[str, float, float]] = []  # (by: key, low, high)
        rest = LogQuery(start=q.start, end=q.end)
        for name, value in q.text.items():
            if name in EQUALITY:
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
            if attr in BY:
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
